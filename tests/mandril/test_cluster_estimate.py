"""benchmarks/cluster_estimate.py: the sums over a suite's cells and preparations, and a tiny real measurement."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from mandril.bench import load_suite, units_of
from mandril.bench.cells import preparations_of

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "benchmarks" / "suites" / "smoke.toml"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("cluster_estimate", ROOT / "benchmarks" / "cluster_estimate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_per_cell_cpu_is_linear_in_log_n_between_the_measured_counts_and_constant_beyond(script):
    points = [{"n_demos": 1, "cpu_seconds_per_cell": 1.0}, {"n_demos": 4, "cpu_seconds_per_cell": 3.0}]
    assert [script._per_cell(points, n) for n in (1, 2, 4, 8)] == [1.0, pytest.approx(2.0), 3.0, 3.0]


def test_the_sums_count_every_cell_and_preparation_of_the_suite(script):
    suite = load_suite(SMOKE)
    units = units_of(suite)
    cells = [{"family": f, "method": m, "n_demos": n, "tasks": 1, "cpu_seconds_per_cell": 10.0 if n == 1 else 20.0}
             for f in suite.families for m in suite.methods for n in (1, 4)]
    trained = ("mandril", "pretrain_finetune", "demo_conditioned")  # iterations: measured at two lengths, extrapolated
    assert {p.method for p in preparations_of(units)} == {*trained, "map_prior"}
    preparations = [{"family": f, "method": m, "iterations": i, "cpu_seconds": c} for f in suite.families for m in trained for i, c in ((1, 5.0), (2, 7.0))]
    preparations += [{"family": f, "method": "map_prior", "iterations": None, "cpu_seconds": 19.0} for f in suite.families]  # fixed length: measured whole
    pools = {f: 100.0 for f in suite.families}
    sums = script.estimate(SMOKE, {"cells": cells, "preparations": preparations, "pools": pools})
    expected_cells = sum(u.n_tasks * (10.0 if u.n_demos == 1 else 20.0) for u in units) / 3600
    assert sums["cells"] == sum(u.n_tasks for u in units) and sums["not_measured"] == []
    assert sums["cell_cpu_hours"] == pytest.approx(expected_cells)
    # the smoke suite trains 3 iterations: 100 (pool) + 5 (at 1 iteration) + 2 x 2 more
    fixed = sum(1 for p in preparations_of(units) if p.method == "map_prior")
    assert sums["preparation_cpu_hours"] == pytest.approx(((len(preparations_of(units)) - fixed) * 109.0 + fixed * 119.0) / 3600)  # 100 (pool) + 19
    assert sums["total_cpu_hours"] == pytest.approx(sums["cell_cpu_hours"] + sums["preparation_cpu_hours"])


def test_a_tiny_measurement_writes_its_figures_and_recomputes_them(script, tmp_path, capsys):
    out = tmp_path / "estimate.json"
    first = script.main(["--suite", str(SMOKE), "--methods", "mandril,maxent_tabular,expert", "--tasks", "1", "--n-demos", "1",
                         "--iterations", "1,2", "--out", str(out)])
    measured = first["measured"]
    assert {(c["method"], c["family"]) for c in measured["cells"]} == {(m, f) for m in ("mandril", "maxent_tabular", "expert") for f in load_suite(SMOKE).families}
    assert all(c["cpu_seconds_per_cell"] > 0 for c in measured["cells"]) and all(v > 0 for v in measured["pools"].values())
    assert len(measured["preparations"]) == 2 * len(measured["pools"])
    assert sorted(first["estimate"]["not_measured"]) == sorted(set(load_suite(SMOKE).methods) - {"mandril", "maxent_tabular", "expert"})
    assert json.loads(out.read_text()) == json.loads(json.dumps(first))
    again = script.main(["--suite", str(SMOKE), "--recompute", "--out", str(out)])
    assert again == json.loads(out.read_text()) and math.isclose(again["estimate"]["total_cpu_hours"], first["estimate"]["total_cpu_hours"])
    assert "CPU-hours" in capsys.readouterr().out
