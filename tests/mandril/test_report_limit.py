"""The report's gap-to-the-limit table: each learner's mean normalized EVD minus the bayes reference's."""

from __future__ import annotations

from pathlib import Path

from mandril.bench import load_suite
from mandril.bench.report import _limit_section

SMOKE = Path(__file__).resolve().parents[2] / "benchmarks" / "suites" / "smoke.toml"


def test_the_gap_is_each_method_s_mean_minus_the_limit_s_on_the_same_cells():
    suite = load_suite(SMOKE)
    assert "bayes" in suite.methods

    def record(method: str, task: int, value: float) -> dict:
        return {"family": "bandit", "split": "test", "n_demos": 1, "method": method, "seed": 0, "task": task, "normalized_evd": value, "error": None}

    records = [record("bayes", 0, 0.25), record("bayes", 1, 0.75), record("mandril", 0, 0.5), record("mandril", 1, 1.0),
               record("maxent_linear", 1, 0.5),  # a reduced grid: one task, compared with the limit on that task only
               record("maxent_tabular", 0, 0.5), record("maxent_tabular", 1, 1.0), record("expert", 0, 0.0)]
    lines = _limit_section(suite, records, {"bandit": {"maxent_tabular": "mandril"}})
    header = next(line for line in lines if line.startswith("| family |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in lines if line.startswith("| bandit | test | 1 |"))
    values = dict(zip(columns, (c.strip() for c in row.strip("|").split("|"))))
    assert values["limit"] == "0.500" and values["mandril"] == "+0.250" and values["maxent_linear"] == "-0.250"
    assert values["maxent_tabular"] == ""  # identical to another method: shown once
    assert "expert" not in columns and "bayes" not in columns  # references are not learners
    assert not [line for line in lines if line.startswith("| gridworld |")]  # no limit measured there: no row


def test_every_plotted_method_has_a_legend_entry(tmp_path):
    from mandril.bench.plots import plot_curves

    def row(split: str, method: str, n: int) -> dict:
        return {"split": split, "method": method, "n_demos": n, "nevd_iqm": 0.1, "nevd_low": 0.05, "nevd_high": 0.2}

    rows = [row(split, "mandril", n) for split in ("test", "test_unseen") for n in (1, 4)] + [row("test", "airl", 4), row("test", "bc", 4)]
    entries = plot_curves(rows, tmp_path / "p.png", "t", "split", ["mandril", "airl", "bc"], (), "mandril")
    assert entries == ["mandril", "airl", "bc"]  # airl and bc are plotted in the first panel only
    assert (tmp_path / "p.png").stat().st_size > 1000
