"""Registry-driven checks: every registered id gets every check with no per-env code."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mandril_envs
from mandril_envs import testing
from mandril_envs.envs import BanditEnv

IDS = list(mandril_envs.ENV_IDS)


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_check_env(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", IDS)
def test_model(env_id):
    testing.check_model(gym.make(env_id))


@pytest.mark.parametrize("env_id", IDS)
def test_step_samples_the_model(env_id):
    testing.check_step_matches_model(gym.make(env_id))


@pytest.mark.parametrize("env_id", IDS)
def test_seeded_determinism(env_id):
    testing.check_seeded_determinism(lambda: gym.make(env_id))


@pytest.mark.parametrize("env_id", IDS)
def test_tasks(env_id):
    testing.check_tasks(gym.make(env_id))


@pytest.mark.parametrize("env_id", IDS)
def test_pickle(env_id):
    testing.check_pickle(gym.make(env_id))


@pytest.mark.parametrize("env_id", IDS)
def test_spec_roundtrip(env_id):
    testing.check_spec_roundtrip(env_id)


@pytest.mark.parametrize("env_id", IDS)
def test_sync_vector_env(env_id):
    testing.check_vector_env(env_id)


@pytest.mark.parametrize("env_id", IDS)
def test_steps_after_truncation_are_graceful(env_id):
    testing.check_step_after_truncation(gym.make(env_id))
    testing.check_step_after_truncation(gym.make(env_id).unwrapped)


def test_step_after_truncation_check_catches_an_env_that_keeps_paying():
    class Overtime(mandril_envs.envs.BanditEnv):
        def step(self, action):
            self._past_horizon = False
            return super().step(action)

    with pytest.raises(AssertionError, match="a step after the horizon (paid|moved)"):
        testing.check_step_after_truncation(Overtime())


def test_deterministic_observation_ids_are_the_bandits():
    ids = testing.deterministic_observation_ids(IDS)
    assert ids == [rf"mandril_envs/Bandit{k}\-v0$" for k in ("", r"\-K5", r"\-K10", r"\-K50")]
    assert testing.deterministic_observation_ids(["mandril_envs/GridWorld-v0"]) == []


@pytest.mark.parametrize("env_id", IDS)
def test_truncates_at_horizon_and_never_terminates(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    horizon = env.unwrapped.horizon
    for t in range(horizon):
        _, _, terminated, truncated, info = env.step(0)
        assert not terminated
        assert truncated == (t == horizon - 1)
        assert info["t"] == t + 1


@pytest.mark.parametrize("env_id", IDS)
def test_module_colon_id_form(env_id):
    env = gym.make(f"mandril_envs:{env_id}")
    assert env.unwrapped.spec.id == env_id


@pytest.mark.parametrize("env_id", IDS)
def test_every_obs_type(env_id):
    for obs_type in type(gym.make(env_id).unwrapped).obs_types:
        env = gym.make(env_id, obs_type=obs_type)
        obs, info = env.reset(seed=1)
        assert env.observation_space.contains(obs), (obs_type, obs)
        obs, *_ = env.step(0)
        assert env.observation_space.contains(obs)
        if obs_type == "onehot":
            assert obs.argmax() == env.unwrapped.state


def test_statistical_model_check_catches_a_lie():
    """The model-consistency check must fail on an env whose step() does not sample its matrix."""

    class Liar(mandril_envs.envs.TabularMDPEnv):
        def step(self, action):
            out = super().step(action)
            self._state = int((self._state + 1) % self.state_dim) if self.np_random.random() < 0.3 else self._state
            return (self.observation(self._state), out[1], out[2], out[3], {**out[4], "state": self._state})

    with pytest.raises(AssertionError):
        testing.check_step_matches_model(Liar(dirichlet_alpha=5.0))


def test_statistical_model_check_catches_wrong_reward():
    class Overpaid(mandril_envs.envs.TabularMDPEnv):
        def _sample_reward(self, state, action, mean):
            return super()._sample_reward(state, action, mean) + 0.5

    with pytest.raises(AssertionError, match="mean rewards"):
        testing.check_step_matches_model(Overpaid())


def test_registered_variants():
    assert gym.make("mandril_envs/GridWorld-16x16-v0").unwrapped.state_dim == 256
    assert gym.make("mandril_envs/GridWorld-32x32-v0").unwrapped.state_dim == 1024
    for k in (5, 10, 50):
        env = gym.make(f"mandril_envs/Bandit-K{k}-v0").unwrapped
        assert env.transition_matrix.shape == (1, k, 1) and env.reward_matrix.shape == (1, k)
    assert gym.make("mandril_envs/TabularMDP-Linear-v0").unwrapped.reward_matrix.shape == (10,)
    np.testing.assert_array_equal(gym.make("mandril_envs/Bandit-v0").unwrapped.arm_means, gym.make("mandril_envs/Bandit-K5-v0").unwrapped.arm_means)
