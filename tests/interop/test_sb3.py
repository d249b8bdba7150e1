"""Every registered id works with Stable-Baselines3 as its users call it: ``make_vec_env`` (which asks
for ``render_mode="rgb_array"``), SB3's ``check_env``, and a few hundred steps of PPO.

Runs in the main environment (SB3 2.2.1, gymnasium 0.29.1) and in CI leg 3 (the newest SB3 and gymnasium 1.x).
"""

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

import mandril_envs  # noqa: E402
from mandril_envs import testing  # noqa: E402


@pytest.mark.parametrize("env_id", mandril_envs.ENV_IDS)
def test_sb3_check_env_and_make_vec_env(env_id):
    testing.check_sb3_check_env(env_id)
    testing.check_sb3_make_vec_env(env_id)


@pytest.mark.parametrize("env_id", mandril_envs.ENV_IDS)
def test_ppo_trains_a_few_hundred_steps(env_id):
    venv = make_vec_env(env_id, n_envs=2, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=2, seed=0, verbose=0)
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    obs = venv.reset()
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (2,) and all(venv.action_space.contains(int(a)) for a in actions)
    venv.close()


@pytest.mark.parametrize("obs_type", ["onehot", "features", "rgb"])
def test_every_gridworld_observation_type_with_sb3(obs_type):
    testing.check_sb3_check_env("mandril_envs/GridWorld-v0", obs_type=obs_type)
    venv = make_vec_env("mandril_envs/GridWorld-v0", n_envs=2, seed=0, env_kwargs={"obs_type": obs_type})
    policy = "CnnPolicy" if obs_type == "rgb" else "MlpPolicy"
    PPO(policy, venv, n_steps=32, batch_size=32, n_epochs=1, seed=0, verbose=0).learn(total_timesteps=64)
    venv.close()


@pytest.mark.filterwarnings("error")
def test_make_vec_env_with_a_task_per_reset_holds_different_tasks_and_trains():
    """RL^2-style training as SB3 users write it: a new task per episode, a different one per sub-env."""
    from mandril_envs.wrappers import TaskPerReset

    venv = make_vec_env("mandril_envs/Bandit-K10-v0", n_envs=4, seed=0, wrapper_class=TaskPerReset, wrapper_kwargs={"split": "train"})
    venv.reset()
    first = [env.unwrapped.task.index for env in venv.envs]
    assert len(set(first)) == 4
    horizon = venv.envs[0].unwrapped.horizon
    for _ in range(horizon):
        _, _, dones, infos = venv.step(np.array([venv.action_space.sample() for _ in range(4)]))
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
    later = [env.unwrapped.task.index for env in venv.envs]
    assert all(a != b for a, b in zip(first, later))  # SB3 reset each sub-env at the horizon: new tasks
    PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, verbose=0).learn(total_timesteps=256)
    venv.close()
