"""TRPO pieces: conjugate gradient, Hessian-vector products (exact and finite difference), line search."""

from __future__ import annotations

import pytest
import torch

from mandril.maml_rl.metalearner import MAMLTRPO
from mandril.maml_rl.policies import CategoricalMLPPolicy
from mandril.maml_rl.sampler import MultiTaskSampler
from mandril.maml_rl.trpo import (
    conjugate_gradient,
    exact_hvp,
    finite_difference_hvp,
    flatten,
    line_search,
    unflatten,
)


def test_flatten_unflatten_round_trip():
    params = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([7.0, 8.0])}
    vec = flatten(params)
    assert vec.tolist() == [0, 1, 2, 3, 4, 5, 7, 8]
    back = unflatten(vec, params)
    assert all(torch.equal(back[k], params[k]) for k in params)
    with pytest.raises(ValueError, match="entries"):
        unflatten(torch.zeros(5), params)


def test_conjugate_gradient_solves_small_spd_system():
    g = torch.Generator().manual_seed(3)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    x, residual = conjugate_gradient(lambda v: a @ v, b, iters=6, residual_tol=1e-30)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-7, atol=1e-9)
    assert residual < 1e-12
    # fewer iterations than the dimension: a worse but still descending approximation
    x2, residual2 = conjugate_gradient(lambda v: a @ v, b, iters=2)
    assert residual2 > residual
    assert torch.linalg.norm(a @ x2 - b) < torch.linalg.norm(b)


def _tiny_maml_kl():
    """A tiny MLP policy on one-pull bandit episodes: KL(theta) through a second-order inner step."""
    sampler = MultiTaskSampler("mandril_envs/Bandit-K5-v0", {"n_arms": 3, "horizon": 1}, max_tasks=2, envs_per_task=8)
    gen = torch.Generator().manual_seed(0)
    policy = CategoricalMLPPolicy(1, 3, (2,), generator=gen)
    learner = MAMLTRPO(policy, fast_lr=2.0, cg_damping=0.0)
    rollouts = learner.sample(sampler, sampler.sample_tasks(2), 8, seeds=[1, 2], generator=gen)
    old = learner._old_log_probs(rollouts)
    sampler.close()
    # evaluate away from theta_old, where the KL gradient is not zero and the Hessian is not just a Fisher matrix
    point = {k: v.detach() + 0.3 * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in policy.params().items()}

    def kl(params):
        return learner.surrogate(params, rollouts, old, need_loss=False)[1]

    return learner, rollouts, old, point, kl


def test_hvp_exact_and_finite_difference_match_explicit_hessian():
    learner, rollouts, old, point, kl = _tiny_maml_kl()
    flat = flatten(point)
    hessian = torch.autograd.functional.hessian(lambda v: kl(unflatten(v, point)), flat)
    assert hessian.shape == (flat.numel(), flat.numel())
    assert hessian.abs().max() > 1e-3  # not a vacuous comparison
    leaves = {k: v.clone().requires_grad_(True) for k, v in point.items()}
    hvp = exact_hvp(kl, leaves)

    def kl_grad(p):
        leaf = {k: v.detach().clone().requires_grad_(True) for k, v in p.items()}
        return flatten(torch.autograd.grad(kl(leaf), list(leaf.values())))

    fd = finite_difference_hvp(kl_grad, point, eps=1e-5)
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        v = torch.randn(flat.numel(), generator=gen, dtype=flat.dtype)
        expected = hessian @ v
        torch.testing.assert_close(hvp(v), expected, rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(fd(v), expected, rtol=1e-4, atol=1e-6)
    # damping adds lambda v
    damped = exact_hvp(kl, leaves, damping=0.1)
    torch.testing.assert_close(damped(v), expected + 0.1 * v, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("objective", ["reinforce", "lvc"])
def test_learner_kl_hvps_at_theta_old(objective):
    """Double backprop gives the Hessian of the KL through the configured inner objective (checked against
    the explicit Hessian). Finite differences agree with it for REINFORCE; for LVC they cannot see LVC's
    curvature (they move theta in the function, whose derivative is REINFORCE's) and differ."""
    learner, rollouts, old, _, kl = _tiny_maml_kl()
    learner.inner_objective = objective
    theta = {k: v.detach() for k, v in learner.policy.params().items()}
    flat = flatten(theta)
    v = torch.linspace(-1, 1, flat.numel(), dtype=torch.float64)
    learner.hvp = "exact"
    exact = learner.kl_hvp(rollouts, old)(v)
    learner.hvp = "finite_difference"
    fd = learner.kl_hvp(rollouts, old)(v)
    assert exact.norm() > 1e-4
    hessian = torch.autograd.functional.hessian(lambda x: learner.surrogate(unflatten(x, theta), rollouts, old, need_loss=False)[1], flat)
    torch.testing.assert_close(exact, hessian @ v, rtol=1e-7, atol=1e-10)
    if objective == "reinforce":
        torch.testing.assert_close(fd, exact, rtol=1e-4, atol=1e-7)
    else:
        assert (fd - exact).norm() > 1e-3 * exact.norm()


def test_line_search_rejects_steps_that_violate_the_kl_bound():
    calls = []

    def evaluate(fraction):
        calls.append(fraction)
        return -fraction, fraction**2  # the loss always improves; the KL only fits for fraction <= 0.1

    result = line_search(evaluate, old_loss=0.0, max_kl=0.01, max_steps=10, backtrack_ratio=0.5)
    assert result.accepted
    assert result.step_fraction == pytest.approx(0.0625)
    assert result.kl <= 0.01
    assert calls == pytest.approx([1.0, 0.5, 0.25, 0.125, 0.0625])


def test_line_search_rejects_everything_when_kl_never_fits_or_loss_never_improves():
    result = line_search(lambda f: (-1.0, 1.0), old_loss=0.0, max_kl=0.01, max_steps=4)
    assert not result.accepted and result.step_fraction == 0.0 and result.n_evaluations == 4
    result = line_search(lambda f: (0.5, 0.0), old_loss=0.0, max_kl=0.01, max_steps=4)
    assert not result.accepted
    result = line_search(lambda f: (float("nan"), 0.0), old_loss=0.0, max_kl=0.01, max_steps=2)
    assert not result.accepted
    with pytest.raises(ValueError, match="backtrack_ratio"):
        line_search(lambda f: (0.0, 0.0), 0.0, 0.01, backtrack_ratio=1.5)
