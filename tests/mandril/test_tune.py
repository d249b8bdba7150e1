"""Tuning sweeps: validation tasks only, one preparation per preparation-shaping setting, selection, inclusion in a suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from mandril.bench import RunStore, load_suite
from mandril.bench.suite import VALIDATION_SPLIT
from mandril.cli import main

SMOKE = Path(__file__).resolve().parents[2] / "benchmarks" / "suites" / "smoke.toml"

SWEEP = f"""
name = "t"
suite = "{SMOKE}"
n_tasks = 3
seeds = [0, 1]
n_demos = [1, 4]
families = ["gridworld"]
[per_n.maxent_tabular]
l2 = [0.01, 10.0]
[grid.mandril]
inner_lr = [0.01, 0.03]
[per_n.mandril]
adapt_steps = [1, 3]
"""


def test_a_sweep_selects_on_validation_tasks_and_a_suite_includes_it(tmp_path, capsys):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)
    out = tmp_path / "out"
    assert main(["tune", str(sweep), "--out", str(out), "--quiet"]) == 0
    records = [r for d in (out / "runs").glob("*/*/*") for r in RunStore(d).records()]
    assert records and {r["split"] for r in records} == {VALIDATION_SPLIT}  # never a test task
    assert {r["seed"] for r in records} == {0, 1} and {r["method"] for r in records} == {"maxent_tabular", "mandril", "zero_reward"}
    prepared = sorted(p.name for p in (out / "prepared").glob("*.pt"))
    assert len(prepared) == 4  # one per inner_lr and seed: the adaptation variants share them
    selected = (out / "selected.toml").read_text()
    assert '[families.gridworld.methods.maxent_tabular]\nby_n = { "1" = { "l2" = 0.01 }, "4" = { "l2" = 0.01 } }' in selected  # 10 flattens every reward
    assert '[families.gridworld.methods.mandril]\nby_n = { "1" = { "adapt_steps" = ' in selected
    assert "[families.gridworld.tried]" in selected and "mandril = 4\nmaxent_tabular = 2" in selected
    (tmp_path / "suite.toml").write_text(f'tuned = "{out / "selected.toml"}"\n' + SMOKE.read_text())
    suite = load_suite(tmp_path / "suite.toml")
    assert suite.method_settings("maxent_tabular", "gridworld", 0, 4)["l2"] == 0.01
    assert set(suite.by_n("mandril", "gridworld")) == {"1", "4"}
    assert suite.families["gridworld"].tried == {"mandril": 4, "maxent_tabular": 2}
    assert main(["tune", str(sweep), "--out", str(out), "--quiet"]) == 0  # a rerun continues (nothing left)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[grid.airl2]\nlr = [1]", "not in the suite's methods"),
        ("[grid.maxent_tabular]\nl2 = 0.1", "must be a non-empty list of values"),
        ("[grid.maxent_tabular]\nl2 = [-1.0]", "l2 must be a finite number >= 0"),
        ("seeds = [0, 1]\n[per_n.mandril]\ninner_lr = [0.1]", "cannot change with the number of demos (they shape the preparation)"),
        ("seeds = [0, 1]\n[grid.maxent_tabular]\nl2 = [0.1]\n[per_n.maxent_tabular]\nl2 = [0.1]", "both set ['l2']"),
        ("[grid.mandril]\ninner_lr = [0.1]", "seeds must hold at least 2 runs to tune prepared methods ['mandril']"),
        ('families = ["nowhere"]', "are not families of the suite"),
    ],
)
def test_bad_sweeps_are_refused_before_any_work(tmp_path, capsys, text, message):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'name = "t"\nsuite = "{SMOKE}"\n{text}\n')
    assert main(["tune", str(sweep), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()
