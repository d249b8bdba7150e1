"""The numpy VecEnv of the adversarial generators and the numpy demo batches (issue 17, item 3): the
same episodes as the Python env it replaces, DummyVecEnv's reset/truncation semantics, the model's
successor frequencies, seeding, and batches that are exactly the demos' transitions."""

from __future__ import annotations

from collections import Counter

import gymnasium as gym
import numpy as np
import pytest
from imitation.data import rollout

import mandril_envs  # noqa: F401
from mandril.eval import shown_and_heldout_demos
from mandril.methods import hide_reward
from mandril.methods.imitation.adapters import Observations, TabularModelEnv, demos_to_trajectories
from mandril.methods.imitation.common import ExpertBatches
from mandril.methods.imitation.vec_env import TabularVecEnv, make_venv


def _model(env_id: str = "mandril_envs/TabularMDP-v0"):
    env = gym.make(env_id)
    base = env.unwrapped
    base.set_task(base.sample_tasks(1, "test", seed=3)[0])
    return env, hide_reward(base.model)


@pytest.mark.parametrize("time_feature", ["none", "onehot", "fraction"])
def test_one_copy_replays_the_python_envs_episodes_for_the_same_seed(time_feature):
    # the same generator, one uniform per draw, the same inverse-CDF lookup: the same episodes
    _, model = _model()
    venv, env = TabularVecEnv(model, time_feature, 1), TabularModelEnv(model, time_feature)
    venv.seed(11)
    obs = venv.reset()
    expected, _ = env.reset(seed=11)
    np.testing.assert_array_equal(obs[0], expected)
    actions = np.random.default_rng(0).integers(model.action_dim, size=3 * model.horizon)
    for i, action in enumerate(actions):
        obs, rewards, dones, infos = venv.step(np.array([action]))
        expected, reward, terminated, truncated, info = env.step(int(action))
        assert rewards[0] == reward == 0.0 and not terminated
        assert bool(dones[0]) == truncated == ((i + 1) % model.horizon == 0)
        assert infos[0]["state"] == info["state"] and infos[0]["t"] == info["t"]
        if truncated:  # DummyVecEnv's semantics: the last observation in the info, the next episode's first returned
            np.testing.assert_array_equal(infos[0]["terminal_observation"], expected)
            assert infos[0]["TimeLimit.truncated"] is True
            expected, info = env.reset()
            assert venv.observations.encode(info["state"], 0).tolist() == obs[0].tolist()
        else:
            assert "terminal_observation" not in infos[0]
        np.testing.assert_array_equal(obs[0], expected)


def test_copies_step_together_reset_at_the_horizon_and_follow_the_models_probabilities():
    _, model = _model()
    n = 4000
    venv = make_venv(model, "onehot", n)
    assert venv.num_envs == n and venv.observation_space.shape == (model.state_dim + model.horizon + 1,) and venv.action_space.n == model.action_dim
    venv.seed(0)
    obs = venv.reset()
    starts = obs[:, : model.state_dim].argmax(1)
    assert np.abs(np.bincount(starts, minlength=model.state_dim) / n - model.initial_state_dist).max() < 0.03
    actions = np.ones(n, dtype=np.int64)
    obs, _, dones, infos = venv.step(actions)
    states = obs[:, : model.state_dim].argmax(1)
    assert not dones.any() and [info["state"] for info in infos] == states.tolist()
    np.testing.assert_array_equal(obs[:, model.state_dim :].argmax(1), np.ones(n))  # t = 1 everywhere
    # every copy moved from its own start by action 1: pool the transitions by start state
    transition = np.asarray(model.transition_matrix)
    for start in np.unique(starts):
        rows = starts == start
        if rows.sum() > 500:
            frequencies = np.bincount(states[rows], minlength=model.state_dim) / rows.sum()
            assert np.abs(frequencies - transition[start, 1]).max() < 0.07
    for _ in range(model.horizon - 1):
        obs, _, dones, infos = venv.step(actions)
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
    np.testing.assert_array_equal(obs[:, model.state_dim :].argmax(1), np.zeros(n))  # every copy restarted at t = 0
    np.testing.assert_array_equal(np.stack([info["terminal_observation"] for info in infos])[:, model.state_dim :].argmax(1), np.full(n, model.horizon))


def test_the_same_seed_gives_the_same_stream_and_bad_use_is_refused():
    _, model = _model("mandril_envs/GridWorld-v0")
    runs = []
    for _ in range(2):
        venv = make_venv(model, "none", 8)
        venv.seed(5)
        trace = [venv.reset()]
        for step in range(2 * model.horizon):
            trace.append(venv.step(np.full(8, step % model.action_dim))[0])
        runs.append(np.stack(trace))
    np.testing.assert_array_equal(runs[0], runs[1])
    venv = make_venv(model, "none", 2)
    with pytest.raises(RuntimeError, match="before reset"):
        venv.step(np.zeros(2, dtype=np.int64))
    venv.reset()
    for bad in (np.zeros(3, dtype=np.int64), np.array([0, model.action_dim]), np.array([0.0, 1.0])):
        with pytest.raises(ValueError, match=r"actions must be 2 ints in \[0, 9\)"):
            venv.step_async(bad)
    with pytest.raises(ValueError, match="n_envs"):
        make_venv(model, "none", 0)
    with pytest.raises(TypeError, match="TabularModel"):
        make_venv("model", "none", 1)


def test_expert_batches_are_distinct_demo_transitions_drawn_reproducibly():
    env, _ = _model("mandril_envs/GridWorld-v0")
    model = env.unwrapped.model
    demos = shown_and_heldout_demos(env, 3, seed=0)
    observations = Observations(model.state_dim, model.horizon, "onehot")
    trajectories = demos_to_trajectories(demos.states, demos.actions, observations)
    flat = rollout.flatten_trajectories(trajectories)
    rows = Counter((o.tobytes(), int(a), n.tobytes()) for o, a, n in zip(flat.obs, flat.acts, flat.next_obs))
    batches = ExpertBatches(trajectories, 40, seed=1)
    again = ExpertBatches(trajectories, 40, seed=1)
    for _, batch in zip(range(5), batches):
        assert set(batch) == {"obs", "acts", "next_obs", "dones"} and batch["obs"].shape == (40, observations.dim)
        drawn = Counter((o.tobytes(), int(a), n.tobytes()) for o, a, n in zip(batch["obs"], batch["acts"], batch["next_obs"]))
        assert not drawn - rows and not batch["dones"].any()  # demo transitions, none drawn twice
        other = again.next()
        for key in batch:
            np.testing.assert_array_equal(batch[key], other[key])
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 48\]"):
        ExpertBatches(trajectories, 49, seed=0)
