"""mandril_envs.testing.check_all reports what it checked; the 'mandril_envs:' id form works without an import."""

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import mandril_envs  # noqa: F401
from mandril_envs import testing
from mandril_envs.envs import TabularMDPEnv

ROOT = Path(__file__).resolve().parents[2]
CHECKS = [
    "check_env", "model", "step_matches_model", "seeded_determinism", "tasks", "pickle", "spec_roundtrip", "vector_env",
    "step_after_truncation", "render_modes", "seals_names",
]
SB3_CHECKS = ["sb3_check_env", "sb3_make_vec_env"]


def test_check_all_returns_a_report_and_prints_one_line(capsys):
    report = testing.check_all("mandril_envs/Bandit-K5-v0", sb3=False)
    assert isinstance(report, testing.CheckReport) and report.passed and report.failures == ()
    assert [result.name for result in report.results] == CHECKS
    assert all(result.passed and result.message == "" and result.seconds >= 0 for result in report.results)
    out = capsys.readouterr().out
    assert out.splitlines() == [report.summary()]
    assert out.startswith("mandril_envs/Bandit-K5-v0: all 11 checks passed (check_env, model, ")
    assert str(report).splitlines()[1].split() == ["ok", "check_env", f"{report.results[0].seconds:.2f}", "s"]


def test_check_all_quiet_and_with_kwargs(capsys):
    report = testing.check_all("mandril_envs/GridWorld-v0", quiet=True, size=4, sb3=False)
    assert capsys.readouterr().out == ""
    assert [r.name for r in report.results] == [c for c in CHECKS if c != "spec_roundtrip"]  # kwargs: the id's defaults are not what was checked


def test_check_all_runs_sb3s_checks_when_it_is_installed():
    report = testing.check_all("mandril_envs/Bandit-K5-v0", quiet=True, strict=False, sb3=None)
    assert [r.name for r in report.results] == CHECKS + (SB3_CHECKS if testing.sb3_installed() else [])
    assert report.passed, str(report)
    forced = testing.check_all("mandril_envs/Bandit-K5-v0", quiet=True, strict=False, sb3=True)
    assert [r.name for r in forced.results] == CHECKS + SB3_CHECKS
    if not testing.sb3_installed():  # asked for and missing: a failure naming the missing module, not a silent skip
        assert [r.name for r in forced.failures] == SB3_CHECKS and "stable_baselines3" in forced.failures[0].message


def test_render_modes_check_catches_a_family_without_rgb_array(monkeypatch):
    monkeypatch.setattr(TabularMDPEnv, "metadata", {"render_modes": ["ansi"], "render_fps": 4})
    with pytest.raises(AssertionError, match=r"lacks 'rgb_array' \(SB3's make_vec_env passes render_mode='rgb_array'\)"):
        testing.check_render_modes("mandril_envs/TabularMDP-v0")


class Overpaid(TabularMDPEnv):
    """An env whose step() pays more than its reward_matrix says."""

    def _sample_reward(self, state, action, mean):
        return super()._sample_reward(state, action, mean) + 0.5


@pytest.fixture
def overpaid_id():
    env_id = "mandril_envs_tests/Overpaid-v0"
    gym.register(id=env_id, entry_point=Overpaid)
    yield env_id
    del gym.registry[env_id]


def test_check_all_reports_a_failing_check(overpaid_id, capsys):
    report = testing.check_all(overpaid_id, strict=False, horizon=10, sb3=False)
    assert not report.passed and [r.name for r in report.failures] == ["step_matches_model"]
    assert "mean rewards differ from reward_matrix" in report.failures[0].message
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{overpaid_id}: 9 of 10 checks passed; FAILED: step_matches_model (mean rewards differ") and "\n" not in line


def test_check_all_raises_on_a_failure_unless_told_not_to(monkeypatch):
    def fails(env, *args, **kwargs):
        raise AssertionError("unpickled env diverged")

    monkeypatch.setattr(testing, "check_pickle", fails)
    with pytest.raises(AssertionError, match=r"(?s)^mandril_envs/Bandit-v0: 10 of 11 checks passed; FAILED: pickle \(unpickled env diverged\).*FAIL pickle"):
        testing.check_all("mandril_envs/Bandit-v0", quiet=True, sb3=False)


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_module_form_of_the_id_works_in_a_fresh_process_without_import():
    result = _fresh_python(
        "import sys, gymnasium as gym\n"
        "assert 'mandril_envs' not in sys.modules\n"
        "env = gym.make('mandril_envs:mandril_envs/GridWorld-v0', size=5)\n"
        "obs, info = env.reset(seed=0)\n"
        "print(type(env.unwrapped).__name__, env.unwrapped.state_dim, env.spec.id)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["GridWorldEnv", "25", "mandril_envs/GridWorld-v0"]
    plain = _fresh_python("import gymnasium as gym\ngym.make('mandril_envs/GridWorld-v0')\n")
    assert plain.returncode != 0 and "mandril_envs" in plain.stderr  # why the module form exists


def test_the_module_form_is_documented():
    for text in ((ROOT / "docs" / "guide" / "tour.md").read_text(), mandril_envs.__doc__):
        assert 'gym.make("mandril_envs:mandril_envs/GridWorld-v0")' in text
