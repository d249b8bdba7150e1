"""The planning speed benchmark script runs, checks equality, and measures memory (on tiny grids)."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest
import torch

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "planning_speed.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("planning_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help(bench, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "--repeats" in out and "imitation" in out


def test_cases_on_tiny_grids(bench) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        models = bench.gridworld_models(4, 5, 3)
        forward = bench.case_forward("tiny", models, repeats=1)
        gradient = bench.case_gradient("tiny", models, 1, np.random.default_rng(0))
    finally:
        torch.set_num_threads(previous)
    for row in (forward, gradient):
        assert row["max_abs_diff"] <= bench.TOLERANCE
        assert row["imitation"] > 0 and row["mandril"] > 0 and row["ratio"] == row["imitation"] / row["mandril"]
    assert gradient["mandril_hvp"] > 0


def test_memory_probe_measures_the_dense_matrix(bench) -> None:
    """The probe sees imitation's dense (S, A, S) float64 matrix: 144 x 9 x 144 x 8 bytes on a 12x12 grid."""
    theirs = bench.memory("imitation", 12)  # 144 x 9 x 144 x 8 bytes = 1.4 MiB
    assert theirs is not None and theirs >= 144 * 9 * 144 * 8 * 0.9
