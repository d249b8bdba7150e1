"""benchmarks/fewer_runs.py: what AIRL, GAIL and BC on fewer runs cost in verdicts, on the published standard run
(the figures benchmarks/README.md and suites/standard.toml quote), and its one-line refusals."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STANDARD = ROOT / "benchmarks" / "results" / "standard"


def _script():
    spec = importlib.util.spec_from_file_location("fewer_runs", ROOT / "benchmarks" / "fewer_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_quoted_cost_of_running_airl_gail_and_bc_in_the_first_run_only(tmp_path):
    out = tmp_path / "cost.json"
    assert _script().main([str(STANDARD), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["full"] == {"win": 57, "tie": 6}
    first = result["first run"]
    assert (first["same"], first["of"], first["robust_changed"], first["robust"], first["flips"]) == (60, 63, 0, 50, 0)
    assert first["verdicts"] == {"win": 54, "tie": 9}  # the 3 changes are wins that became ties (none robust)
    assert (result["first two runs"]["same"], result["first two runs"]["robust_changed"]) == (62, 0)
    assert (result["half the tasks"]["same"], result["half the tasks"]["robust_changed"]) == (58, 1)
    readme = " ".join((ROOT / "benchmarks" / "README.md").read_text().split())  # line breaks as spaces
    for figure in ("same verdict for 60 of them", "none of the 50 robust verdicts changes", "62 of 63", "58 of 63"):
        assert figure in readme, figure


def test_it_refuses_a_folder_without_a_suite_or_an_unknown_method_in_one_line(tmp_path, capsys):
    script = _script()
    with pytest.raises(SystemExit) as stop:
        script.main([str(tmp_path)])
    assert stop.value.code == 2 and "no suite.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        script.main([str(STANDARD), "--methods", "airl,nope"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--methods: ['nope'] not among the suite's methods" in err and len(err.strip().splitlines()) == 1
