"""benchmarks/suite_cpu.py: its refusals, and that a run's CPU counts the workers it reaped."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "suite_cpu.py"


def _module():
    spec = importlib.util.spec_from_file_location("suite_cpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def test_a_runs_cpu_includes_the_children_it_waited_for(tmp_path):
    module = _module()
    # a driver that burns 0.3 s itself and waits for two children that burn 0.4 s each, like a pool's workers
    driver = ("import subprocess, sys\n" + _BURN.format(seconds=0.3)
              + f"children = [subprocess.Popen([sys.executable, '-c', {_BURN.format(seconds=0.4)!r}]) for _ in range(2)]\n"
              + "[child.wait() for child in children]\n")
    process = module.start([sys.executable, "-c", driver], tmp_path, tmp_path / "log.txt")
    quick = module.start([sys.executable, "-c", "pass"], tmp_path, tmp_path / "quick.txt")
    ended = module.wait_cpu({"driver": process, "quick": quick})
    code, cpu, _ = ended["driver"]
    assert code == 0
    assert 1.1 <= cpu < 3.0  # 0.3 + 2 x 0.4 burned, plus three interpreters' start-up
    assert ended["quick"][0] == 0 and ended["quick"][1] < 1.1 and ended["quick"][2] < ended["driver"][2]  # collected when it ended


def test_shared_cells_sum_the_fitting_seconds_of_the_cells_both_runs_recorded(tmp_path):
    import json

    module = _module()

    def run(name, cells):
        (tmp_path / name / "records").mkdir(parents=True)
        for unit, rows in cells.items():
            lines = [json.dumps({"family": unit[0], "split": "test", "method": unit[1], "n_demos": unit[2], "seed": 0, "task": t, "seconds": s})
                     for t, s in rows]
            (tmp_path / name / "records" / f"{'--'.join(map(str, unit))}.jsonl").write_text("\n".join(lines) + "\n")
        return tmp_path / name

    before = run("before", {("grid", "maxent", 1): [(0, 2.0), (1, 3.0)], ("grid", "gail", 4): [(0, 10.0)]})
    after = run("after", {("grid", "maxent", 1): [(0, 1.0), (1, 1.5), (2, 7.0)], ("grid", "bayes", 4): [(0, 5.0)]})
    shared = module.shared_cells(before, after)
    assert shared == {"cells": 2, "fit_seconds": {"revision": 5.0, "checkout": 2.5}, "ratio_fit": 0.5}
    assert module.shared_cells(before, tmp_path / "missing") == {"cells": 0, "fit_seconds": {"revision": 0.0, "checkout": 0.0}, "ratio_fit": 0.0}


@pytest.mark.parametrize("args, message", [
    (["--against", "no-such-revision-xyz"], "--against 'no-such-revision-xyz' is not a commit"),
    (["--against", "HEAD", "--workers", "0"], "--workers must be at least 1"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, message):
    result = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(tmp_path / "new")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_an_existing_out_folder_is_refused(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--against", "HEAD", "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "exists: choose a new folder" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_readme_table_is_the_committed_measurements():
    """Each row of benchmarks/README.md's suite_cpu table is a committed cpu.json (results/suite_cpu/REV.json)."""
    import json
    import re

    readme = (ROOT / "benchmarks" / "README.md").read_text()
    rows = re.findall(r"^\| (\w+)[^|]*\| (\d+) CPU s \| (\d+) CPU s \| ([\d.]+) \|", readme, flags=re.M)
    files = sorted((ROOT / "benchmarks" / "results" / "suite_cpu").glob("*.json"))
    assert len(rows) == len(files) >= 2
    for checkout, revision_cpu, checkout_cpu, ratio in rows:
        data = json.loads((ROOT / "benchmarks" / "results" / "suite_cpu" / f"{checkout}.json").read_text())
        assert data["checkout"] == checkout and data["revision"] == "e267119"
        assert round(data["runs"]["revision"]["cpu_seconds"]) == int(revision_cpu)
        assert round(data["runs"]["checkout"]["cpu_seconds"]) == int(checkout_cpu)
        assert f"{data['ratio_cpu']:.2f}" == ratio
        if "shared_cells" in data:  # the README's sentence on the cells both suites have is this file's
            shared = data["shared_cells"]
            sentence = (f"on all {shared['cells']:,} cells of e267119's suite, fitting took {shared['fit_seconds']['checkout']:,.0f} s against "
                        f"{shared['fit_seconds']['revision']:,.0f} s, **{shared['ratio_fit']:.2f} of e267119's**")
            assert sentence in " ".join(readme.split()), sentence
