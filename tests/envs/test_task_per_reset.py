"""TaskPerReset: a new task of a split at every reset, reproducible from the seed, different per sub-env
(registry-driven: runs on gymnasium 0.29.1 and 1.x)."""

import gymnasium as gym
import numpy as np
import pytest

import mandril_envs
from mandril_envs.tasks import Task
from mandril_envs.wrappers import TaskPerReset

IDS = mandril_envs.ENV_IDS


def _task(env_id, seed, **kwargs):
    _, info = TaskPerReset(gym.make(env_id), **kwargs).reset(seed=seed)
    return info["task"]


@pytest.mark.parametrize("env_id", IDS)
def test_different_seeds_different_tasks_same_seed_same_task(env_id):
    first, again, other = _task(env_id, 1), _task(env_id, 1), _task(env_id, 2)
    assert isinstance(first, Task) and first.split == "train" and first.seed == 0
    assert first == again and first.params != other.params
    env = TaskPerReset(gym.make(env_id), split="test")
    _, info = env.reset(seed=1)
    assert info["task"].split == "test" and env.unwrapped.task == info["task"] and info["t"] == 0
    # the task installed is exactly the split's task of that index: its true model rebuilds from the info
    fresh = gym.make(env_id).unwrapped
    fresh.set_task(info["task"].to_json())
    np.testing.assert_array_equal(fresh.reward_matrix, env.unwrapped.reward_matrix)
    np.testing.assert_array_equal(fresh.successor_probs, env.unwrapped.successor_probs)


@pytest.mark.parametrize("env_id", ["mandril_envs/GridWorld-v0", "mandril_envs/TabularMDP-v0", "mandril_envs/Bandit-K10-v0"])
def test_episodes_are_reproducible_and_unseeded_resets_draw_new_tasks(env_id):
    def run(seed):
        env = TaskPerReset(gym.make(env_id))
        env.action_space.seed(seed)
        record = []
        for episode in range(3):
            obs, info = env.reset(seed=seed if episode == 0 else None)
            record.append((info["task"].index, np.asarray(obs).tolist()))
            for _ in range(env.unwrapped.horizon):
                obs, reward, *_ = env.step(env.action_space.sample())
                record.append((np.asarray(obs).tolist(), reward))
        return record

    first = run(5)
    assert first == run(5) and first != run(6)
    tasks = [rec[0] for rec in first[:: gym.make(env_id).unwrapped.horizon + 1]]
    assert len(set(tasks)) == 3, f"three episodes, three tasks: {tasks}"


def test_a_new_task_keeps_the_seeded_action_space():
    env = TaskPerReset(gym.make("mandril_envs/Bandit-K50-v0"))
    space = env.unwrapped.action_space
    env.action_space.seed(4)
    expected = gym.spaces.Discrete(50, seed=4)
    env.reset(seed=1)
    env.reset(seed=2)
    assert env.unwrapped.action_space is space
    assert [env.action_space.sample() for _ in range(5)] == [expected.sample() for _ in range(5)]


def test_the_task_draw_does_not_change_the_episode_stream_of_a_task():
    """The task draw has its own stream: with its task given, an episode is the plain env's episode."""
    env_id = "mandril_envs/TabularMDP-v0"
    wrapped = TaskPerReset(gym.make(env_id))
    obs, info = wrapped.reset(seed=3)
    plain = gym.make(env_id, task=info["task"].to_dict())
    obs_plain, _ = plain.reset(seed=3)
    assert obs == obs_plain
    for action in [0, 1, 2, 3, 4, 0, 1]:
        assert wrapped.step(action)[:2] == plain.step(action)[:2]


def test_a_pool_of_tasks_and_an_explicit_task():
    env = TaskPerReset(gym.make("mandril_envs/Bandit-v0"), n_tasks=3, task_seed=7)
    indices = set()
    for seed in range(30):
        _, info = env.reset(seed=seed)
        indices.add(info["task"].index)
        assert info["task"].seed == 7
    assert indices == {0, 1, 2}
    chosen = env.unwrapped.sample_tasks(1, "test", seed=0, start=99)[0]
    _, info = env.reset(seed=0, options={"task": chosen})
    assert info["task"] == chosen and env.unwrapped.task == chosen


def test_sub_envs_of_a_vector_env_hold_different_tasks_and_change_at_autoreset():
    env_id = "mandril_envs/GridWorld-v0"
    vector = gym.vector.SyncVectorEnv([lambda: TaskPerReset(gym.make(env_id), "train") for _ in range(3)])
    _, infos = vector.reset(seed=0)
    first = [sub.unwrapped.task for sub in vector.envs]
    assert len({t.index for t in first}) == 3 and list(infos["task"]) == first
    _, again = gym.vector.SyncVectorEnv([lambda: TaskPerReset(gym.make(env_id), "train") for _ in range(3)]).reset(seed=0)
    assert list(again["task"]) == first
    horizon = vector.envs[0].unwrapped.horizon
    for _ in range(horizon + 1):  # through the autoreset (0.29: inside the H-th step; 1.x: at the next step)
        vector.step(vector.action_space.sample())
    later = [sub.unwrapped.task for sub in vector.envs]
    assert all(a.index != b.index for a, b in zip(first, later))
    vector.close()


@pytest.mark.skipif(not hasattr(gym, "make_vec"), reason="this gymnasium has no gym.make_vec (SyncVectorEnv is tested above)")
def test_gym_make_vec_with_the_wrapper():
    vector = gym.make_vec("mandril_envs/Bandit-K5-v0", num_envs=4, vectorization_mode="sync", wrappers=[lambda env: TaskPerReset(env, "train")])
    _, infos = vector.reset(seed=11)
    assert len({task.index for task in infos["task"]}) == 4
    vector.close()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"split": "validation"}, ValueError, r"split must be one of \['train', 'test'\], got 'validation'"),
        ({"split": "test_unseen"}, ValueError, r"split must be one of"),
        ({"n_tasks": 0}, ValueError, r"n_tasks must be"),
        ({"task_seed": -1}, ValueError, r"task_seed must be"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        TaskPerReset(gym.make("mandril_envs/Bandit-v0"), **kwargs)


def test_only_suite_envs_are_wrapped():
    with pytest.raises(TypeError, match="env must be a mandril_envs env"):
        TaskPerReset(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="seed must be"):
        TaskPerReset(gym.make("mandril_envs/Bandit-v0")).reset(seed=-3)
