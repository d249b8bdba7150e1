"""Family-specific behaviour: GridWorld rewards, splits and views; TabularMDP; Bandit."""

import json

import gymnasium as gym
import numpy as np
import pytest

import mandril_envs  # noqa: F401
from mandril_envs.envs.gridworld import CELL_PIXELS, GridWorldEnv, _combination_is_test, sprite_appearance


@pytest.fixture
def grid():
    return GridWorldEnv()


def test_gridworld_reward_is_what_lies_at_and_near_a_cell(grid):
    params = grid.task.params
    size = grid.config["size"]
    reward = grid.reward_matrix.reshape(size, size)
    terrain = np.asarray(params["terrain"])
    goal = params["goal"]["cell"]
    expected = np.where(terrain == 0, 0.0, -1.0)
    expected[goal[0], goal[1]] += 5.0
    for obstacle in params["obstacles"]:
        r, c = obstacle["cell"]
        expected[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = np.where(terrain == 0, 0.0, -1.0)[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] - 10.0
    np.testing.assert_array_equal(reward, expected)
    # the goal is never in an obstacle's penalty zone
    assert reward[goal[0], goal[1]] >= 4.0


def test_gridworld_features(grid):
    params = grid.task.params
    size, dim = 8, 8
    features = grid.feature_matrix
    assert features.shape == (64, 2 + 2 * (dim + 1))
    np.testing.assert_array_equal(features[:, :2].argmax(axis=1), np.asarray(params["terrain"]).ravel())
    gr, gc = params["goal"]["cell"]
    np.testing.assert_array_equal(features[gr * size + gc, 3 : 3 + dim], sprite_appearance(params["goal"]["type"], dim)[0])
    assert features[:, 2].sum() == 3  # three sprites
    # a neighbour of the goal sees the goal's appearance in its "around" block
    nr, nc = (gr + 1, gc) if gr + 1 < size else (gr - 1, gc)
    around = features[nr * size + nc, 2 + dim + 1 :]
    assert around[0] >= 1
    assert grid.map_features().shape == (features.shape[1], size, size)
    np.testing.assert_array_equal(grid.map_features()[:, gr, gc], features[gr * size + gc])


def test_gridworld_rgb_observation_and_render(grid):
    env = GridWorldEnv(obs_type="rgb", render_mode="rgb_array")
    obs, info = env.reset(seed=0)
    assert obs.shape == (8 * CELL_PIXELS, 8 * CELL_PIXELS, 3) and obs.dtype == np.uint8
    r, c = divmod(info["state"], 8)
    block = obs[r * CELL_PIXELS : (r + 1) * CELL_PIXELS, c * CELL_PIXELS : (c + 1) * CELL_PIXELS]
    assert (block[0] == 255).all() and (block[:, 0] == 255).all()
    np.testing.assert_array_equal(env.render(), obs)
    gr, gc = env.task.params["goal"]["cell"]
    patch = env.map_image()[gr * CELL_PIXELS + 1 : gr * CELL_PIXELS + 4, gc * CELL_PIXELS + 1 : gc * CELL_PIXELS + 4]
    np.testing.assert_array_equal(patch, sprite_appearance(env.task.params["goal"]["type"], 8)[1])
    text = GridWorldEnv(render_mode="ansi")
    text.reset(seed=0)
    picture = text.render().split("\n", 1)[1]
    assert picture.count("G") == 1 and picture.count("X") == 2 and picture.count("@") == 1


def test_gridworld_moves_and_walls():
    env = GridWorldEnv(size=4)
    P = env.transition_matrix
    # from the corner (0, 0): N stays, S goes to (1, 0), SE to (1, 1)
    assert P[0, 1, 0] == 1 and P[0, 2, 4] == 1 and P[0, 8, 5] == 1 and P[0, 0, 0] == 1
    cross = GridWorldEnv(size=4, moves="cross")
    assert cross.action_dim == 5


def test_gridworld_slip_probabilities():
    env = GridWorldEnv(size=5, slip=0.2)
    P = env.transition_matrix
    centre = 12
    # intended move E from the centre: 0.8 + 0.2/9; each other neighbour and staying: 0.2/9
    assert P[centre, 4, 13] == pytest.approx(0.8 + 0.2 / 9)
    for other in (7, 17, 11, 6, 8, 16, 18, 12):
        assert P[centre, 4, other] == pytest.approx(0.2 / 9)
    # corner: 5 of 9 moves bump into walls and stay
    assert P[0, 0, 0] == pytest.approx(0.8 + 0.2 * 6 / 9)


def test_gridworld_splits_use_the_right_sprites(grid):
    unseen = set(grid.unseen_types)
    assert len(unseen) == 20 and max(grid.training_types) < min(unseen)
    for split in ("train", "test"):
        for task in grid.sample_tasks(40, split, seed=1):
            types = [task.params["goal"]["type"]] + [o["type"] for o in task.params["obstacles"]]
            assert not set(types) & unseen
            assert _combination_is_test(types[0], types[1:], 0.2) == (split == "test")
            assert len(set(types)) == 3
    for task in grid.sample_tasks(20, "test_unseen", seed=1):
        types = [task.params["goal"]["type"]] + [o["type"] for o in task.params["obstacles"]]
        assert set(types) <= unseen


def test_gridworld_combination_classes_are_order_free_in_obstacles():
    assert _combination_is_test(3, [5, 9], 0.3) == _combination_is_test(3, [9, 5], 0.3)
    fraction = np.mean([_combination_is_test(g, [a, b], 0.2) for g in range(30) for a in range(30) for b in range(a + 1, 30)])
    assert 0.17 < fraction < 0.23


def test_gridworld_start_is_never_on_a_sprite(grid):
    occupied = [grid.task.params["goal"]["cell"]] + [o["cell"] for o in grid.task.params["obstacles"]]
    for r, c in occupied:
        assert grid.initial_state_dist[r * 8 + c] == 0
    assert grid.initial_state_dist.sum() == pytest.approx(1)


def test_gridworld_no_dense_needed_for_planning():
    env = GridWorldEnv(size=64)
    from mandril_envs.planning import soft_value_iteration

    plan = soft_value_iteration(env.model)
    assert plan.values.shape == (128, 4096)
    assert env.model._dense is None  # the 1.2 GB dense tensor was never built


def test_tabular_mdp_rl2_defaults():
    env = gym.make("mandril_envs/TabularMDP-v0").unwrapped
    assert (env.state_dim, env.action_dim, env.horizon) == (10, 5, 10)
    means = np.concatenate([np.asarray(t.params["reward"]).ravel() for t in env.sample_tasks(200, "train", seed=0)])
    assert abs(means.mean() - 1.0) < 0.05 and abs(means.std() - 1.0) < 0.05
    np.testing.assert_allclose(env.initial_state_dist, 0.1)


def test_tabular_mdp_linear_rewards_share_a_weight_mean():
    env = gym.make("mandril_envs/TabularMDP-Linear-v0").unwrapped
    tasks = env.sample_tasks(400, "train", seed=0)
    weights = np.array([t.params["weights"] for t in tasks])
    std = env.config["weight_std"]
    assert std == 1.0
    np.testing.assert_allclose(weights.mean(axis=0), env.shared_weight_mean, atol=4 * std / np.sqrt(400))
    assert abs(weights.std(axis=0).mean() - std) < 0.12
    env.set_task(tasks[0])
    np.testing.assert_allclose(env.reward_matrix, np.asarray(tasks[0].params["features"]) @ np.asarray(tasks[0].params["weights"]))
    assert env.shared_weight_mean.tolist() != gym.make("mandril_envs/TabularMDP-Linear-v0", family_seed=1).unwrapped.shared_weight_mean.tolist()


def test_bandit_means_and_rewards():
    env = gym.make("mandril_envs/Bandit-K10-v0").unwrapped
    means = np.concatenate([t.params["means"] for t in env.sample_tasks(200, "train", seed=0)])
    assert means.min() >= 0 and means.max() <= 1 and abs(means.mean() - 0.5) < 0.03
    env.reset(seed=0)
    rewards = []
    for _ in range(env.horizon):
        _, reward, *_ = env.step(3)
        rewards.append(reward)
    assert set(rewards) <= {0.0, 1.0}
    gaussian = gym.make("mandril_envs/Bandit-v0", arm_distribution="gaussian", horizon=100).unwrapped
    assert gaussian.horizon == 100 and gaussian.reward_matrix.shape == (1, 5)


def test_task_kwarg_and_reset_option_install_a_task():
    env = gym.make("mandril_envs/GridWorld-v0")
    task = env.unwrapped.sample_tasks(1, "test", seed=5)[0]
    made = gym.make("mandril_envs/GridWorld-v0", task=task.to_dict())
    assert made.unwrapped.task == task
    env.reset(seed=0, options={"task": task.to_json()})
    assert env.unwrapped.task == task
    json.dumps(made.spec.kwargs)  # kwargs stay JSON-serialisable


def test_gridworld_intent_reward_is_linear_in_its_intent_and_in_the_features():
    from mandril_envs.envs.gridworld_intent import GridWorldIntentEnv, sprite_kind_is_goal

    env = GridWorldIntentEnv()
    for task in env.sample_tasks(4, "test", seed=2):
        env.set_task(task)
        intent = env.linear_intent()
        np.testing.assert_allclose(intent.true_reward, env.reward_matrix, atol=1e-12)
        # the docstring's claim: a linear reward on the features represents the task exactly
        features = env.feature_matrix
        weights = np.linalg.lstsq(features, env.reward_matrix, rcond=None)[0]
        np.testing.assert_allclose(features @ weights, env.reward_matrix, atol=1e-8)
        params = task.params
        assert all(sprite_kind_is_goal(g["type"], 8) for g in params["goals"])
        assert not any(sprite_kind_is_goal(o["type"], 8) for o in params["obstacles"])
    assert env.goal_state is None and env.horizon == 10


def test_gridworld_intent_spreads_around_the_shared_mean():
    from mandril_envs.envs.gridworld_intent import GridWorldIntentEnv

    env = GridWorldIntentEnv(terrain_spread=0.7, goal_spread=1.3, obstacle_spread=0.4)
    deviations = []
    for task in env.sample_tasks(150, "train", seed=0):
        env.set_task(task)
        intent = env.linear_intent()
        deviations.append((intent.true - intent.mean) / intent.std)
    z = np.concatenate(deviations)
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1.0) < 0.1
    fixed = GridWorldIntentEnv(terrain_spread=0.0, goal_spread=0.0, obstacle_spread=0.0)
    for task in fixed.sample_tasks(3, "test", seed=0):
        fixed.set_task(task)
        np.testing.assert_array_equal(fixed.linear_intent().true, fixed.linear_intent().mean)


def test_gridworld_intent_splits_and_views():
    from mandril_envs.envs.gridworld_intent import GridWorldIntentEnv

    env = GridWorldIntentEnv(render_mode="ansi")
    unseen = set(env.unseen_types)
    for split in ("train", "test"):
        for task in env.sample_tasks(20, split, seed=1):
            goals = [g["type"] for g in task.params["goals"]]
            obstacles = [o["type"] for o in task.params["obstacles"]]
            assert not set(goals + obstacles) & unseen
            assert _combination_is_test(goals, obstacles, 0.2) == (split == "test")
    for task in env.sample_tasks(10, "test_unseen", seed=1):
        assert {s["type"] for s in task.params["goals"] + task.params["obstacles"]} <= unseen
    env.reset(seed=0)
    picture = env.render().split("\n", 1)[1]
    assert (picture.count("G"), picture.count("X"), picture.count("@")) == (4, 2, 1)
    image = env.map_image()
    p = CELL_PIXELS
    for goal in env.task.params["goals"]:
        r, c = goal["cell"]
        np.testing.assert_array_equal(image[r * p, c * p], [235, 195, 40])  # goals ringed in gold
    for obstacle in env.task.params["obstacles"]:
        r, c = obstacle["cell"]
        np.testing.assert_array_equal(image[r * p, c * p], [25, 25, 25])


def test_tabular_mdp_linear_intent():
    env = gym.make("mandril_envs/TabularMDP-Linear-v0").unwrapped
    intent = env.linear_intent()
    np.testing.assert_allclose(intent.true_reward, env.reward_matrix, atol=1e-12)
    np.testing.assert_array_equal(intent.mean, env.shared_weight_mean)
    with pytest.raises(ValueError, match="linear_intent needs reward_type='linear'"):
        gym.make("mandril_envs/TabularMDP-v0").unwrapped.linear_intent()


@pytest.mark.parametrize(
    "claimed, drawn, message",
    [
        ("train", "test", r"task split 'train' cannot hold this task \(the split would leak\): the sprite combination goal \d+ with obstacles \[\d+, \d+\] is a held-out \(test\) combination"),
        ("train", "test_unseen", r"task split 'train' cannot hold this task \(the split would leak\): goal sprite type \d+ is one of the unseen types 80..99, kept for 'test_unseen'"),
        ("test", "train", r"task split 'test' cannot hold this task .*: the sprite combination .* is a training combination"),
        ("test", "test_unseen", r"task split 'test' cannot hold .* one of the unseen types 80..99"),
        ("test_unseen", "train", r"task split 'test_unseen' cannot hold .*: goal sprite type \d+ is a training type; 'test_unseen' uses only the unseen types 80..99"),
    ],
)
def test_gridworld_tasks_must_be_possible_in_their_split(grid, claimed, drawn, message):
    for task in grid.sample_tasks(3, drawn, seed=2):
        data = {**task.to_dict(), "split": claimed}
        with pytest.raises(ValueError, match=message):
            grid.set_task(data)
        with pytest.raises(ValueError, match=message):
            gym.make("mandril_envs/GridWorld-v0", task=data)
        with pytest.raises(ValueError, match=message):
            grid.reset(options={"task": data})
    for split in grid.splits:  # every drawn task is possible in its own split
        for task in grid.sample_tasks(20, split, seed=3):
            grid.check_task(task)


def test_gridworld_an_unseen_obstacle_in_a_train_task_is_refused(grid):
    task = grid.sample_tasks(1, "train", seed=0)[0].to_dict()
    task["params"]["obstacles"][1]["type"] = 99
    with pytest.raises(ValueError, match=r"obstacles\[1\] sprite type 99 is one of the unseen types 80..99"):
        grid.set_task(task)


def test_gridworld_impossible_params_are_refused(grid):
    task = grid.sample_tasks(1, "train", seed=0)[0].to_dict()
    task["params"]["obstacles"][0]["type"] = task["params"]["goal"]["type"]
    with pytest.raises(ValueError, match="sprite types must be distinct"):
        grid.set_task(task)
    task = grid.sample_tasks(1, "train", seed=0)[0].to_dict()
    r, c = task["params"]["obstacles"][0]["cell"]
    taken = [o["cell"] for o in task["params"]["obstacles"]]
    neighbours = [[r + dr, c + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1) if 0 <= r + dr < 8 and 0 <= c + dc < 8]
    task["params"]["goal"]["cell"] = next(cell for cell in neighbours if cell not in taken)
    with pytest.raises(ValueError, match=r"lies within obstacle_radius=1 of obstacles\[0\]"):
        grid.set_task(task)


@pytest.mark.parametrize("env_id", ["mandril_envs/TabularMDP-v0", "mandril_envs/Bandit-v0"])
def test_seed_stream_families_accept_any_valid_params_in_either_split(env_id):
    """Their splits differ only by seed stream: the parameters cannot tell the split, so none is refused."""
    env = gym.make(env_id).unwrapped
    for task in env.sample_tasks(2, "test", seed=0):
        env.set_task({**task.to_dict(), "split": "train"})


def test_gridworld_intent_tasks_must_be_possible_in_their_split():
    from mandril_envs.envs.gridworld_intent import GridWorldIntentEnv

    env = GridWorldIntentEnv()
    test_task = env.sample_tasks(1, "test", seed=2)[0].to_dict()
    with pytest.raises(ValueError, match=r"task split 'train' cannot hold this task .*: the sprite combination goals \[.*\] with obstacles \[.*\] is a held-out"):
        env.set_task({**test_task, "split": "train"})
    unseen_task = env.sample_tasks(1, "test_unseen", seed=2)[0].to_dict()
    with pytest.raises(ValueError, match=r"goals\[0\] sprite type \d+ is one of the unseen types 80..99"):
        env.set_task({**unseen_task, "split": "test"})
    task = env.sample_tasks(1, "train", seed=0)[0].to_dict()
    r, c = task["params"]["obstacles"][0]["cell"]
    taken = [s["cell"] for s in task["params"]["goals"] + task["params"]["obstacles"]]
    near = next([r + dr, c + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1) if 0 <= r + dr < 8 and 0 <= c + dc < 8 and [r + dr, c + dc] not in taken)
    task["params"]["goals"][1]["cell"] = near
    with pytest.raises(ValueError, match=r"params\['goals\[1\]'\] cell .* lies within obstacle_radius=1 of obstacles\[0\]"):
        env.set_task(task)
    for split in env.splits:  # every drawn task is possible in its own split
        for drawn in env.sample_tasks(10, split, seed=3):
            env.check_task(drawn)
