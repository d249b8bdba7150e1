"""``map_prior`` (issue 17): the prior it estimates, and its MAP fit at the extremes of the prior's weight."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import mandril_envs  # noqa: F401
from mandril import methods
from mandril.eval import shown_and_heldout_demos
from mandril.methods import hide_reward
from mandril.methods.fitting import QuadraticPenalty
from mandril.methods.map_prior import estimate_prior
from mandril.methods.maxent import train_batch
from mandril.planning import maxent_nll
from mandril_envs.dataset import collect

MEAN = np.array([1.0, -2.0, 0.5, 3.0])
FACTOR = np.array([[1.0, 0.5, -0.5, 0.0]])
COV = FACTOR.T @ FACTOR + np.diag([0.3, 0.2, 0.1, 0.4])


LOW_RANK = FACTOR.T @ FACTOR + 0.3 * np.eye(4)  # probabilistic PCA's own structure (rank 1 + isotropic)


def synthetic(n: int, seed: int = 0, cov: np.ndarray = COV) -> np.ndarray:
    return np.random.default_rng(seed).multivariate_normal(MEAN, cov, n)


@pytest.mark.parametrize("kind, cov, want", [("diagonal", COV, np.diag(np.diag(COV))), ("ledoit_wolf", COV, COV), ("low_rank", LOW_RANK, LOW_RANK)])
def test_the_prior_recovers_a_known_mean_and_covariance(kind, cov, want):
    prior = estimate_prior(synthetic(40_000, cov=cov), kind, rank=1)
    np.testing.assert_allclose(prior.mean, MEAN, atol=0.02)
    np.testing.assert_allclose(prior.precision @ prior.covariance, np.eye(4), atol=1e-8)
    np.testing.assert_allclose(prior.covariance, want, atol=0.03)


def test_ledoit_wolf_agrees_with_scikit_learn_and_shrinks_few_samples():
    covariance = pytest.importorskip("sklearn.covariance")
    thetas = synthetic(12, seed=3)
    ours = estimate_prior(thetas, "ledoit_wolf").covariance
    np.testing.assert_allclose(ours, covariance.LedoitWolf().fit(thetas).covariance_, atol=1e-10)
    sample = np.cov(thetas.T, bias=True)
    assert np.linalg.cond(ours) < np.linalg.cond(sample)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="N >= 2 tasks"):
        estimate_prior(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="covariance must be one of"):
        methods.make("map_prior", covariance="full")
    with pytest.raises(ValueError, match="mean \\(P,\\) with precision \\(P, P\\)"):
        QuadraticPenalty(torch.zeros(3), torch.zeros(2, 2))


@pytest.fixture(scope="module")
def task():
    env = gym.make("mandril_envs/TabularMDP-Linear-v0")
    base = env.unwrapped
    base.set_task(base.sample_tasks(1, "test", seed=1)[0])
    demos = shown_and_heldout_demos(env, 3, seed=0)
    return base.model, base.reward_input("features"), demos.states, demos.actions


def prepared(**settings) -> methods.Method:
    """A ``map_prior`` whose training pool 'fitted' the synthetic parameters (4 features, as TabularMDP-Linear)."""
    method = methods.make("map_prior", **settings)
    method.load_state_dict({"model_kind": "linear", "thetas": torch.as_tensor(synthetic(500))})
    return method


def test_a_huge_prior_precision_returns_the_prior_mean(task):
    model, inputs, states, actions = task
    method = prepared(prior_scale=1e12, grad_tol=1e-9)
    output = method.fit(hide_reward(model), inputs, states, actions)
    np.testing.assert_allclose(output.reward, inputs @ method.prior.mean, atol=1e-6)


def test_zero_prior_precision_is_plain_maxent(task):
    model, inputs, states, actions = task
    plain = methods.make("maxent_linear", l2=0.01, grad_tol=1e-9, max_steps=2000).fit(hide_reward(model), inputs, states, actions)
    ours = prepared(prior_scale=0.0, l2=0.01, grad_tol=1e-9, max_steps=2000).fit(hide_reward(model), inputs, states, actions)
    assert ours.info["converged"] and plain.info["converged"]
    np.testing.assert_allclose(ours.reward, plain.reward, atol=1e-7)


def test_the_prior_weight_is_the_gaussian_prior_against_n_demos(task):
    """At the MAP fit, n H * grad(per-step NLL) = -Sigma^-1 (theta - m): the penalty is the prior's -log density."""
    model, inputs, states, actions = task
    method = prepared(grad_tol=1e-10, max_steps=2000)
    output = method.fit(hide_reward(model), inputs, states, actions)
    theta = np.linalg.lstsq(inputs, output.reward, rcond=None)[0]
    batch = train_batch([methods.FitProblem(hide_reward(model), inputs, states, actions)], torch.float64)
    leaf = torch.as_tensor(theta).requires_grad_(True)
    nll = maxent_nll(batch.likelihood_tasks("train", "start"), (torch.as_tensor(inputs) @ leaf)[None], batch.train_visitation)[0]  # per demo
    (grad,) = torch.autograd.grad(nll, [leaf])
    np.testing.assert_allclose(states.shape[0] * grad.numpy(), -method.prior.precision @ (theta - method.prior.mean), atol=1e-6)


def test_prepare_fits_the_pool_and_picks_the_parameters_by_family():
    pool = collect("mandril_envs/TabularMDP-Linear-v0", 8, 5, "train")
    method = methods.make("map_prior", pool_max_steps=50)
    method.prepare(pool)
    assert method.model_kind == "linear" and tuple(method.thetas.shape) == (8, 4)
    bandits = collect("mandril_envs/Bandit-v0", 6, 4, "train")
    method = methods.make("map_prior", pool_max_steps=50)
    method.prepare(bandits)
    assert method.model_kind == "tabular" and tuple(method.thetas.shape) == (6, 5)  # (1, K) state-action table
    again = methods.make("map_prior", covariance="diagonal")
    again.load_state_dict(method.state_dict())
    np.testing.assert_allclose(np.diag(again.prior.covariance), method.thetas.numpy().var(0), rtol=1e-9)
