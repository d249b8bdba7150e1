"""Every family renders ``rgb_array`` (as SB3's make_vec_env asks) with numpy alone, and reads like seals'
``TabularModelPOMDP`` (registry-driven: runs on gymnasium 0.29.1 and 1.x)."""

import gymnasium as gym
import numpy as np
import pytest

import mandril_envs
from mandril_envs import drawing, testing

IDS = mandril_envs.ENV_IDS


@pytest.mark.parametrize("env_id", IDS)
def test_every_declared_render_mode_works_through_gym_make(env_id):
    testing.check_render_modes(env_id)


@pytest.mark.parametrize("env_id", IDS)
def test_seals_names(env_id):
    for obs_type in gym.make(env_id).unwrapped.obs_types:
        if obs_type == "rgb" and "32x32" in env_id:
            continue  # 1024 flattened 160x160 images: 79 MB; the 8x8 grid covers the rgb case
        testing.check_seals_names(gym.make(env_id, obs_type=obs_type))


def test_observation_matrix_by_obs_type():
    env = gym.make("mandril_envs/GridWorld-v0").unwrapped
    np.testing.assert_array_equal(env.observation_matrix, np.eye(64, dtype=np.float32))  # a Discrete obs flattens to its one-hot
    assert env.observation_space == gym.spaces.Discrete(64) and env.obs_dim == 64
    features = gym.make("mandril_envs/GridWorld-v0", obs_type="features").unwrapped
    np.testing.assert_array_equal(features.observation_matrix, features.feature_matrix.astype(np.float32))
    assert features.observation_space.shape == (features.obs_dim,) == (20,)
    rgb = gym.make("mandril_envs/GridWorld-v0", obs_type="rgb").unwrapped
    assert rgb.observation_matrix.shape == (64, 40 * 40 * 3) and rgb.obs_dtype == np.uint8
    np.testing.assert_array_equal(rgb.observation_matrix[9].reshape(40, 40, 3), rgb.map_image(9))
    first, second = env.observation_matrix, env.observation_matrix
    first[0, 0] = 7.0  # a new writable array each time: nothing shared is changed
    assert second[0, 0] == 1.0 and env.observation_matrix[0, 0] == 1.0


def _render(env_id, actions=(), **kwargs):
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    env.reset(seed=0)
    for action in actions:
        env.step(action)
    return env, env.render()


def test_bandit_picture_shows_the_arm_means_and_the_last_pull():
    env, before = _render("mandril_envs/Bandit-K5-v0")
    means = env.unwrapped.arm_means
    bar = np.clip(160 // 5, 2, 24)
    columns = [1 + k * (bar + 1) + bar // 2 for k in range(5)]
    heights = [int((before[:, c] == (150, 150, 150)).all(axis=1).sum()) for c in columns]
    # Bernoulli means on [0, 1] span rows 61 (value 0, the zero line) .. 3 (value 1): 58 pixels per unit
    assert heights == [61 - int(round(61 - 58 * m)) for m in means]
    assert not (before == drawing.HIGHLIGHT).all(axis=2).any()  # nothing pulled yet
    env.step(3)
    after = env.render()
    amber = (after == drawing.HIGHLIGHT).all(axis=2)
    assert amber[:, columns[3]].sum() == heights[3] and amber.sum() == heights[3] * bar


def test_gaussian_bandit_bars_rise_and_fall_from_zero():
    env, frame = _render("mandril_envs/Bandit-K10-v0", arm_distribution="gaussian")
    means = env.unwrapped.arm_means
    assert (means < 0).any() and (means > 0).any()
    grey = (frame == (150, 150, 150)).all(axis=2)
    zero_row = int(np.flatnonzero((frame[:, 0] == (90, 90, 90)).all(axis=1))[0])
    bar = np.clip(160 // 10, 2, 24)
    for k, mean in enumerate(means):
        rows = np.flatnonzero(grey[:, 1 + k * (bar + 1) + bar // 2])
        assert (rows.max() <= zero_row + 1) if mean > 0 else (rows.min() >= zero_row)


def test_tabular_mdp_picture_rings_the_agent_and_colours_states_by_reward():
    env, frame = _render("mandril_envs/TabularMDP-Linear-v0")
    base = env.unwrapped
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8
    n = base.state_dim
    radius = 64 - 12.8 - 2.0
    angles = 2 * np.pi * np.arange(n) / n
    centres = [(63.5 - radius * np.cos(a), 63.5 + radius * np.sin(a)) for a in angles]
    colours = drawing.diverging_colour(base.reward_matrix)
    for s, (y, x) in enumerate(centres):
        assert tuple(frame[int(round(y)), int(round(x))]) == tuple(colours[s])  # each state's disc, coloured by its reward
    y, x = centres[base.state]
    node = min(0.8 * np.pi * radius / n, 128 / 14)
    assert tuple(frame[int(round(y - node - 1)), int(round(x))]) == drawing.AGENT  # the agent's ring, just outside its disc
    other = (base.state + 1) % n
    oy, ox = centres[other]
    assert tuple(frame[int(round(oy - node - 1)), int(round(ox))]) != drawing.AGENT


def test_drawing_primitives():
    image = drawing.canvas(21, 21)
    drawing.fill_disc(image, 10, 10, 5, (255, 0, 0))
    red = (image == (255, 0, 0)).all(axis=2)
    assert red[10, 10] and red[5, 10] and not red[4, 10] and abs(red.sum() - np.pi * 25) < 6
    drawing.draw_line(image, 0, 0, 20, 20, (0, 255, 0))
    assert all(tuple(image[i, i]) == (0, 255, 0) for i in range(21))
    drawing.draw_line(image, 0, 20, 0, 40, (0, 0, 255), opacity=0.5)  # half outside: clipped, blended
    assert tuple(image[0, 20]) == (16, 16, 128 + 16)
    drawing.fill_rect(image, -5, -5, 2, 2, (9, 9, 9))
    assert (image[:2, :2] == 9).all()
    np.testing.assert_array_equal(drawing.diverging_colour(np.array([-2.0, 0.0, 2.0, 1.0])), [[50, 110, 230], [110, 110, 110], [220, 50, 40], [165, 80, 75]])
    np.testing.assert_array_equal(drawing.diverging_colour(np.zeros(2)), [[110, 110, 110]] * 2)
