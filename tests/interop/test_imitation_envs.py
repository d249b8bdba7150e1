"""Cross-checks of mandril_envs against imitation 1.0.1 (main environment only).

Conventions: imitation's ``mce_occupancy_measures`` returns ``H + 1`` rows (it adds ``s_H``);
our visitation has ``H`` rows, equal to its first ``H``. Its ``mce_partition_fh`` supports state
rewards only (it broadcasts ``reward[:, None]``), so on the ``(S, A)``-reward TabularMDP-v0 we pass
our policy to its occupancy code instead.
"""

import gymnasium as gym
import numpy as np
import pytest
from imitation.algorithms.mce_irl import mce_occupancy_measures, mce_partition_fh
from imitation.data import rollout
from imitation.data.wrappers import RolloutInfoWrapper
from stable_baselines3.common.vec_env import DummyVecEnv

import mandril_envs
from mandril_envs import demos, planning

CASES = [(env_id, {}) for env_id in mandril_envs.ENV_IDS] + [
    ("mandril_envs/GridWorld-v0", {"slip": 0.25}),
    ("mandril_envs/GridWorld-v0", {"moves": "cross", "slip": 0.1, "size": 5}),
    ("mandril_envs/TabularMDP-Linear-v0", {"n_states": 20, "dirichlet_alpha": 0.2}),
    ("mandril_envs/Bandit-v0", {"arm_distribution": "gaussian", "horizon": 30}),
]


def _state_reward(env) -> bool:
    return env.reward_matrix.ndim == 1 or env.state_dim == 1


@pytest.mark.parametrize("env_id, kwargs", CASES)
def test_planner_matches_imitation(env_id, kwargs):
    env = gym.make(env_id, **kwargs).unwrapped
    for task in env.sample_tasks(3, "test", seed=4):
        env.set_task(task)
        ours = planning.soft_value_iteration(env.model)
        visitation = planning.state_visitation(env.model, ours.policy)
        if _state_reward(env):
            values, q_values, policy = mce_partition_fh(env)
            occupancy, cumulative = mce_occupancy_measures(env)  # unchanged, on the env itself
            np.testing.assert_allclose(ours.values, values, rtol=0, atol=1e-10)
            np.testing.assert_allclose(ours.q_values, q_values, rtol=0, atol=1e-10)
            np.testing.assert_allclose(ours.policy, policy, rtol=0, atol=1e-10)
        else:
            with pytest.raises(ValueError):  # imitation cannot take (S, A) rewards with S > 1
                mce_partition_fh(env)
            occupancy, cumulative = mce_occupancy_measures(env, pi=ours.policy)
        assert occupancy.shape == (env.horizon + 1, env.state_dim)
        np.testing.assert_allclose(visitation, occupancy[:-1], rtol=0, atol=1e-10)
        np.testing.assert_allclose(cumulative, visitation.sum(axis=0) + occupancy[-1], atol=1e-10)


@pytest.mark.parametrize("env_id", mandril_envs.ENV_IDS)
def test_imitation_rollouts_run_on_the_suite(env_id):
    venv = DummyVecEnv([lambda: RolloutInfoWrapper(gym.make(env_id))] * 2)
    trajectories = rollout.generate_trajectories(
        policy=None, venv=venv, sample_until=rollout.make_min_episodes(4), rng=np.random.default_rng(0)
    )
    horizon = gym.make(env_id).unwrapped.horizon
    assert len(trajectories) >= 4 and all(len(t) == horizon for t in trajectories)


def test_trajectory_converts_to_imitation():
    env = gym.make("mandril_envs/GridWorld-v0")
    trajectory = demos.generate(env, 1, seed=0)[0]
    converted = trajectory.to_imitation()
    assert len(converted) == 16 and not converted.terminal
    np.testing.assert_array_equal(converted.obs, trajectory.states)
    np.testing.assert_array_equal(converted.acts, trajectory.actions)
    np.testing.assert_allclose(converted.rews, trajectory.rewards)
    # imitation's own helpers accept them
    stats = rollout.rollout_stats([converted])
    assert stats["n_traj"] == 1 and stats["len_mean"] == 16
