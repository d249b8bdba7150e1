"""Absurd sizes are refused before anything is allocated, by the one estimate in mandril_envs.sizes."""

import re

import gymnasium as gym
import numpy as np
import pytest

import mandril_envs  # noqa: F401
from mandril_envs import planning, sizes
from mandril_envs.cli import main as cli_main
from mandril_envs.dataset import collect
from mandril_envs.envs import BanditEnv, GridWorldEnv, TabularMDPEnv
from mandril_envs.model import TabularModel

LIMIT = r"more than the [0-9.]+ [KMGTPE]?i?B this machine can hold \(.+\)"


@pytest.fixture
def small_limit(monkeypatch):
    """A 20 MiB limit, the same on every machine."""
    monkeypatch.setenv(sizes.MEMORY_LIMIT_ENV, str(20 * 1024**2))


@pytest.mark.parametrize(
    "env_id, kwargs, message",
    [
        ("mandril_envs/GridWorld-v0", {"size": 10_000}, r"GridWorld size=10000, sprite_feature_dim=8: one task's model and observations \(S=100000000, A=9, K=1, F=20\) would take about 3\d\.\d GiB, "),
        ("mandril_envs/GridWorld-v0", {"size": 20_000, "obs_type": "rgb"}, r"GridWorld size=20000.* would take about [0-9.]+ [GT]iB, "),
        ("mandril_envs/TabularMDP-v0", {"n_states": 100_000}, r"TabularMDP n_states=100000, n_actions=5, n_features=4: .*dense \(S, A, S\)\) would take about [0-9.]+ TiB, "),
        ("mandril_envs/Bandit-v0", {"n_arms": 10**12}, r"Bandit n_arms=1000000000000: .* would take about [0-9.]+ TiB, "),
    ],
)
def test_absurd_env_sizes_are_refused_before_allocating(env_id, kwargs, message, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("allocated before the size check")

    for family in (GridWorldEnv, TabularMDPEnv, BanditEnv):
        monkeypatch.setattr(family, "_sample_params", never)
    monkeypatch.setattr(GridWorldEnv, "_dynamics", staticmethod(never))
    with pytest.raises(ValueError, match=message + LIMIT):
        gym.make(env_id, **kwargs)


def test_the_limit_can_be_set_and_names_its_source(small_limit):
    with pytest.raises(ValueError, match=r"GridWorld size=400, .* more than the 20.0 MiB this machine can hold \(set by MANDRIL_ENVS_MEMORY_LIMIT\)"):
        gym.make("mandril_envs/GridWorld-v0", size=400)
    gym.make("mandril_envs/GridWorld-v0")  # 8x8 fits


@pytest.mark.parametrize("value", ["lots", "-5", "nan", "0"])
def test_a_bad_limit_is_refused(monkeypatch, value):
    monkeypatch.setenv(sizes.MEMORY_LIMIT_ENV, value)
    with pytest.raises(ValueError, match=rf"MANDRIL_ENVS_MEMORY_LIMIT must be a positive number of bytes, got '{value}'"):
        sizes.memory_limit()


def test_memory_limit_is_measured():
    limit, source = sizes.memory_limit()
    assert limit > 0 and source


@pytest.mark.parametrize("env_id, kwargs", [("mandril_envs/GridWorld-v0", {"slip": 0.1}), ("mandril_envs/TabularMDP-Linear-v0", {}), ("mandril_envs/TabularMDP-v0", {"obs_type": "onehot"}), ("mandril_envs/Bandit-K10-v0", {})])
def test_the_model_estimate_counts_the_arrays_a_task_keeps(env_id, kwargs):
    """The estimate is honest: its model part equals the bytes of the arrays the built model holds."""
    env = gym.make(env_id, **kwargs).unwrapped
    shape = env._model_shape(env.config, env.obs_type)
    model = env.model
    held = sum(a.nbytes for a in (model.successor_indices, model.successor_probs, model.reward_matrix, model.initial_state_dist, model.feature_matrix))
    if shape.dense:
        held += model.transition_matrix.nbytes
    assert (shape.n_states, shape.n_actions, shape.n_features) == (model.state_dim, model.action_dim, model.feature_matrix.shape[1])
    assert shape.nbytes - 32 * shape.param_numbers - shape.observation_bytes == held + 8 * model.state_dim * model.action_dim * (shape.n_successors - model.n_successors)


def test_the_dense_tensor_is_checked_only_when_built(small_limit):
    env = gym.make("mandril_envs/GridWorld-v0", size=32, horizon=8).unwrapped  # successor form: fits
    plan = planning.soft_value_iteration(env.model)
    assert plan.values.shape == (8, 1024)
    with pytest.raises(ValueError, match=r"the dense transition_matrix \(S, A, S\) = \(1024, 9, 1024\) float64 .* would take about 72.0 MiB, more than the 20.0 MiB"):
        env.transition_matrix
    assert env.model._dense is None


def test_the_planner_refuses_an_absurd_horizon():
    model = TabularModel(np.zeros((4, 2, 1), int), np.ones((4, 2, 1)), np.zeros(4), np.full(4, 0.25), 10**12)
    with pytest.raises(ValueError, match=r"a plan of horizon=1000000000000 \(H, S, A\) = \(1000000000000, 4, 2\) would take about [0-9.]+ TiB, " + LIMIT):
        planning.value_iteration(model)


def test_collect_refuses_before_drawing_tasks(monkeypatch):
    drawn = []
    original = GridWorldEnv.sample_tasks
    monkeypatch.setattr(GridWorldEnv, "sample_tasks", lambda self, n, *a, **k: drawn.append(n) or original(self, n, *a, **k))
    with pytest.raises(ValueError, match=r"n_tasks=1000000000000, n_demos=3 of GridWorld \(H=16, S=64, A=9\): the dataset arrays, the tasks and the expert's plan would take about [0-9.]+ PiB, " + LIMIT):
        collect("mandril_envs/GridWorld-v0", 10**12, 3)
    assert drawn == [1]  # only the env's default task


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tasks", "1000000000000"], r"--tasks=1000000000000, --demos=20 of GridWorld \(H=16, S=64, A=9\): .* would take about 9.0 PiB, "),
        (["--demos", "1000000000000"], r"--tasks=100, --demos=1000000000000 of GridWorld .* would take about [0-9.]+ PiB, "),
        (["--env-kwargs", '{"size": 10000}'], r"GridWorld size=10000, sprite_feature_dim=8: .* would take about [0-9.]+ GiB, "),
        (["--env-kwargs", '{"horizon": 1000000000}'], r"--env-kwargs horizon=1000000000: one task's plan \(H, S, A\) = \(1000000000, 64, 9\) would take about [0-9.]+ TiB, "),
    ],
)
def test_cli_refuses_absurd_sizes_in_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "x.npz"
    assert cli_main(["demos", "generate", "--out", str(out), "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert re.search(message + LIMIT, err), err
    assert list(tmp_path.iterdir()) == []


def test_format_bytes():
    assert [sizes.format_bytes(n) for n in (512, 1536, 3 * 1024**3, 2**60)] == ["512 B", "1.5 KiB", "3.0 GiB", "1 EiB"]
