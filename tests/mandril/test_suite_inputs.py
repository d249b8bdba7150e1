"""Issue 20 (items 4 and 6): suite values that used to pass the up-front check and then fail every cell
at run time, and [cells] filters that matched nothing, are refused at load in one line naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from mandril.bench import suite_from_dict
from mandril.core.config import load_toml

ROOT = Path(__file__).resolve().parents[2]
SMOKE = load_toml(ROOT / "benchmarks" / "suites" / "smoke.toml")


def _with(path: tuple[str, ...], value) -> dict:
    data = copy.deepcopy(SMOKE)
    target = data
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return data


#: (what, path, value, words the one-line error must hold). Each of these was accepted by the old check.
HOSTILE = [
    ("expert temperature 1e-300", ("families", "gridworld", "expert"), {"temperature": 1e-300}, ["[families.gridworld]", "temperature"]),
    ("goal_reward 1e308", ("families", "gridworld", "env_kwargs"), {"size": 5, "goal_reward": 1e308}, ["[families.gridworld] env_kwargs", "reward"]),
    ("obstacle_penalty -1e200", ("families", "gridworld", "env_kwargs"), {"size": 5, "obstacle_penalty": -1e200}, ["[families.gridworld] env_kwargs", "1e+150"]),
    ("horizon 1e9", ("families", "gridworld", "env_kwargs"), {"size": 5, "horizon": 1_000_000_000}, ["[families.gridworld] env_kwargs horizon=1000000000"]),
    ("max_episode_steps 1", ("families", "gridworld", "env_kwargs"), {"size": 5, "max_episode_steps": 1}, ["max_episode_steps", "horizon 10"]),
    ("autoreset", ("families", "gridworld", "env_kwargs"), {"size": 5, "autoreset": True}, ["autoreset"]),
    ("apply_api_compatibility", ("families", "gridworld", "env_kwargs"), {"size": 5, "apply_api_compatibility": True}, ["apply_api_compatibility"]),
    ("render_mode human", ("families", "bandit", "env_kwargs"), {"render_mode": "human"}, ["render_mode 'human'", "Bandit"]),
    ("render_mode rgb_array_list", ("families", "bandit", "env_kwargs"), {"render_mode": "rgb_array_list"}, ["render_mode"]),
    ("disable_env_checker not a bool", ("families", "bandit", "env_kwargs"), {"disable_env_checker": "yes"}, ["disable_env_checker"]),
    ("a bandit horizon of 1e9", ("families", "bandit", "env_kwargs"), {"horizon": 1_000_000_000}, ["[families.bandit]", "horizon"]),
    ("cells split typo", ("cells", "maxent"), {"splits": ["tset"]}, ["[cells.maxent] splits ['tset']", "test"]),
    ("cells n_demos not in the grid", ("cells", "maxent"), {"n_demos": [3]}, ["[cells.maxent] n_demos [3]", "[1, 4]"]),
    ("cells seed not in the suite", ("cells", "maxent"), {"seeds": [7]}, ["[cells.maxent] seeds [7]", "[0]"]),
    ("cells split of another family", ("cells", "maxent"), {"families": ["bandit"], "splits": ["test_unseen"]}, ["[cells.maxent] splits ['test_unseen']"]),
]


@pytest.mark.parametrize("what, path, value, words", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_suite_that_would_fail_at_run_time_is_refused_at_load_naming_the_key(what, path, value, words):
    with pytest.raises((TypeError, ValueError)) as caught:
        suite_from_dict(_with(path, value), "s.toml")
    message = str(caught.value)
    assert message.startswith("s.toml: ") and "\n" not in message, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("kwargs", [{"render_mode": "ansi"}, {"disable_env_checker": True}, {"autoreset": False}, {"max_episode_steps": 10}])
def test_wrapper_keys_that_change_nothing_are_allowed(kwargs):
    suite = suite_from_dict(_with(("families", "tabular_mdp", "env_kwargs"), kwargs))
    assert suite.families["tabular_mdp"].env_kwargs == kwargs


def test_the_overflow_check_is_the_plan_itself_a_large_but_plannable_reward_passes():
    suite_from_dict(_with(("families", "gridworld", "env_kwargs"), {"size": 5, "goal_reward": 1e100}))
    suite_from_dict(_with(("families", "gridworld", "expert"), {"temperature": 1e-6}))  # nearly greedy, still finite


def test_a_cells_filter_that_matches_cells_is_kept():
    suite = suite_from_dict(_with(("cells", "maxent"), {"splits": ["test_unseen"], "n_demos": [4], "seeds": [0]}))
    assert suite.cells["maxent"].allows(family="gridworld", split="test_unseen", n_demos=4, seed=0)


def test_a_method_temperature_that_overflows_the_plan_is_refused_at_load():
    with pytest.raises(ValueError, match=r"s.toml: \[families.gridworld\] env_kwargs .*soft plan at the method 'mandril' temperature 1e-300"):
        suite_from_dict(_with(("settings", "mandril", "temperature"), 1e-300), "s.toml")
