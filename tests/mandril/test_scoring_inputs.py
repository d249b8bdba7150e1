"""Issue 20 (item 6): a task whose optimal and uniform returns are equal cannot be scored (normalized EVD
would be 0/0): ``score`` refuses it, the harness records an error for it (never a perfect score), and a
suite whose family has such tasks is refused at load."""

from __future__ import annotations

import copy
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import mandril
import mandril_envs  # noqa: F401  (registers the ids)
from mandril.bench import RunStore, run_suite, suite_from_dict
from mandril.core.config import load_toml

ROOT = Path(__file__).resolve().parents[2]
FLAT = {"size": 5, "terrain_rewards": [0.0, 0.0], "goal_reward": 0.0, "obstacle_penalty": 0.0}  # every reward 0


def test_score_refuses_a_hidden_reward_instead_of_a_perfect_score():
    model = gym.make("mandril_envs/GridWorld-v0").unwrapped.model
    hidden = mandril.hide_reward(model)
    for output in (np.zeros(model.state_dim), np.random.default_rng(0).normal(size=model.state_dim)):
        with pytest.raises(ValueError, match="optimal return .* equals the uniform policy's .*normalized EVD"):
            mandril.score(hidden, output)
    assert mandril.score(model, np.zeros(model.state_dim)).normalized_evd > 0.5  # the true reward still scores


def test_a_family_whose_rewards_are_all_equal_is_refused_at_load():
    data = load_toml(ROOT / "benchmarks" / "suites" / "smoke.toml")
    data["families"]["gridworld"]["env_kwargs"] = FLAT
    with pytest.raises(ValueError, match=r"\[families.gridworld\] env_kwargs .*equals the uniform policy's"):
        suite_from_dict(data)


def test_the_harness_records_an_unscorable_task_as_an_error(tmp_path, monkeypatch):
    import mandril.bench.suite as suite_module

    monkeypatch.setattr(suite_module, "_check_family_envs", lambda suite: None)  # let the flat family through, to reach scoring
    data = load_toml(ROOT / "benchmarks" / "suites" / "smoke.toml")
    family = copy.deepcopy(data["families"]["gridworld"])
    family.update(env_kwargs=FLAT, splits=["test"], n_tasks=2)
    data.update(methods=["zero_reward", "expert"], settings={}, cells={}, n_demos=[1], families={"gridworld": family})
    summary = run_suite(suite_from_dict(data), tmp_path / "run", progress=False)
    records = RunStore(tmp_path / "run").records()
    assert summary.failed == len(records) == 4
    assert all(r["normalized_evd"] is None and "scoring:" in r["error"] and "equals the uniform" in r["error"] for r in records)
