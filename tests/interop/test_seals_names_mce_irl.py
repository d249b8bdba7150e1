"""``env.unwrapped`` reads like seals' ``TabularModelPOMDP``: imitation's ``MCEIRL`` runs on it directly
(main environment: imitation 1.0.1, seals 0.2.1)."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from imitation.algorithms.mce_irl import MCEIRL, mce_occupancy_measures
from imitation.rewards import reward_nets
from imitation.util import logger as imitation_logger
from seals import base_envs

import mandril_envs
from mandril.eval.metrics import score
from mandril_envs import demos

# what seals' BaseTabularModelPOMDP / TabularModelPOMDP users read, and imitation's MCEIRL with them
SEALS_ATTRIBUTES = (
    "state_space", "action_space", "observation_space", "observation_matrix", "transition_matrix", "reward_matrix",
    "initial_state_dist", "horizon", "state_dim", "action_dim", "obs_dim", "obs_dtype", "feature_matrix", "state", "n_actions_taken",
)
SEALS_METHODS = ("initial_state", "transition", "reward", "terminal", "obs_from_state")


def test_every_name_seals_declares_is_there():
    declared = {n for cls in (base_envs.BaseTabularModelPOMDP, base_envs.TabularModelPOMDP, base_envs.ResettablePOMDP) for n in vars(cls) if not n.startswith("_")}
    env = gym.make("mandril_envs/GridWorld-v0", obs_type="features").unwrapped
    missing = sorted(n for n in declared if not hasattr(env, n))
    assert missing == [], missing
    for name in SEALS_ATTRIBUTES + SEALS_METHODS:
        assert hasattr(env, name), name


@pytest.mark.parametrize("env_id", mandril_envs.ENV_IDS)
def test_seals_model_interface_matches_the_model(env_id):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    assert env.state_space == spaces.Discrete(env.state_dim)
    for state in range(min(env.state_dim, 5)):
        for action in range(min(env.action_dim, 3)):
            table = env.reward_matrix
            expected = table[state] if table.ndim == 1 else table[state, action]
            assert env.reward(state, action, 0) == pytest.approx(float(expected), abs=0)
            assert env.transition_matrix[state, action, env.transition(state, action)] > 0
    assert env.initial_state_dist[env.initial_state()] > 0
    assert not env.terminal(0, env.horizon - 1) and env.terminal(0, env.horizon)
    assert env.n_actions_taken == 0
    env.step(0)
    assert env.n_actions_taken == 1 and env.obs_from_state(env.state) == env.observation(env.state)


def test_mce_occupancy_measures_runs_on_env_unwrapped():
    """What the guide promises (docs/guide/ecosystem.md): imitation's functions take ``env.unwrapped`` as it is."""
    env = gym.make("mandril_envs/GridWorld-v0").unwrapped
    occupancy, _ = mce_occupancy_measures(env)
    assert occupancy.shape == (env.horizon + 1, env.state_dim)
    np.testing.assert_allclose(occupancy.sum(axis=1), 1.0, atol=1e-10)


def _train_mce_irl(obs_type: str, lr: float, iterations: int):
    env = gym.make("mandril_envs/GridWorld-v0", obs_type=obs_type).unwrapped
    expert = gym.make("mandril_envs/GridWorld-v0").unwrapped  # MCEIRL counts states: demos observe indices
    trajectories = [t.to_imitation() for t in demos.generate(expert, 50, policy="soft", seed=0)]
    net = reward_nets.BasicRewardNet(env.observation_space, env.action_space, hid_sizes=[], use_action=False, use_done=False, use_next_state=False)
    trainer = MCEIRL(trajectories, env, net, rng=np.random.default_rng(0), optimizer_kwargs={"lr": lr}, log_interval=None,
                     custom_logger=imitation_logger.configure(format_strs=[]))  # no progress.csv left open in /tmp
    trainer.train(max_iter=iterations)
    with th.no_grad():
        learned = net(th.as_tensor(env.observation_matrix), None, None, None).numpy().astype(np.float64)
    return score(env.model, learned).normalized_evd


@pytest.mark.filterwarnings("error")
def test_mce_irl_on_env_unwrapped_learns_a_linear_reward_on_the_features():
    """``MCEIRL(trajectories, env.unwrapped, reward_net)`` as imitation's docs call it, no adapter: a linear
    reward net on GridWorld's features trains to a normalized EVD near 0 (measured 0.009 after 60 steps)."""
    assert _train_mce_irl("features", lr=0.1, iterations=60) < 0.05


@pytest.mark.filterwarnings("error")
def test_mce_irl_on_env_unwrapped_learns_a_tabular_reward_on_the_indices():
    """With ``obs_type="index"`` the observation matrix is the one-hot of each state (a tabular reward):
    from 50 demos it is far better than acting at random (measured 0.083; 1 is random)."""
    assert _train_mce_irl("index", lr=1.0, iterations=100) < 0.2


def test_dataset_to_imitation_feeds_mce_irl_on_the_tasks_env():
    from imitation.data.types import TrajectoryWithRew

    from mandril_envs.dataset import collect

    dataset = collect("mandril_envs/GridWorld-v0", n_tasks=2, n_demos=50, split="test", demo_seed=1)
    trajectories = dataset.to_imitation(1)
    assert len(trajectories) == 50 and all(isinstance(t, TrajectoryWithRew) and not t.terminal for t in trajectories)
    np.testing.assert_array_equal(trajectories[3].obs, dataset.states[1, 3])
    np.testing.assert_array_equal(trajectories[3].acts, dataset.actions[1, 3])
    np.testing.assert_allclose(trajectories[3].rews, dataset.rewards[1, 3])
    assert dataset.to_imitation(1, obs_type="onehot")[3].obs.shape == (dataset.horizon + 1, 64)
    env = dataset.make_env(1, obs_type="features").unwrapped
    net = reward_nets.BasicRewardNet(env.observation_space, env.action_space, hid_sizes=[], use_action=False, use_done=False, use_next_state=False)
    trainer = MCEIRL(trajectories, env, net, rng=np.random.default_rng(0), optimizer_kwargs={"lr": 0.1}, log_interval=None,
                     custom_logger=imitation_logger.configure(format_strs=[]))
    trainer.train(max_iter=60)
    with th.no_grad():
        learned = net(th.as_tensor(env.observation_matrix), None, None, None).numpy().astype(np.float64)
    assert score(env.model, learned).normalized_evd < 0.05
    with pytest.raises(ValueError, match="index"):
        dataset.to_imitation(2)
