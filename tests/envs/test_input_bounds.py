"""Issue 20 (items 6 and 7) on the mandril_envs side: sizes, env kwargs, datasets."""

from __future__ import annotations

import gymnasium as gym
import pytest

import mandril_envs  # noqa: F401  (registers the ids)


@pytest.mark.parametrize("env_id", ["mandril_envs/GridWorld-v0", "mandril_envs/Bandit-v0", "mandril_envs/TabularMDP-v0"])
def test_sample_tasks_refuses_an_absurd_count_before_drawing_any(env_id):
    base = gym.make(env_id).unwrapped
    with pytest.raises(ValueError, match=r"sample_tasks n=1000000000000 .* would take about .* more than"):
        base.sample_tasks(10**12, "test")
    assert len(base.sample_tasks(3, "test")) == 3
