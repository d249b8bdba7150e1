"""Every bad input raises an error that names the argument and what is allowed."""

import gymnasium as gym
import numpy as np
import pytest

import mandril_envs  # noqa: F401
from mandril_envs import Task


@pytest.mark.parametrize(
    "env_id, kwargs, error, message",
    [
        ("mandril_envs/GridWorld-v0", {"size": -3}, ValueError, "size must be >= 2, got -3"),
        ("mandril_envs/GridWorld-v0", {"size": 4.5}, TypeError, "size must be an int"),
        ("mandril_envs/GridWorld-v0", {"slip": 1.5}, ValueError, r"slip must be <= 1.0, got 1.5"),
        ("mandril_envs/GridWorld-v0", {"slip": -0.1}, ValueError, r"slip must be >= 0.0"),
        ("mandril_envs/GridWorld-v0", {"size": 2, "n_obstacles": 4}, ValueError, "5 sprites do not fit on a 2x2 grid"),
        ("mandril_envs/GridWorld-v0", {"obs_type": "pixels"}, ValueError, r"obs_type must be one of \['index', 'onehot', 'features', 'rgb'\]"),
        ("mandril_envs/GridWorld-v0", {"moves": "queen"}, ValueError, "moves must be one of"),
        ("mandril_envs/GridWorld-v0", {"n_sprite_types": 3}, ValueError, "leaves 2 training sprite types"),
        ("mandril_envs/GridWorld-v0", {"render_mode": "video"}, ValueError, "render_mode must be one of"),
        ("mandril_envs/GridWorld-v0", {"horizon": 0}, ValueError, "horizon must be >= 1"),
        ("mandril_envs/TabularMDP-v0", {"n_states": 0}, ValueError, "n_states must be >= 1, got 0"),
        ("mandril_envs/TabularMDP-v0", {"dirichlet_alpha": 0.0}, ValueError, "dirichlet_alpha must be > 0.0"),
        ("mandril_envs/TabularMDP-v0", {"reward_type": "quadratic"}, ValueError, "reward_type must be one of"),
        ("mandril_envs/TabularMDP-v0", {"reward_noise": float("nan")}, ValueError, "reward_noise must be finite"),
        ("mandril_envs/Bandit-v0", {"n_arms": 0}, ValueError, "n_arms must be >= 1"),
        ("mandril_envs/Bandit-v0", {"arm_distribution": "poisson"}, ValueError, "arm_distribution must be one of"),
        ("mandril_envs/Bandit-v0", {"obs_type": "rgb"}, ValueError, "obs_type must be one of"),
    ],
)
def test_bad_kwargs(env_id, kwargs, error, message):
    with pytest.raises(error, match=message):
        gym.make(env_id, **kwargs)


@pytest.mark.parametrize("env_id", mandril_envs.ENV_IDS)
def test_bad_actions(env_id):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=rf"action must be in \[0, {env.action_dim}\), got {env.action_dim}"):
        env.step(env.action_dim)
    with pytest.raises(ValueError, match="action must be in"):
        env.step(-1)
    with pytest.raises(TypeError, match="action must be an int"):
        env.step(0.5)
    with pytest.raises(TypeError, match="action must be an int"):
        env.step("1")


@pytest.mark.parametrize("env_id", mandril_envs.ENV_IDS)
def test_step_before_reset_raises(env_id):
    env = gym.make(env_id).unwrapped
    with pytest.raises(RuntimeError, match=r"step\(\) called before reset\(\)"):
        env.step(0)
    env.reset(seed=0)
    env.step(0)
    env.set_task(env.sample_tasks(1, "test", seed=1)[0])
    with pytest.raises(RuntimeError, match="a new task needs a reset too"):
        env.step(0)


def test_task_from_another_family():
    bandit_task = gym.make("mandril_envs/Bandit-v0").unwrapped.task
    with pytest.raises(ValueError, match="task is from family 'Bandit', but this env is 'GridWorld'"):
        gym.make("mandril_envs/GridWorld-v0", task=bandit_task.to_dict())


def test_task_from_another_config():
    task = gym.make("mandril_envs/GridWorld-16x16-v0").unwrapped.task
    env = gym.make("mandril_envs/GridWorld-v0").unwrapped
    with pytest.raises(ValueError, match=r"config differs from this env's config in \['horizon', 'size'\]"):
        env.set_task(task)


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("{not json", ValueError, "task JSON is malformed"),
        ("[1, 2]", TypeError, "task must be a Task or a mapping"),
        ('{"family": "Bandit"}', ValueError, "task is missing keys"),
        ('{"family": "Bandit", "config": {}, "split": "train", "index": 0, "seed": 0, "params": {}, "extra": 1}', ValueError, "unknown keys"),
        ('{"family": "Bandit", "config": {}, "split": "valid", "index": 0, "seed": 0, "params": {}}', ValueError, "task\\['split'\\] must be one of"),
        ('{"family": "Bandit", "config": {}, "split": "train", "index": "0", "seed": 0, "params": {}}', TypeError, "task\\['index'\\] must be int"),
        ('{"family": "Bandit", "config": {}, "split": "train", "index": -1, "seed": 0, "params": {}}', ValueError, "must be >= 0"),
    ],
)
def test_malformed_task_json(text, error, message):
    with pytest.raises(error, match=message):
        Task.from_json(text)


def _task_with(env, **params):
    data = env.task.to_dict()
    data["params"] = {**data["params"], **params}
    return data


def test_bad_task_params():
    grid = gym.make("mandril_envs/GridWorld-v0").unwrapped
    with pytest.raises(ValueError, match=r"params\['terrain'\] must be 8x8 ints"):
        grid.set_task(_task_with(grid, terrain=[[0]]))
    with pytest.raises(ValueError, match="terrain'\\] values must lie in \\[0, 2\\)"):
        grid.set_task(_task_with(grid, terrain=[[5] * 8] * 8))
    with pytest.raises(ValueError, match=r"params\['obstacles'\] must be a list of 2 sprites"):
        grid.set_task(_task_with(grid, obstacles=[]))
    goal = grid.task.params["goal"]
    with pytest.raises(ValueError, match="already taken"):
        grid.set_task(_task_with(grid, obstacles=[dict(goal), dict(grid.task.params["obstacles"][1])]))
    with pytest.raises(ValueError, match="must be <= 7"):
        grid.set_task(_task_with(grid, goal={"type": goal["type"], "cell": [8, 0]}))
    with pytest.raises(ValueError, match="must be <= 99"):
        grid.set_task(_task_with(grid, goal={"type": 100, "cell": goal["cell"]}))
    mdp = gym.make("mandril_envs/TabularMDP-v0").unwrapped
    with pytest.raises(ValueError, match=r"params\['transitions'\] must have shape \(10, 5, 10\)"):
        mdp.set_task(_task_with(mdp, transitions=[[0.5, 0.5]]))
    bad = np.asarray(mdp.task.params["transitions"])
    bad[0, 0] *= 2
    with pytest.raises(ValueError, match="rows must be probability distributions"):
        mdp.set_task(_task_with(mdp, transitions=bad.tolist()))
    bandit = gym.make("mandril_envs/Bandit-v0").unwrapped
    with pytest.raises(ValueError, match="Bernoulli arm means must lie in"):
        bandit.set_task(_task_with(bandit, means=[0.1, 0.2, 1.3, 0.4, 0.5]))
    with pytest.raises(ValueError, match="must have 5 entries"):
        bandit.set_task(_task_with(bandit, means=[0.1]))


def test_sample_tasks_arguments():
    env = gym.make("mandril_envs/Bandit-v0").unwrapped
    with pytest.raises(ValueError, match="split must be one of"):
        env.sample_tasks(2, "test_unseen")
    with pytest.raises(ValueError, match="n must be >= 0"):
        env.sample_tasks(-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        env.sample_tasks(1, seed=1.5)
    grid = gym.make("mandril_envs/GridWorld-v0", unseen_fraction=0.0).unwrapped
    with pytest.raises(ValueError, match="'test_unseen' needs at least 3 unseen sprite types"):
        grid.sample_tasks(1, "test_unseen")
    no_test = gym.make("mandril_envs/GridWorld-v0", test_combination_fraction=0.0).unwrapped
    with pytest.raises(ValueError, match="could not draw a 'test' sprite combination"):
        no_test.sample_tasks(1, "test")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"n_goals": 0}, ValueError, "n_goals must be >= 1, got 0"),
        ({"goal_spread": -1.0}, ValueError, r"goal_spread must be >= 0.0, got -1.0"),
        ({"terrain_spread": float("inf")}, ValueError, "terrain_spread must be finite"),
        ({"appearance_slope": "steep"}, TypeError, "appearance_slope must be a number"),
        ({"sprite_feature_dim": 1}, ValueError, "sprite_feature_dim must be >= 2"),
        ({"n_sprite_types": 6}, ValueError, "leaves 3 training sprite types of kind 'goal', fewer than the 4 goal sprites"),
        ({"size": 2}, ValueError, "6 sprites do not fit on a 2x2 grid"),
    ],
)
def test_gridworld_intent_bad_kwargs(kwargs, error, message):
    with pytest.raises(error, match=message):
        gym.make("mandril_envs/GridWorld-Intent-v0", **kwargs)


def test_gridworld_intent_bad_task_params():
    from mandril_envs.envs.gridworld_intent import sprite_kind_is_goal

    env = gym.make("mandril_envs/GridWorld-Intent-v0").unwrapped
    params = env.task.params
    goals, obstacles = params["goals"], params["obstacles"]
    with pytest.raises(ValueError, match=r"must have keys \['goals', 'obstacles', 'terrain', 'terrain_weights'\]"):
        env.set_task(_task_with(env, goal=goals[0]))
    with pytest.raises(ValueError, match=r"params\['terrain_weights'\] must be a list of 4 numbers"):
        env.set_task(_task_with(env, terrain_weights=[0.0]))
    with pytest.raises(ValueError, match=r"params\['terrain_weights'\]\[1\] must be finite"):
        env.set_task(_task_with(env, terrain_weights=[0.0, float("nan"), 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"params\['goals'\] must be a list of 4 sprites"):
        env.set_task(_task_with(env, goals=goals[:3]))
    with pytest.raises(ValueError, match=r"params\['goals\[0\]'\] must be \{'type': int, 'cell': \[row, col\], 'value': float\}"):
        env.set_task(_task_with(env, goals=[{"type": goals[0]["type"], "cell": goals[0]["cell"]}] + goals[1:]))
    with pytest.raises(TypeError, match=r"params\['obstacles\[1\]'\]\['penalty'\] must be a number"):
        env.set_task(_task_with(env, obstacles=[obstacles[0], {**obstacles[1], "penalty": "high"}]))
    with pytest.raises(ValueError, match="already taken"):
        env.set_task(_task_with(env, obstacles=[obstacles[0], {**obstacles[1], "cell": goals[2]["cell"]}]))
    obstacle_type = next(t for t in env.training_types if not sprite_kind_is_goal(t, 8))
    with pytest.raises(ValueError, match=rf"params\['goals\[1\]'\]\['type'\] {obstacle_type} is an obstacle sprite type"):
        env.set_task(_task_with(env, goals=[goals[0], {**goals[1], "type": obstacle_type}] + goals[2:]))


def test_what_the_fuzz_test_found():
    """Inputs the fuzz test (test_fuzz.py) found accepted or crashing, each now refused with a clear error."""
    with pytest.raises(ValueError, match="task JSON is malformed: nested too deeply"):
        Task.from_json("[" * 100_000)
    grid = gym.make("mandril_envs/GridWorld-v0").unwrapped
    task = grid.task.to_dict()
    with pytest.raises(ValueError, match=r"task config differs from this env's config in \['obstacle_radius'\]"):
        grid.set_task({**task, "config": {**task["config"], "obstacle_radius": True}})  # True == 1 to Python
    terrain = [list(row) for row in task["params"]["terrain"]]
    terrain[2][3] = True
    with pytest.raises(TypeError, match=r"params\['terrain'\] must be 8x8 ints: params\['terrain'\]\[2, 3\] must be an int, got bool True"):
        grid.set_task(_task_with(grid, terrain=terrain))
    mdp = gym.make("mandril_envs/TabularMDP-v0").unwrapped
    reward = np.asarray(mdp.task.params["reward"]).tolist()
    reward[1][0] = True
    with pytest.raises(TypeError, match=r"params\['reward'\]\[1, 0\] must be a number, got bool True"):
        mdp.set_task(_task_with(mdp, reward=reward))
    reward[1][0] = "0.5"
    with pytest.raises(TypeError, match=r"params\['reward'\]\[1, 0\] must be a number, got str '0.5'"):
        mdp.set_task(_task_with(mdp, reward=reward))
    with pytest.raises(ValueError, match=r"params\['reward'\] must have shape \(10, 5\), got \(2,\)|ragged"):
        mdp.set_task(_task_with(mdp, reward=[[1.0, 2.0], [3.0]]))
