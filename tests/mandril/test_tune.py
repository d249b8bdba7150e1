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
n_demos = [1, 4]
families = ["gridworld"]
[grid.maxent_tabular]
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
    prepared = sorted(p.name for p in (out / "prepared").glob("*.pt"))
    assert len(prepared) == 2  # one per inner_lr: the adaptation variants share them
    selected = (out / "selected.toml").read_text()
    assert "[families.gridworld.methods.maxent_tabular]\nl2 = 0.01" in selected  # a penalty of 10 flattens every reward
    assert '[families.gridworld.methods.mandril]' in selected and 'adapt_by_n = { "1" = ' in selected
    (tmp_path / "suite.toml").write_text(f'tuned = "{out / "selected.toml"}"\n' + SMOKE.read_text())
    suite = load_suite(tmp_path / "suite.toml")
    assert suite.method_settings("maxent_tabular", "gridworld", 0)["l2"] == 0.01
    assert "adapt_by_n" in suite.method_settings("mandril", "gridworld", 0)
    assert main(["tune", str(sweep), "--out", str(out), "--quiet"]) == 0  # a rerun continues (nothing left)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[grid.airl2]\nlr = [1]", "not in the suite's methods"),
        ("[grid.maxent_tabular]\nl2 = 0.1", "must be a non-empty list of values"),
        ("[grid.maxent_tabular]\nl2 = [-1.0]", "l2 must be a finite number >= 0"),
        ("[per_n.maxent_tabular]\nl2 = [0.1]", "only MandRIL's adaptation"),
        ('families = ["nowhere"]', "are not families of the suite"),
    ],
)
def test_bad_sweeps_are_refused_before_any_work(tmp_path, capsys, text, message):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'name = "t"\nsuite = "{SMOKE}"\n{text}\n')
    assert main(["tune", str(sweep), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()
