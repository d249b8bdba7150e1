# %% [markdown]
# # MAML-TRPO on bandits
#
# `mandril maml-rl` meta-trains a policy with MAML (Finn, Abbeel and Levine 2017) and a TRPO outer loop on
# the bandit and tabular-MDP families, then adapts it on held-out tasks and scores it against reference
# bandit policies (greedy, UCB1, Thompson sampling, Gittins, the oracle) on the same tasks. A run is a TOML
# config (the published ones: `benchmarks/maml/*.toml`; their results are on the
# [MAML results page](../results/maml.md)). Here a tiny one on 5-armed bandits, a few meta-iterations.

# %%
from pathlib import Path

import pandas as pd
import matplotlib.pyplot as plt

from mandril.cli import main

Path("bandit.toml").write_text('''
name = "tiny-bandit"
seed = 1
[env]
id = "mandril_envs/Bandit-K5-v0"
kwargs = { horizon = 1 }
[policy]
hidden_sizes = [8]
[maml]
num_batches = 8
meta_batch_size = 8
fast_batch_size = 10
fast_lr = 0.5
[validation]
every = 2
n_tasks = 8
[test]
n_tasks = 20
n_episodes = 10
reference_repeats = 1
tuning_tasks = 8
''')
assert main(["maml-rl", "train", "--config", "bandit.toml", "--output-dir", "run", "--no-progress"]) == 0
print(sorted(p.name for p in Path("run").iterdir()))

# %% [markdown]
# Each meta-iteration is a row of `metrics.csv`: the returns before and after the inner (adaptation) step
# on the meta-batch, and the TRPO step's diagnostics.

# %%
metrics = pd.read_csv("run/metrics.csv")
print(metrics.columns.tolist())
fig, ax = plt.subplots(figsize=(5, 3))
for column in ["pre_return", "post_return", "val_pre_return", "val_post_return"]:
    ax.plot(metrics["iteration"], metrics[column], marker="o", label=column)
ax.set_xlabel("meta-iteration")
ax.set_ylabel("return (over the adaptation episodes)")
ax.legend(fontsize=7)
assert len(metrics) == 8

# %% [markdown]
# `maml-rl test` adapts the meta-trained policy on held-out tasks and scores it, with 95% bootstrap
# intervals over tasks, beside the reference policies:

# %%
assert main(["maml-rl", "test", "--config", "bandit.toml", "--output-dir", "run", "--no-progress"]) == 0
table = Path("run/test_results.md").read_text()  # the table printed above
assert "maml_post" in table and "oracle" in table
