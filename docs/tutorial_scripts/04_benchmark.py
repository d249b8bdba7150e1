# %% [markdown]
# # Running, resuming, reporting and tuning a benchmark suite
#
# A suite (TOML) is a grid of cells: (family, split, method and its settings, seed, held-out task, number of
# demos). Each cell is a pure function of those, scored against the true model and recorded as soon as its
# batch finishes; a killed run continues with `--resume` and ends with exactly the records of an
# uninterrupted one. The committed suites are `benchmarks/suites/{smoke,quick,standard,paper}.toml`; they
# ship with the package, so `mandril bench run quick --out reports/quick` works anywhere.
#
# Here a suite of smoke size: one family, a few methods, three held-out tasks (its numbers mean nothing).
# The commands are the command line's (`mandril ...`), called in this process.

# %%
from pathlib import Path

from mandril.bench import RunStore
from mandril.cli import main

Path("tiny.toml").write_text('''
name = "tiny"
description = "A smoke-size suite for the tutorial."
methods = ["maxent_tabular", "maxent_linear", "expert", "bayes", "zero_reward", "uniform_policy"]
seeds = [0]
n_demos = [1, 4]

[families.tabular_mdp_linear]
env_id = "mandril_envs/TabularMDP-Linear-v0"
n_tasks = 3
[families.tabular_mdp_linear.train]
n_tasks = 4
n_demos = 4

[settings.maxent_linear]
max_steps = 50
[settings.maxent_tabular]
max_steps = 50
''')
status = main(["bench", "run", "tiny.toml", "--out", "run", "--quiet"])
print("exit status", status)
assert status == 0

# %% [markdown]
# `bench status` says what is done; running again without `--resume` is refused (the folder holds a run),
# with `--resume` it finds every cell done and only rewrites the report.

# %%
main(["bench", "status", "run"])
refused = main(["bench", "run", "tiny.toml", "--out", "run", "--quiet"])
print("without --resume: exit status", refused)
assert refused == 2
assert main(["bench", "run", "tiny.toml", "--out", "run", "--resume", "--quiet"]) == 0

# %% [markdown]
# A run killed part-way leaves its finished units' records; `--resume` runs only what is missing. Here we
# delete one unit's records by hand (as if its batch had not finished) and resume:

# %%
store = RunStore(Path("run"))
before = sorted((r["method"], r["task"], r["n_demos"]) for r in store.records())
unit = sorted(Path("run/records").glob("*"))[0]
unit.unlink()
print("removed", unit.name, "; records left:", len(list(store.records())), "of", len(before))
assert main(["bench", "run", "tiny.toml", "--out", "run", "--resume", "--quiet"]) == 0
after = sorted((r["method"], r["task"], r["n_demos"]) for r in store.records())
assert after == before
print("after --resume:", len(after), "records, the same cells")

# %% [markdown]
# The report: `report.md` (tables per family, split and n with interquartile means and bootstrap intervals,
# where MandRIL wins, ties and loses when it is in the suite), `summary.csv`, `comparisons.csv` and
# `plots/`; `bench report DIR` rewrites them from the records.

# %%
assert main(["bench", "report", "run"]) == 0
report = Path("run/report.md").read_text()
print(report[:1800])
assert "## Normalized EVD by family" in report and Path("run/summary.csv").exists()

# %% [markdown]
# ## Tuning
#
# `mandril tune SWEEP --out DIR` runs every combination of a sweep on *validation* tasks (train-split tasks
# no training pool reaches, never test tasks), picks the best per family (and per number of demos for the
# settings listed under `per_n`), and writes `selected.toml`, which a suite includes with `tuned = "..."`.

# %%
Path("sweep.toml").write_text('''
name = "tiny-sweep"
suite = "tiny.toml"
n_tasks = 3
seeds = [0]
n_demos = [1, 4]
[per_n.maxent_tabular]
l2 = [0.01, 1.0]
''')
assert main(["tune", "sweep.toml", "--out", "tune", "--quiet"]) == 0
print(Path("tune/selected.toml").read_text())

# %% [markdown]
# ## More workers, Ray and clusters
#
# `--workers N` runs cells in a local process pool; `--backend ray` runs them as Ray tasks on a local
# instance, and `--ray-address` joins a cluster (see [the cluster guide](../cluster.md)); the records are the
# same either way. (Not run here: starting Ray takes longer than this whole page.)
#
# ```bash
# mandril bench run quick --out reports/quick --workers 2
# mandril bench run quick --out reports/quick --resume --backend ray
# ```
