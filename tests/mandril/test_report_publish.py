"""The report end to end on a small run with 2 runs x 12 tasks, and a published folder that reproduces it exactly."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import pytest

from mandril.bench import RunStore
from mandril.bench.report import PUBLISHED_RECORDS, REPRODUCE_PREFIX
from mandril.cli import main

ROOT = Path(__file__).resolve().parents[2]

SUITE = """
name = "mini"
description = "Two runs x 12 tasks on the bandit and the RL^2 MDPs: a test of the report."
methods = ["mandril", "maxent_linear", "maxent_tabular", "expert", "zero_reward", "uniform_policy"]
seeds = [0, 1]
n_demos = [1, 8]
tuned = "mini-selected.toml"

[families.tabular_mdp]
env_id = "mandril_envs/TabularMDP-v0"
n_tasks = 12
reward_model = {kind = "mlp", hidden = [8]}
[families.tabular_mdp.train]
n_tasks = 6
n_demos = 10

[families.bandit]
env_id = "mandril_envs/Bandit-K10-v0"
n_tasks = 12
reward_model = {kind = "mlp", hidden = [8]}
[families.bandit.train]
n_tasks = 6
n_demos = 10

[settings.mandril]
iterations = 3
meta_batch_size = 2
n_train_demos = 1
n_test_demos = 2
[settings.maxent_linear]
max_steps = 20
[settings.maxent_tabular]
max_steps = 5
"""

SELECTED = """
[families.bandit.methods.maxent_linear]
l2 = 0.01

[families.tabular_mdp.tried]
mandril = 6
maxent_linear = 4

[families.bandit.tried]
maxent_linear = 4
"""


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mini")
    (folder / "mini.toml").write_text(SUITE)
    (folder / "mini-selected.toml").write_text(SELECTED)
    out = folder / "run"
    assert main(["bench", "run", str(folder / "mini.toml"), "--out", str(out), "--quiet"]) == 0
    return out


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.startswith(REPRODUCE_PREFIX)]


def test_the_report_has_verdicts_with_error_rates_replication_tails_identical_methods_and_care(mini_run):
    report = (mini_run / "report.md").read_text()
    for needle in ("## Headline: MandRIL against the method it is least likely to beat", "## The verdict rule and its error rates",
                   "with 2 run(s) x 12 tasks and", "this rule calls a difference by chance in", "chance alone would produce about",
                   "## Replication", "| tasks of even index |", "| run (seed) 1 |", "mean; failures", "plots/bandit-profiles.png",
                   "- `bandit`: `maxent_linear` = `maxent_tabular`", "maxent_linear (= maxent_tabular)", "## Convergence and tuning",
                   "| 6 |", "1 (not tuned)", REPRODUCE_PREFIX):
        assert needle in report, needle
    assert "48 of 48" in report  # linear MaxEnt converges on every fit; the 5-step tabular fits are capped
    assert "0 of 48" in report
    fitting = sum(float(r.get("seconds") or 0.0) for r in RunStore(mini_run).records())
    assert f"In all: {fitting:.0f} s fitting and " in report and "worker-hours" in report
    for name in ("bandit", "tabular_mdp"):
        assert (mini_run / "plots" / f"{name}-profiles.png").stat().st_size > 1000
    comparisons = list(csv.DictReader(open(mini_run / "comparisons.csv")))
    assert {(c["family"], c["method"]) for c in comparisons} == {("bandit", "maxent_linear"), ("tabular_mdp", "maxent_linear"), ("tabular_mdp", "maxent_tabular")}
    assert all(c["identical"] == ("maxent_tabular" if c["family"] == "bandit" else "") for c in comparisons)
    assert all(c["verdict_runs"].count(":") == 2 and c["robust"] in ("yes", "no", "") for c in comparisons)
    simulation = json.loads((mini_run / "summary.json").read_text())["simulation"]
    assert (simulation["runs"], simulation["tasks"], simulation["comparisons"]) == (2, 12, 6)


def test_a_published_folder_reproduces_the_report_exactly(mini_run, tmp_path, capsys):
    dest = tmp_path / "published"
    assert main(["bench", "publish", str(mini_run), str(dest)]) == 0
    assert not (dest / "records").exists() and not (dest / "prepared").exists()
    with gzip.open(dest / PUBLISHED_RECORDS, "rt") as handle:
        published = [json.loads(line) for line in handle]
    assert published == RunStore(mini_run).records() == RunStore(dest).records()
    assert _lines(dest / "report.md") == _lines(mini_run / "report.md")
    for name in ("summary.csv", "summary.json", "comparisons.csv", "suite.json", "plots/bandit.png", "plots/bandit-profiles.png",
                 "plots/tabular_mdp-profiles.png", "plots/aggregate.png"):
        other = mini_run / name
        assert (dest / name).read_bytes() == other.read_bytes(), name
    # the report rewritten from the published folder alone is the same again, and publishing again gives the same bytes
    before = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert main(["bench", "report", str(dest)]) == 0
    assert main(["bench", "publish", str(mini_run), str(dest)]) == 0
    after = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()
    for name, data in before.items():
        if name == Path("report.md"):
            assert _lines(dest / name) == [line for line in data.decode().splitlines() if not line.startswith(REPRODUCE_PREFIX)]
        else:
            assert after[name] == data, name


def test_publishing_refuses_what_it_cannot_do_in_one_line(mini_run, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["bench", "publish", str(mini_run), str(foreign)]) == 2
    assert "not empty and is not a published folder" in capsys.readouterr().err and (foreign / "notes.txt").read_text() == "mine"
    assert main(["bench", "publish", str(mini_run), str(mini_run)]) == 2
    assert "the run's own folder" in capsys.readouterr().err
    assert main(["bench", "publish", str(ROOT / "benchmarks" / "results" / "quick"), str(tmp_path / "x")]) == 2
    assert "no records/ folder" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_reporting_a_folder_without_records_says_so_and_changes_nothing(tmp_path, capsys):
    copy = tmp_path / "quick-e267119"
    shutil.copytree(ROOT / "benchmarks" / "results" / "quick-e267119", copy)  # published before records were
    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert main(["bench", "report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "holds no records" in err and "records.jsonl.gz" in err and len(err.strip().splitlines()) == 1
    assert {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def _csv_close(a: Path, b: Path) -> None:
    """Two CSV files with the same rows: text equal, numbers within 1e-9 (another CPU's SIMD sums may differ in the last bits)."""
    with open(a, newline="") as one, open(b, newline="") as other:
        first, second = list(csv.DictReader(one)), list(csv.DictReader(other))
    assert len(first) == len(second), a.name
    for row, again in zip(first, second):
        assert row.keys() == again.keys(), a.name
        for key, value in row.items():
            try:
                x, y = float(value), float(again[key])
            except ValueError:
                assert value == again[key], (a.name, key, row)
                continue
            assert x == pytest.approx(y, rel=1e-9, abs=1e-12, nan_ok=True), (a.name, key, row)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["standard", "quick"])
def test_a_published_run_is_recomputed_from_its_records(tmp_path, name):
    """``mandril bench report`` on a published folder gives its report, summary and comparisons again."""
    published = ROOT / "benchmarks" / "results" / name
    copy = tmp_path / name
    shutil.copytree(published, copy)
    shutil.rmtree(copy / "plots")
    for name in ("report.md", "summary.csv", "comparisons.csv", "more_demos.csv", "summary.json"):
        (copy / name).unlink()
    assert main(["bench", "report", str(copy)]) == 0
    assert _lines(copy / "report.md") == _lines(published / "report.md")
    for name in ("summary.csv", "comparisons.csv", "more_demos.csv"):
        _csv_close(copy / name, published / name)
    assert sorted(p.name for p in (copy / "plots").iterdir()) == sorted(p.name for p in (published / "plots").iterdir())
