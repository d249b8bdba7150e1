"""What a reward model reads of a task (reward_input) and the goal scoring needs, for every registered id."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import mandril_envs


@pytest.mark.parametrize("env_id", mandril_envs.ENV_IDS)
def test_every_declared_reward_input_is_a_finite_float64_copy(env_id):
    base = gym.make(env_id).unwrapped
    assert "features" in base.reward_input_kinds
    for kind in base.reward_input_kinds:
        value = base.reward_input(kind)
        assert value.dtype == np.float64 and np.isfinite(value).all() and value.flags.writeable
    np.testing.assert_array_equal(base.reward_input("features"), base.feature_matrix)
    with pytest.raises(ValueError, match="kind must be one of"):
        base.reward_input("pixels")
    goal = base.goal_state
    assert goal is None or 0 <= goal < base.state_dim


def test_gridworld_map_and_rgb_inputs():
    base = gym.make("mandril_envs/GridWorld-v0", size=6).unwrapped
    features = base.feature_matrix
    grid = base.reward_input("map")
    assert grid.shape == (features.shape[1], 6, 6)
    np.testing.assert_array_equal(grid[:, 2, 3], features[2 * 6 + 3])
    rgb = base.reward_input("rgb")
    assert rgb.shape == (3, 30, 30) and 0 <= rgb.min() and rgb.max() <= 1
    np.testing.assert_array_equal(rgb * 255, base.map_image().transpose(2, 0, 1))
    row, col = base.task.params["goal"]["cell"]
    assert base.goal_state == row * 6 + col and base.reward_matrix[base.goal_state] >= 4.0
