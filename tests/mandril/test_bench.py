"""The benchmark harness: the smoke suite end to end on every backend, kill and resume, refusals, and a fuzz of suite files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mandril.bench import RunStore, load_suite, run_suite, suite_from_dict, units_of, write_report
from mandril.cli import main
from mandril.core.config import load_toml
from run_records import comparable, toml_text

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "benchmarks" / "suites" / "smoke.toml"




@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    assert main(["bench", "run", str(SMOKE), "--out", str(out), "--quiet"]) == 0
    return out


def test_the_smoke_suite_covers_every_method_and_family(smoke_run):
    from mandril.methods import METHODS

    suite = load_suite(SMOKE)
    assert sorted(suite.methods) == sorted(METHODS)
    records = RunStore(smoke_run).records()
    assert len(records) == sum(u.n_tasks for u in units_of(suite))
    assert {r["family"] for r in records} == set(suite.families) and {r["method"] for r in records} == set(METHODS)
    for record in records:
        assert record["error"] is None and record["normalized_evd"] >= 0 and record["demo_nll"] > 0
        assert not any(isinstance(v, str) and v.startswith("/") for v in record.values())  # no absolute paths
    for name in ("report.md", "summary.csv", "summary.json", "comparisons.csv", "plots/gridworld.png", "plots/aggregate.png"):
        assert (smoke_run / name).is_file(), name
    report = (smoke_run / "report.md").read_text()
    assert "Where MandRIL wins, ties and loses" in report and "| **mandril** |" in report and "git commit" in report


def test_references_sit_where_they_should(smoke_run):
    summary = json.loads((smoke_run / "summary.json").read_text())["rows"]
    for row in summary:
        if row["method"] == "expert":
            assert row["nevd_iqm"] == pytest.approx(0, abs=1e-9)
        if row["method"] == "uniform_policy":
            assert row["nevd_iqm"] == pytest.approx(1, abs=1e-9)


def test_a_process_pool_gives_the_same_records(smoke_run, tmp_path):
    out = tmp_path / "pool"
    assert main(["bench", "run", str(SMOKE), "--out", str(out), "--workers", "2", "--quiet", "--no-report"]) == 0
    assert comparable(out) == comparable(smoke_run)


def test_ray_gives_the_same_records(smoke_run, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    assert main(["bench", "run", str(SMOKE), "--out", str(out), "--workers", "2", "--backend", "ray", "--quiet", "--no-report"]) == 0
    assert comparable(out) == comparable(smoke_run)


# Runs the CLI in a fresh process that kills itself with SIGKILL at an exact point: right after the first
# training checkpoint is written ("preparing") or right after the 20th unit's records are ("scoring"). Polling the
# run directory from outside raced the run on fast machines (it could finish between two looks).
_KILLED_RUN = """
import os, signal, sys
import mandril.core.checkpoint as checkpoint
import mandril.bench.store as store
from mandril.cli import main

when = sys.argv[1]
write_bytes, write_text = checkpoint.atomic_write_bytes, store.atomic_write_text
units = []

def write_bytes_then_die(path, data, *args, **kwargs):
    result = write_bytes(path, data, *args, **kwargs)
    if when == "preparing" and str(path).endswith(".training.pt"):
        os.kill(os.getpid(), signal.SIGKILL)
    return result

def write_text_then_die(path, text, *args, **kwargs):
    result = write_text(path, text, *args, **kwargs)
    units.append(path)
    if when == "scoring" and len(units) == 20:
        os.kill(os.getpid(), signal.SIGKILL)
    return result

checkpoint.atomic_write_bytes, store.atomic_write_text = write_bytes_then_die, write_text_then_die
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("when", ["preparing", "scoring"])
def test_a_run_killed_with_sigkill_resumes_to_exactly_the_uninterrupted_records(smoke_run, tmp_path, when):
    out = tmp_path / "killed"
    command = [sys.executable, "-c", _KILLED_RUN, when, "bench", "run", str(SMOKE), "--out", str(out), "--quiet", "--no-report"]
    process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert process.returncode == -signal.SIGKILL, f"the run was not killed where it should have been: {process.stderr[-2000:]}"
    if when == "preparing":
        assert any((out / "prepared").glob("*.training.pt"))
    else:
        assert len(list((out / "records").glob("*.jsonl"))) == 20
    assert comparable(out) != comparable(smoke_run)  # it was interrupted
    assert main(["bench", "run", str(SMOKE), "--out", str(out), "--resume", "--quiet", "--no-report"]) == 0
    assert comparable(out) == comparable(smoke_run)
    assert not list(out.rglob(".*.tmp"))


_WORKERS_KILLED_RUN = """
import multiprocessing, os, signal, sys
import mandril.bench.store as store
from mandril.cli import main

write_text = store.atomic_write_text
killed = []

def write_text_then_kill_the_workers(path, text, *args, **kwargs):
    result = write_text(path, text, *args, **kwargs)
    if not killed and str(path).endswith(".jsonl"):
        killed.extend(child.pid for child in multiprocessing.active_children())
        for pid in killed:
            os.kill(pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        print(f"killed {len(killed)} workers", file=sys.stdout, flush=True)
    return result

store.atomic_write_text = write_text_then_kill_the_workers
sys.exit(main(sys.argv[1:]))
"""


def test_a_worker_killed_mid_run_is_one_line_naming_what_it_ran_and_the_saved_cells_resume(smoke_run, tmp_path):
    out = tmp_path / "lost"
    # the run kills its own pool workers right after the first unit's records are saved: an exact point, no race
    command = [sys.executable, "-c", _WORKERS_KILLED_RUN, "bench", "run", str(SMOKE), "--out", str(out), "--quiet", "--no-report", "--workers", "2"]
    process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert process.stdout.strip() == "killed 2 workers", process.stdout + process.stderr[-2000:]
    assert process.returncode == 1, process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in process.stderr, process.stderr
    assert "a worker process died while running" in lines[0] and "rerun with --resume" in lines[0]
    assert list((out / "records").glob("*.jsonl"))
    assert comparable(out) != comparable(smoke_run)  # it was interrupted
    assert main(["bench", "run", str(SMOKE), "--out", str(out), "--resume", "--quiet", "--no-report"]) == 0
    assert comparable(out) == comparable(smoke_run)


def test_an_output_directory_holds_one_suite(smoke_run, tmp_path, capsys):
    assert main(["bench", "run", str(SMOKE), "--out", str(smoke_run), "--quiet"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    other = tmp_path / "other.toml"
    other.write_text(SMOKE.read_text().replace('name = "smoke"', 'name = "other"'))
    assert main(["bench", "run", str(other), "--out", str(smoke_run), "--resume", "--quiet"]) == 2
    assert "holds the results of another suite ('smoke'" in capsys.readouterr().err
    assert main(["bench", "run", str(SMOKE), "--out", str(smoke_run), "--resume", "--quiet", "--no-report"]) == 0  # nothing left
    assert main(["bench", "status", str(smoke_run)]) == 0
    assert "mandril" in capsys.readouterr().out


def test_a_failed_cell_is_recorded_and_the_rest_run(tmp_path, capsys):
    data = load_toml(SMOKE)
    data["methods"] = ["maxent_tabular", "zero_reward"]
    data["settings"] = {"maxent_tabular": {"l2": 0.0, "likelihood": "p0", "max_steps": 200}}  # no lower bound: diverges
    data["families"] = {"gridworld": data["families"]["gridworld"]}
    data["cells"] = {}
    suite = suite_from_dict(data)
    summary = run_suite(suite, tmp_path / "run", progress=False)
    assert summary.failed > 0 and summary.done_now == summary.cells
    records = RunStore(tmp_path / "run").records()
    failed = [r for r in records if r["error"]]
    assert all("diverged" in r["error"] and r["normalized_evd"] is None for r in failed)
    rows = write_report(tmp_path / "run")["rows"]
    assert sum(r["failed"] for r in rows) == summary.failed  # counted, and scored as the zero reward


VALID = load_toml(SMOKE)


#: Impossible values per key of the smoke suite.
BAD = {
    ("name",): [5, "", ["x"]],
    ("seeds",): [0, [-1], [2.5], [], ["a"], [0, 0]],
    ("n_demos",): [[0], [10**12], [2.5], [], "ten"],
    ("methods",): [["airl2"], [], "mandril", [1]],
    ("likelihood",): ["both", 3],
    ("threads",): [0, 1.5, "one", True],
    ("families", "gridworld", "n_tasks"): [0, 10**12, 2.5, -1],
    ("families", "gridworld", "splits"): [["validaton"], ["train"], [], "test", ["test", "test"]],
    ("families", "gridworld", "env_id"): ["mandril_envs/Nope-v0", "this:Zen-v0", "CartPole-v1", 7],
    ("families", "gridworld", "env_kwargs"): [{"size": 1}, {"size": "big"}, {"bogus": 1}, 3],
    ("families", "gridworld", "train", "n_tasks"): [0, 10**12, "many"],
    ("families", "gridworld", "train", "n_demos"): [1, 0, 10**9],
    ("families", "gridworld", "reward_model"): [{"kind": "transformer"}, {"kind": "conv", "hidden": [0]}, "conv"],
    ("families", "gridworld", "input_kind"): ["pixels", 1],
    ("families", "bandit", "input_kind"): ["map"],
    ("settings", "mandril", "iterations"): [-5, "ten", 2.5],
    ("settings", "mandril", "inner_lr"): [0, -1, "fast"],
    ("settings", "maxent", "lr"): [0, -1, "ten", True],
    ("settings", "maxent", "max_steps"): [0, 2.5, -1],
    ("settings", "maxent", "optimizer"): ["rmsprop"],
    ("families", "bandit", "task_seed"): [-1, 1.5],
}


def _mutations() -> list[tuple[str, dict]]:
    """Malformed suites: (what, data)."""
    import copy

    out = []
    for path, values in BAD.items():
        for value in values:
            data = copy.deepcopy(VALID)
            target = data
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            out.append((f"{'.'.join(path)} = {value!r}", data))
    for path in (("name",), ("methods",), ("families",), ("families", "gridworld", "env_id")):
        data = copy.deepcopy(VALID)
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        out.append((f"no {'.'.join(path)}", data))
    for key, value in (("bogus", 1), ("families", {"x": {}}), ("families", {}), ("cells", {"mandril": {"n_tasks": -3}}), ("settings", {"airl2": {}}),
                       ("cells", {"maxent": {"families": ["nowhere"]}}), ("settings", {"maxent": {"learning_rate": 0.1}})):
        data = copy.deepcopy(VALID)
        data[key] = value
        out.append((f"{key} = {value!r}", data))
    return out




def test_fuzzed_suite_files_are_refused_before_anything_runs(tmp_path, capsys):
    texts = [(what, toml_text(data)) for what, data in _mutations()]
    texts += [("garbage", "name = [\n"), ("binary", "\x00\x01\x02"), ("empty", ""), ("not a table", "families = 3\n")]
    refused = 0
    for i, (what, text) in enumerate(texts):
        path = tmp_path / f"suite{i}.toml"
        path.write_text(text)
        out = tmp_path / f"out{i}"
        code = main(["bench", "run", str(path), "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2, f"{what}: exit {code}, {err}"
        assert err.startswith("mandril bench: error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, f"{what}: {err}"
        assert not out.exists(), what
        refused += 1
    assert refused == len(texts) > 60
    print(f"\nfuzz suites: {len(texts)} malformed suite files, {refused} refused with exit 2 in one line, nothing written")  # shown with -s


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "suites").glob("*.toml")), ids=lambda p: p.name)
def test_every_committed_suite_loads_and_builds_every_method_on_every_family(path):
    suite = load_suite(path)  # builds each method with its settings on each family: a stale setting fails here
    assert suite.methods and suite.families
    for method, limits in suite.cells.items():
        assert method in suite.methods and set(limits.families) <= set(suite.families)


# *-selected.toml are sweeps' outputs, included by suites (checked with them)
@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "benchmarks" / "tuning").glob("*.toml") if not p.name.endswith("-selected.toml")),
                         ids=lambda p: p.name)
def test_every_committed_tuning_sweep_loads(path):
    from mandril.bench.tune import load_sweep

    sweep, suite = load_sweep(path)
    assert set(sweep.grid) | set(sweep.per_n) <= set(suite.methods)


def test_verdicts_by_hand_win_tie_loss_and_too_few_tasks():
    from mandril.bench.report import MIN_TASKS_FOR_VERDICT, compare_with

    def records(method, values, family="f"):
        return [{"family": family, "split": "test", "n_demos": 1, "method": method, "seed": 0, "task": t, "normalized_evd": v, "error": None}
                for t, v in enumerate(values)]

    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, 20)
    data = (records("mandril", base) + records("better_than_mandril", base - 0.1) + records("worse_than_mandril", base + 0.1)
            + records("same", base[::-1]) + records("mandril", base[:3], "small") + records("worse_than_mandril", base[:3] + 0.1, "small"))
    verdicts = {(r["family"], r["method"]): (r["verdict"], r["tasks"]) for r in compare_with(data)}
    assert verdicts[("f", "worse_than_mandril")] == ("win", 20)
    assert verdicts[("f", "better_than_mandril")] == ("loss", 20)
    assert verdicts[("f", "same")][0] == "tie"
    assert verdicts[("small", "worse_than_mandril")] == ("too few tasks", 3) and MIN_TASKS_FOR_VERDICT > 3
