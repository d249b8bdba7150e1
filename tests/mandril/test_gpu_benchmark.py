"""benchmarks/gpu.py: its CPU-only fallback runs the same code path end to end and writes its figures."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest
import torch

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_cpu_run_writes_agreeing_figures(gpu, tmp_path) -> None:
    previous = torch.get_num_threads()
    try:
        report = gpu.main(["--quick", "--device", "cpu", "--threads", "1", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(previous)
    saved = json.loads((tmp_path / "gpu.json").read_text())
    text = (tmp_path / "gpu.md").read_text()
    assert saved["all_agree"] is True and report["all_agree"] is True
    assert saved["environment"]["device"] == "cpu" and "the CPU again" in text
    kernel = saved["kernel"]
    assert kernel["tasks"] == 16 and kernel["grid"] == "8x8" and kernel["horizon"] == 16
    assert kernel["cpu_tasks_per_second"] > 0 and kernel["device_tasks_per_second"] > 0
    # the CPU against itself: bit for bit
    assert kernel["log_z_max_rel_diff"] == 0.0 and kernel["mu_max_abs_diff"] == 0.0
    units = {row["method"] for row in saved["cells"]}
    assert units == {"maxent", "mandril", "maxent_linear"}
    for row in saved["cells"]:
        assert row["tasks"] == 3 and row["agree"] and row["max_abs_diff"] == 0.0 and not row["errors"]
        assert row["check"] == ("unit means" if row["method"] == "maxent" else "every score")
        assert row["unit"] in text


def test_records_that_differ_beyond_the_tolerance_are_named(gpu) -> None:
    base = {"task": 0, "error": None, **{key: 1.0 for key in gpu.SCORES}}
    close = {**base, "evd": 1.0 + gpu.CELL_TOLERANCE / 2}
    far = {**base, "demo_nll": 1.0 + 10 * gpu.CELL_TOLERANCE}
    assert gpu.compare_records([base], [close]) == (pytest.approx(gpu.CELL_TOLERANCE / 2), [])
    worst, problems = gpu.compare_records([base], [far])
    assert worst == pytest.approx(10 * gpu.CELL_TOLERANCE) and len(problems) == 1 and "demo_nll" in problems[0]
    failed = {**base, "error": "DivergenceError: x", "evd": None}
    assert gpu.compare_records([base], [failed])[1]
    assert gpu.compare_records([base], [])[0] == float("inf")


def test_neural_fits_are_compared_by_the_units_means(gpu) -> None:
    rows = [{"task": t, "error": None, **{key: 1.0 for key in gpu.SCORES}} for t in range(4)]
    shifted = [{**row, "normalized_evd": 1.0 + (0.02 if row["task"] % 2 else -0.02)} for row in rows]  # per task 0.02 apart, same mean
    worst, problems = gpu.compare_records(rows, shifted, neural=True)
    assert worst == pytest.approx(0.02) and problems == []
    assert gpu.compare_records(rows, shifted)[1]  # task by task it would fail
    moved = [{**row, "demo_nll": 1.0 + 2 * gpu.NEURAL_MEAN_TOLERANCE} for row in rows]
    assert "mean demo_nll" in gpu.compare_records(rows, moved, neural=True)[1][0]
    failed = [{**rows[0], "error": "DivergenceError: x"}] + rows[1:]
    assert "error" in gpu.compare_records(rows, failed, neural=True)[1][0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_device_is_refused_before_any_work(gpu, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        gpu.main(["--device", "cuda", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "gpu.json").exists()


def test_bad_sizes_are_refused(gpu, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        gpu.main(["--tasks", "0"])
    assert exit_info.value.code == 2 and "--tasks must be >= 1" in capsys.readouterr().err
