"""Every registered method through the one interface: make -> prepare -> fit -> score, on a tiny grid."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import mandril_envs  # noqa: F401
from mandril import methods
from mandril.core import load_checkpoint, save_checkpoint
from mandril.data import DatasetSource
from mandril.eval import score, shown_and_heldout_demos
from mandril.methods import FitProblem, MethodOutput, NotPreparedError, hide_reward
from mandril.methods.demo_conditioned import append_demo_channels
from mandril_envs.dataset import collect

GRID = {"size": 5}
SMALL_CONV = {"kind": "conv", "hidden": [4]}

#: A tiny budget for every registered method (a method without one fails the registry test).
TINY: dict[str, dict] = {
    "mandril": {"reward_model": SMALL_CONV, "iterations": 3, "meta_batch_size": 2, "n_train_demos": 1, "n_test_demos": 2},
    "pretrain_finetune": {"reward_model": SMALL_CONV, "pretrain_iterations": 3, "pretrain_batch_size": 2, "pretrain_demos": 2, "max_steps": 5},
    "demo_conditioned": {"reward_model": SMALL_CONV, "iterations": 3, "meta_batch_size": 2, "n_demos_choices": [1, 2], "n_test_demos": 2},
    "map_prior": {"pool_max_steps": 20, "max_steps": 20},
    "maxent": {"reward_model": SMALL_CONV, "max_steps": 5},
    "maxent_linear": {"max_steps": 20},
    "maxent_tabular": {"max_steps": 20},
    "airl": {"total_timesteps": 64, "n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1, "policy_hidden": [8], "reward_hidden": [8], "potential_hidden": [8]},
    "gail": {"total_timesteps": 64, "n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1, "policy_hidden": [8], "reward_hidden": [8]},
    "bc": {"n_batches": 5, "hidden": [8]},
    "expert": {},
    "bayes": {},
    "zero_reward": {},
    "uniform_policy": {},
}


@pytest.fixture(scope="module")
def pool():
    return collect("mandril_envs/GridWorld-v0", 6, 4, "train", env_kwargs=GRID)


@pytest.fixture(scope="module")
def held_out():
    env = gym.make("mandril_envs/GridWorld-v0", **GRID)
    base = env.unwrapped
    out = []
    for task in base.sample_tasks(2, "test", seed=1):
        base.set_task(task)
        inputs = {k: base.reward_input(k) for k in base.reward_input_kinds}
        out.append((task, base.model, inputs, shown_and_heldout_demos(env, 2, seed=0), base.goal_state, base.reward_prior()))
    return out


def test_every_registered_method_has_a_tiny_budget_here():
    assert sorted(methods.METHODS) == sorted(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_method_runs_through_the_registry_on_a_tiny_grid(name, pool, held_out):
    method = methods.make(name, **TINY[name])
    assert method.kind in methods.METHOD_KINDS and method.name == name
    if method.needs_preparation:
        with pytest.raises(NotPreparedError, match="prepared on training tasks first"):
            method.fit(held_out[0][1], held_out[0][2][method.input_kind], held_out[0][3].states, held_out[0][3].actions)
    method.prepare(pool)
    problems = [
        FitProblem(model if method.reads_true_reward else hide_reward(model), inputs[method.input_kind], demos.states, demos.actions, seed=7,
                   label=f"test/{task.index}", prior=prior if method.reads_reward_prior else None)
        for task, model, inputs, demos, _, prior in held_out
    ]
    outputs = method.fit_batch(problems)
    for (task, model, inputs, demos, goal, _), output in zip(held_out, outputs):
        assert isinstance(output, MethodOutput), output
        scores = score(model, output, demos.heldout_states, demos.heldout_actions, goal)
        assert scores.evd >= 0 and np.isfinite(scores.normalized_evd) and scores.demo_nll > 0 and 0 <= scores.success <= 1
    if name in ("expert", "bayes"):  # bayes: exact on GridWorld from one demo
        assert all(score(m, o).evd == pytest.approx(0, abs=1e-9) for (_, m, *_), o in zip(held_out, outputs))
    if name == "uniform_policy":
        assert all(score(m, o).normalized_evd == pytest.approx(1.0) for (_, m, *_), o in zip(held_out, outputs))


@pytest.mark.parametrize("name", ["mandril", "pretrain_finetune", "demo_conditioned", "map_prior"])
def test_a_prepared_state_saved_and_loaded_gives_the_same_fits(name, pool, held_out, tmp_path):
    method = methods.make(name, **TINY[name])
    method.prepare(pool)
    path = save_checkpoint(tmp_path / "prepared.pt", f"test.{name}", method.state_dict())
    again = methods.make(name, **TINY[name])
    again.load_state_dict(load_checkpoint(path, f"test.{name}"))
    _, model, inputs, demos, *_ = held_out[0]
    a = method.fit(hide_reward(model), inputs[method.input_kind], demos.states, demos.actions)
    b = again.fit(hide_reward(model), inputs[method.input_kind], demos.states, demos.actions)
    np.testing.assert_array_equal(a.reward, b.reward)


def test_preparation_resumes_from_its_checkpoint(pool, tmp_path):
    straight = methods.make("mandril", **{**TINY["mandril"], "iterations": 4})
    straight.prepare(pool)
    first = methods.make("mandril", **{**TINY["mandril"], "iterations": 2, "checkpoint_every": 1})
    first.prepare(pool, checkpoint=tmp_path / "c.pt")
    resumed = methods.make("mandril", **{**TINY["mandril"], "iterations": 4, "checkpoint_every": 1})
    resumed.prepare(pool, checkpoint=tmp_path / "c.pt")
    assert resumed.trainer.iteration == 4
    for key, value in straight.trainer.theta.items():
        assert torch.equal(value, resumed.trainer.theta[key])


def test_configs_refuse_unknown_keys_and_wrong_types():
    with pytest.raises(ValueError, match=r"\[maxent_tabular\]: unknown key \['learning_rate'\]"):
        methods.make("maxent_tabular", learning_rate=0.1)
    with pytest.raises(TypeError, match=r"\[mandril\] iterations must be an integer, got str 'ten'"):
        methods.make("mandril", iterations="ten")
    with pytest.raises(ValueError, match="unknown method 'airl2'; known methods: mandril"):
        methods.make("airl2")
    with pytest.raises(ValueError, match="a conv reward model reads \\['map', 'rgb'\\], not input_kind 'features'"):
        methods.make("maxent", input_kind="features")
    with pytest.raises(ValueError, match="likelihood must be one of \\['start', 'p0'\\]"):
        methods.make("pretrain_finetune", likelihood="both")
    with pytest.raises(ValueError, match="adapt_lr_scale must be a finite number > 0, got 0"):
        methods.make("mandril", adapt_lr_scale=0)
    with pytest.raises(ValueError, match=r"unknown key \['adapt_by_n'\]"):  # per-n settings belong to suites (by_n), for every method alike
        methods.make("mandril", adapt_by_n={"4": {"steps": 3}})


def test_settings_a_method_may_choose_per_number_of_demos():
    assert set(methods.METHODS["mandril"].per_n_settings()) == {"adapt_steps", "adapt_lr_scale"}
    assert "inner_lr" not in methods.METHODS["mandril"].per_n_settings()  # it shapes the meta-training
    assert {"l2", "max_steps", "lr"} <= set(methods.METHODS["pretrain_finetune"].per_n_settings())
    assert "pretrain_iterations" not in methods.METHODS["pretrain_finetune"].per_n_settings()
    assert methods.METHODS["demo_conditioned"].per_n_settings() == ()  # n is one of its inputs
    assert {"l2", "max_steps"} <= set(methods.METHODS["maxent_tabular"].per_n_settings())
    assert "seed" not in methods.METHODS["maxent_tabular"].per_n_settings()


def test_the_true_reward_is_hidden_from_methods(held_out):
    _, model, *_ = held_out[0]
    hidden = hide_reward(model)
    assert not hidden.reward_matrix.any() and hidden.reward_matrix.shape == model.reward_matrix.shape
    np.testing.assert_array_equal(hidden.successor_indices, model.successor_indices)


def test_demo_channels_for_features_maps_and_images():
    visitation = torch.zeros(2, 4)
    visitation[:, 0] = 3.0
    start = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    features = append_demo_channels(torch.ones(2, 4, 5), visitation, start, [1, 3], 3)
    assert features.shape == (2, 4, 8)
    np.testing.assert_allclose(features[0, :, 5].numpy(), [1.0, 0, 0, 0])  # visitation / H
    np.testing.assert_allclose(features[1, :, 6].numpy(), [0, 1.0, 0, 0])  # start distribution
    assert features[1, 0, 7] == pytest.approx(np.log(4))  # log(1 + n)
    grid = append_demo_channels(torch.ones(2, 6, 2, 2), visitation, start, [1, 3], 3)
    assert grid.shape == (2, 9, 2, 2) and grid[0, 6, 0, 0] == 1.0
    image = append_demo_channels(torch.ones(2, 3, 10, 10), visitation, start, [1, 3], 3)
    assert image.shape == (2, 6, 10, 10) and image[0, 3, :5, :5].eq(1.0).all() and image[0, 3, 5:, :].eq(0).all()


def test_a_training_source_must_match_the_method(pool):
    with pytest.raises(ValueError, match="reads 'features' inputs"):
        methods.make("mandril", **TINY["mandril"]).prepare(DatasetSource(pool, "features"))


def test_devices_the_machine_lacks_are_refused_and_cpu_gives_the_same_numbers(pool, held_out):
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            methods.make("maxent_tabular").to("cuda")
    with pytest.raises(ValueError, match="device must be like 'cpu', 'cuda'"):
        methods.make("maxent_tabular").to("gpu-please")
    _, model, inputs, demos, *_ = held_out[0]
    plain = methods.make("mandril", **TINY["mandril"])
    plain.prepare(pool)
    moved = methods.make("mandril", **TINY["mandril"]).to("cpu")
    moved.prepare(pool)
    a = plain.fit(hide_reward(model), inputs["map"], demos.states, demos.actions)
    b = moved.to("cpu").fit(hide_reward(model), inputs["map"], demos.states, demos.actions)
    np.testing.assert_array_equal(a.reward, b.reward)
