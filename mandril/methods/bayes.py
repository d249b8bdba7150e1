"""The limit: the posterior mode of a task's reward under its family's true prior (the ``bayes`` reference).

Given ``n`` demos of a task with known dynamics, the exact likelihood of the reward ``r`` is the
probability of the demonstrator's actions, ``prod_demos prod_t pi_r(a_t | s_t, t)`` (the transitions do
not depend on ``r``), where ``pi_r`` is the soft expert's Boltzmann policy at the demonstrator's
temperature ``tau`` (``pi = softmax(Q / tau)`` from finite-horizon soft value iteration). With the
family's prior (``env.unwrapped.reward_prior()``, :mod:`mandril_envs.priors`) the posterior mode is:

* Gaussian prior, ``reward = basis @ params``, ``params = mean + std * z``, ``z ~ N(0, I)``: minimise
  ``(-log lik(r(z)) + |z|^2 / 2) / n`` (the linear-intent families; the ``N(1, 1)`` state-action means
  of the RL^2 random MDPs; Gaussian bandits);
* box prior (every entry uniform on ``[low, high]``, Bernoulli bandits): minimise ``-log lik(r) / n``
  over the box. The likelihood does not change when a constant is added to every reward, so the
  modes form a segment ``r + c``; the one returned is centred in the box (the EVD is the same for all);
* discrete prior (GridWorld: which sprite is the goal): the exact posterior over the candidates,
  ``log p_k + log lik(r_k)``; the mode is its argmax (ties: the first in the prior's canonical order).

Both continuous cases run one optimiser, projected Newton with the exact Hessian (Bertsekas 1982;
without bounds, a Newton method with an Armijo search), to a projected-gradient norm of ``grad_tol``;
gradient and Hessian come from the batched soft value iteration kernel (:mod:`mandril.planning`) by
autograd. The families' priors have at most a few dozen parameters, so the Hessian is cheap.

What the method reads: the task's dynamics, the demos and the prior; never the task's reward (the
harness hands it the model with its reward zeroed, like every learning method). The demonstrator's
temperature is a setting of the suite (its family's ``expert``): the suite passes it to every method
with ``expert_policy``/``expert_temperature`` settings (:meth:`mandril.bench.suite.Suite.method_settings`),
since a :class:`~mandril.methods.base.FitProblem` carries no demonstrator. Only a soft demonstrator
has this likelihood; a suite whose expert is ``"optimal"`` or ``"epsilon"`` is refused.

It is the mode, not the Bayes-optimal decision for EVD, so it is a reference (the gap a method has
left to close), not a strict bound. ``benchmarks/information_curve.py`` calls :func:`posterior_mode`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional

import numpy as np
import torch
from torch import Tensor

from mandril.core.config import check_ints, check_numbers
from mandril.methods.base import FitError, FitProblem, Method, MethodOutput
from mandril.planning import TaskBatch, soft_value_iteration
from mandril_envs.model import TabularModel
from mandril_envs.planning import soft_value_iteration as soft_value_iteration_numpy
from mandril_envs.priors import BoxRewardPrior, DiscreteRewardPrior, GaussianRewardPrior

__all__ = ["BayesConfig", "Bayes", "PosteriorMode", "posterior_mode", "action_log_likelihood"]

#: The demonstrators whose likelihood the reference knows.
EXPERT_POLICIES = ("soft",)
_ARMIJO = 1e-4


@dataclass(frozen=True)
class BayesConfig:
    """Settings of the ``bayes`` reference.

    Attributes:
        expert_policy: the demonstrator (only ``"soft"``, the Boltzmann policy, has this likelihood);
            a suite sets it from its family's ``expert``.
        expert_temperature: the demonstrator's temperature ``tau > 0`` (a suite sets it from its
            family's ``expert``; the default is :class:`mandril_envs.demos.ExpertSettings`').
        grad_tol: the optimisation stops when the norm of the projected gradient of the objective
            (per demo) is at most this (>= 0).
        max_steps: the most iterations (>= 1).
    """

    expert_policy: str = "soft"
    expert_temperature: float = 1.0
    grad_tol: float = 1e-6
    max_steps: int = 200

    def __post_init__(self) -> None:
        if self.expert_policy not in EXPERT_POLICIES:
            raise ValueError(
                f"expert_policy must be one of {list(EXPERT_POLICIES)} (the bayes reference knows the likelihood of a soft "
                f"demonstrator only), got {self.expert_policy!r}"
            )
        check_numbers(self, positive=("expert_temperature",), non_negative=("grad_tol",))
        check_ints(self, max_steps=1)


@dataclass(frozen=True)
class PosteriorMode:
    """The posterior mode of one task's reward.

    Attributes:
        reward: ``(S,)`` or ``(S, A)`` float64.
        log_posterior: the unnormalised log posterior there (log likelihood of the demos' actions plus
            the log prior density or probability, up to the prior's constant).
        converged: whether the optimisation reached its tolerance (always true for a discrete prior).
        grad_norm: the projected-gradient norm where it stopped (0 for a discrete prior).
        steps: iterations taken (candidates scored, for a discrete prior).
        posterior: ``(K,)`` posterior probabilities of the candidates (discrete prior only).
    """

    reward: np.ndarray
    log_posterior: float
    converged: bool
    grad_norm: float
    steps: int
    posterior: Optional[np.ndarray] = None

    def info(self) -> dict:
        """The diagnostics as plain data (for ``MethodOutput.info``)."""
        out = {"log_posterior": self.log_posterior, "converged": self.converged, "grad_norm": self.grad_norm, "steps": self.steps}
        if self.posterior is not None:
            out["posterior"] = [float(p) for p in self.posterior]
        return out


def action_log_likelihood(model: TabularModel, reward: np.ndarray, states: np.ndarray, actions: np.ndarray, temperature: float) -> float:
    """``sum_demos sum_t log pi_r(a_t | s_t, t)`` of the soft expert at ``temperature`` (numpy planner).

    Args:
        model: the dynamics (its reward is not used).
        reward: ``(S,)`` or ``(S, A)``.
        states: ``(n, H+1)``; ``actions``: ``(n, H)``.
    """
    policy = soft_value_iteration_numpy(model, reward, temperature).policy
    steps = np.arange(actions.shape[1])[None]
    with np.errstate(divide="ignore"):
        return float(np.log(policy[steps, states[:, :-1], actions]).sum())


def posterior_mode(
    model: TabularModel,
    prior: Any,
    states: np.ndarray,
    actions: np.ndarray,
    temperature: float = 1.0,
    grad_tol: float = 1e-6,
    max_steps: int = 200,
) -> PosteriorMode:
    """The mode of the posterior over the task's reward under ``prior`` given the demos (module docstring).

    Args:
        model: the task's dynamics (its reward is never read).
        prior: a :class:`~mandril_envs.priors.GaussianRewardPrior`, :class:`~mandril_envs.priors.BoxRewardPrior`
            or :class:`~mandril_envs.priors.DiscreteRewardPrior` whose ``shape`` is the model's reward shape.
        states: ``(n, H+1)`` int demo states; ``actions``: ``(n, H)``.
        temperature: the soft demonstrator's ``tau > 0``.
        grad_tol, max_steps: the optimiser's tolerance and budget (continuous priors).

    Raises:
        TypeError: ``prior`` is not one of the three forms.
        ValueError: its shape is not the model's reward shape.
    """
    if not isinstance(prior, (GaussianRewardPrior, BoxRewardPrior, DiscreteRewardPrior)):
        raise TypeError(f"prior must be a mandril_envs.priors reward prior (Gaussian, box or discrete), got {type(prior).__name__}")
    shape = tuple(model.reward_matrix.shape)
    if tuple(prior.shape) != shape:
        raise ValueError(f"the prior describes rewards of shape {tuple(prior.shape)}, but the task's reward has shape {shape}")
    states, actions = np.asarray(states, np.int64), np.asarray(actions, np.int64)
    if isinstance(prior, DiscreteRewardPrior):
        return _discrete_mode(model, prior, states, actions, temperature)
    return _continuous_mode(model, prior, states, actions, temperature, grad_tol, max_steps)


def _discrete_mode(model: TabularModel, prior: DiscreteRewardPrior, states: np.ndarray, actions: np.ndarray, temperature: float) -> PosteriorMode:
    log_post = np.full(len(prior.probs), -math.inf)
    for k, (reward, p) in enumerate(zip(prior.rewards, prior.probs)):
        if p > 0:
            log_post[k] = math.log(p) + action_log_likelihood(model, reward, states, actions, temperature)
    best = int(np.argmax(log_post))
    top = log_post[best]
    weights = np.exp(log_post - top) if math.isfinite(top) else (prior.probs > 0).astype(float)
    return PosteriorMode(np.array(prior.rewards[best]), float(top), True, 0.0, int((prior.probs > 0).sum()), weights / weights.sum())


def _continuous_mode(
    model: TabularModel, prior: Any, states: np.ndarray, actions: np.ndarray, temperature: float, grad_tol: float, max_steps: int
) -> PosteriorMode:
    batch = TaskBatch.from_models([model])
    n = states.shape[0]
    steps_t = torch.arange(actions.shape[1])[None]
    s_t, a_t = torch.as_tensor(states[:, :-1]), torch.as_tensor(actions)
    shape = tuple(model.reward_matrix.shape)

    if isinstance(prior, GaussianRewardPrior):
        std = torch.tensor(prior.std)
        mean = torch.tensor(prior.mean)
        basis = None if prior.basis is None else torch.tensor(prior.basis)

        def to_reward(x: Tensor) -> Tensor:
            params = mean + std * x
            return (params if basis is None else basis @ params).reshape(shape)

        def log_prior(x: Tensor) -> Tensor:
            return -0.5 * (x * x).sum()

        x0 = torch.zeros(prior.n_params, dtype=torch.float64)
        lower = upper = None
    else:
        def to_reward(x: Tensor) -> Tensor:
            return x.reshape(shape)

        def log_prior(x: Tensor) -> Tensor:
            return x.new_zeros(())

        x0 = torch.tensor(prior.mean_reward().ravel())
        lower, upper = prior.low, prior.high

    def objective(x: Tensor) -> Tensor:
        plan = soft_value_iteration(batch, to_reward(x)[None], temperature)
        log_pi = (plan.q_values[0][steps_t, s_t, a_t] - plan.values[0][steps_t, s_t]) / temperature
        return -(log_pi.sum() + log_prior(x)) / n

    x, value, norm, steps = _projected_newton(objective, x0, lower, upper, grad_tol, max_steps)
    if not math.isfinite(value):
        raise FloatingPointError(f"the posterior objective is not finite ({value}) at the optimiser's end")
    reward = to_reward(x).detach().numpy().copy()
    if isinstance(prior, BoxRewardPrior):  # the modes r + c: the one centred in the box
        reward += 0.5 * ((prior.low - reward.min()) + (prior.high - reward.max()))
        reward = np.clip(reward, prior.low, prior.high)
    return PosteriorMode(reward, -n * value, norm <= grad_tol, norm, steps)


def _projected_newton(
    objective: Callable[[Tensor], Tensor],
    x0: Tensor,
    lower: Optional[float],
    upper: Optional[float],
    tol: float,
    max_steps: int,
) -> tuple[Tensor, float, float, int]:
    """Minimise ``objective`` on the box ``[lower, upper]`` (``None``: no bounds) from ``x0`` by projected
    Newton steps (Bertsekas 1982) with the exact Hessian.

    Variables at a bound whose gradient pushes outward are held there (projected gradient steps);
    the others take a Newton step with the Hessian's eigenvalues replaced by their absolute values
    (floored at ``1e-9`` of the largest), so a non-convex region or a flat direction (a constant
    added to every reward changes no likelihood) gives a descent direction. An Armijo search along
    the projected arc. Returns ``(x, objective, projected-gradient norm, iterations)``.
    """
    bounded = lower is not None

    def project(x: Tensor) -> Tensor:
        return x.clamp(lower, upper) if bounded else x

    def value_and_grad(x: Tensor) -> tuple[float, Tensor]:
        leaf = x.detach().requires_grad_(True)
        value = objective(leaf)
        (grad,) = torch.autograd.grad(value, [leaf])
        return float(value.detach()), grad.detach()

    x = project(x0.clone())
    value, grad = value_and_grad(x)
    for iteration in range(max_steps + 1):
        norm = float((project(x - grad) - x).norm())
        if norm <= tol or iteration == max_steps:
            return x, value, norm, iteration
        if bounded:
            margin = min(1e-3 * (upper - lower), norm)
            held = ((x <= lower + margin) & (grad > 0)) | ((x >= upper - margin) & (grad < 0))
        else:
            held = torch.zeros_like(x, dtype=torch.bool)
        free = ~held
        direction = -grad.clone()
        if bool(free.any()):
            hessian = torch.autograd.functional.hessian(objective, x, vectorize=True)[free][:, free]
            eigenvalues, vectors = torch.linalg.eigh(0.5 * (hessian + hessian.T))
            floor = 1e-9 * max(float(eigenvalues.abs().max()), 1e-12)
            direction[free] = -(vectors @ ((vectors.T @ grad[free]) / eigenvalues.abs().clamp_min(floor)))
        size = 1.0
        for _ in range(60):
            trial = project(x + size * direction)
            decrease = float((grad[free] * (x - trial)[free]).sum() + (grad[held] * (x - trial)[held]).sum())
            trial_value, trial_grad = value_and_grad(trial)
            if math.isfinite(trial_value) and trial_value <= value - _ARMIJO * decrease:
                break
            size *= 0.5
        else:  # no decrease at the precision of the arithmetic: stop where we are
            return x, value, norm, iteration
        x, value, grad = trial, trial_value, trial_grad
    return x, value, float("nan"), max_steps  # pragma: no cover - the loop returns


class Bayes(Method):
    """The posterior mode of the reward under the family's true prior (see the module docstring)."""

    name: ClassVar[str] = "bayes"
    kind: ClassVar[str] = "reference"
    Config: ClassVar[type] = BayesConfig
    reads_reward_prior: ClassVar[bool] = True

    def _fit_one(self, problem: FitProblem) -> MethodOutput:
        if problem.prior is None:
            raise ValueError(f"{self.name} needs the family's reward prior (FitProblem.prior = env.unwrapped.reward_prior()); {problem.label} has none")
        c = self.config
        try:
            mode = posterior_mode(problem.model, problem.prior, problem.states, problem.actions, c.expert_temperature, c.grad_tol, c.max_steps)
        except FloatingPointError as error:
            raise FitError(f"{self.name}: {problem.label}: {error}") from None
        return MethodOutput(reward=mode.reward, info=mode.info())
