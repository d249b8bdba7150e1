"""Reward models: shapes, functional use (functional_call, vmap), seeding, convolutional structure, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.func import functional_call, vmap

import mandril_envs  # noqa: F401
from mandril.planning import TaskBatch, expected_visitation, maxent_nll
from mandril.rewards import ConvReward, LinearReward, MLPReward, image_to_tensor


@pytest.fixture(scope="module")
def grid():
    env = gym.make("mandril_envs/GridWorld-v0", size=6, horizon=8).unwrapped
    return env


def models_and_inputs(grid, kind: str):
    """(model, single input, its reward shape) for each kind of reward model on the 6x6 grid."""
    features = torch.as_tensor(np.array(grid.feature_matrix))
    n_features = features.shape[1]
    if kind == "linear":
        return LinearReward(n_features, init="uniform", seed=1), features, (36,)
    if kind == "linear-sa":
        return LinearReward(n_features, n_actions=9, init="uniform", bias=True, seed=1), features, (36, 9)
    if kind == "mlp":
        return MLPReward(n_features, hidden=(16, 8), seed=1), features, (36,)
    if kind == "mlp-sa":
        return MLPReward(n_features, hidden=(16,), n_actions=9, activation="tanh", seed=1), features, (36, 9)
    if kind == "conv":
        return ConvReward(n_features, hidden=(8, 8), seed=1), torch.as_tensor(np.array(grid.map_features())), (36,)
    if kind == "pixels":
        return ConvReward(3, hidden=(8, 8), cell_pixels=5, seed=1), image_to_tensor(grid.map_image()), (36,)
    raise AssertionError(kind)


KINDS = ["linear", "linear-sa", "mlp", "mlp-sa", "conv", "pixels"]


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_single_and_batched(grid, kind: str) -> None:
    model, x, shape = models_and_inputs(grid, kind)
    single = model(x)
    assert single.shape == shape and single.dtype == torch.float64
    batched = model(torch.stack([x, 2 * x, x]))
    assert batched.shape == (3,) + shape
    torch.testing.assert_close(batched[0], single)
    torch.testing.assert_close(batched[2], single)
    assert not torch.allclose(batched[1], single)


@pytest.mark.parametrize("kind", KINDS)
def test_functional_call_and_vmap(grid, kind: str) -> None:
    model, x, shape = models_and_inputs(grid, kind)
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    torch.testing.assert_close(functional_call(model, params, (x,)), model(x))
    shifted = {name: p + 0.1 for name, p in params.items()}
    out = functional_call(model, shifted, (x,))
    assert not torch.allclose(out, model(x))
    # the same as loading the parameters into the module
    clone = models_and_inputs(grid, kind)[0]
    clone.load_state_dict(shifted)
    torch.testing.assert_close(clone(x), out)
    # per-task parameters over a batch, as MandRIL's inner loop uses them
    stacked = {name: torch.stack([params[name], shifted[name]]) for name in params}
    outs = vmap(lambda p, xi: functional_call(model, p, (xi.unsqueeze(0),)).squeeze(0))(stacked, torch.stack([x, x]))
    assert outs.shape == (2,) + shape
    torch.testing.assert_close(outs[0], model(x))
    torch.testing.assert_close(outs[1], out)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_parameter_through_the_maxent_loss(grid, kind: str) -> None:
    model, x, shape = models_and_inputs(grid, kind)
    batch = TaskBatch.from_models([grid.model])
    true_reward = grid.model.state_action_rewards() if len(shape) == 2 else grid.reward_matrix
    mu_demo = expected_visitation(batch, torch.tensor(true_reward[None]))
    loss = maxent_nll(batch, model(x)[None], mu_demo)[0]
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for (name, _), grad in zip(model.named_parameters(), grads):
        assert torch.isfinite(grad).all() and grad.abs().max() > 0, name


def test_seeded_initialisation_leaves_global_rng_alone(grid) -> None:
    state = torch.random.get_rng_state()
    first = [p.clone() for p in MLPReward(20, seed=4).parameters()]
    second = [p.clone() for p in MLPReward(20, seed=4).parameters()]
    other = [p.clone() for p in MLPReward(20, seed=5).parameters()]
    ConvReward(3, cell_pixels=5, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    assert all(torch.equal(p, torch.zeros_like(p)) for p in LinearReward(20, bias=True).parameters())  # default zeros
    assert MLPReward(20, dtype=torch.float32)(torch.zeros(5, 20)).dtype == torch.float32


def test_linear_reward_is_the_feature_product() -> None:
    model = LinearReward(3, n_actions=2, bias=True, init="uniform", seed=0)
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = x @ model.linear.weight.T + model.linear.bias
    torch.testing.assert_close(model(x), expected)


def test_conv_reward_is_translation_equivariant() -> None:
    model = ConvReward(2, hidden=(4, 4), kernel_size=3, seed=2)
    image = torch.zeros(2, 10, 10, dtype=torch.float64)
    image[0, 3, 3] = 1.0
    image[1, 4, 2] = -2.0
    moved = torch.roll(image, shifts=(2, 3), dims=(1, 2))
    out, out_moved = model(image).view(10, 10), model(moved).view(10, 10)
    # away from the borders (receptive field 5x5), moving the map moves the reward map
    torch.testing.assert_close(out_moved[5:8, 5:8], out[3:6, 2:5])
    # and works on another grid size
    assert model(torch.zeros(2, 7, 5, dtype=torch.float64)).shape == (35,)


def test_pixel_reward_encodes_each_cell_from_its_own_pixels(grid) -> None:
    model = ConvReward(3, hidden=(), cell_pixels=5, seed=0)  # stride-5 encoder then a 1x1 head: no mixing of cells
    image = image_to_tensor(grid.map_image())
    changed = image.clone()
    changed[:, 5 * 2 + 1, 5 * 4 + 3] += 0.5  # a pixel of cell (row 2, col 4)
    with torch.no_grad():
        diff = (model(changed) - model(image)).abs()
    assert diff[2 * 6 + 4] > 0 and float(diff.sum() - diff[2 * 6 + 4]) == 0.0
    # the state order is row * N + col, as the GridWorld's
    feature_model = ConvReward(1, hidden=(), seed=0)
    with torch.no_grad():
        feature_model.net[0].weight.fill_(1.0)
        feature_model.net[0].bias.zero_()
    ramp = torch.arange(12, dtype=torch.float64).view(1, 3, 4)
    torch.testing.assert_close(feature_model(ramp), torch.arange(12, dtype=torch.float64))


def test_image_to_tensor(grid) -> None:
    image = grid.map_image()
    tensor = image_to_tensor(image)
    assert tensor.shape == (3, 30, 30) and tensor.dtype == torch.float64
    np.testing.assert_allclose(tensor[1].numpy(), image[:, :, 1] / 255.0)
    assert image_to_tensor(np.stack([image, image]), dtype=torch.float32).shape == (2, 3, 30, 30)
    with pytest.raises(TypeError, match="uint8"):
        image_to_tensor(image.astype(np.float64))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        image_to_tensor(image[:, :, :2])


def test_bad_arguments_are_named(grid) -> None:
    with pytest.raises(ValueError, match="n_features must be >= 1"):
        LinearReward(0)
    with pytest.raises(TypeError, match="n_actions must be an int"):
        LinearReward(3, n_actions=2.0)
    with pytest.raises(ValueError, match="init"):
        LinearReward(3, init="normal")
    with pytest.raises(ValueError, match="activation"):
        MLPReward(3, activation="gelu")
    with pytest.raises(ValueError, match=r"hidden\[1\] must be >= 1"):
        MLPReward(3, hidden=(4, 0))
    with pytest.raises(TypeError, match="hidden"):
        MLPReward(3, hidden=4)
    with pytest.raises(ValueError, match="odd"):
        ConvReward(3, kernel_size=4)
    with pytest.raises(TypeError, match="dtype"):
        ConvReward(3, dtype=torch.float16)
    with pytest.raises(ValueError, match="F = 3"):
        LinearReward(3)(torch.zeros(5, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="C = 3"):
        ConvReward(3)(torch.zeros(4, 6, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="multiples of cell_pixels = 5"):
        ConvReward(3, cell_pixels=5)(torch.zeros(3, 12, 10, dtype=torch.float64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        ConvReward(3)(np.zeros((3, 6, 6)))
