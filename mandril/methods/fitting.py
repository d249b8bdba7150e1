"""Fitting a reward model to demos by the MaxEnt likelihood, many tasks at once, to convergence.

The one optimiser of every MaxEnt-family fit (MaxEnt IRL from scratch with tabular, linear or
neural rewards; the fine-tuning of pre-train + fine-tune). For ``B`` tasks, task ``b`` with its own
parameters ``theta_b``, it minimises

    ``J_b(theta_b) = L(r_{theta_b}; D_b) / H + (l2 / 2) ||theta_b - c_b||^2 [+ (1/2) (theta_b - m_b)^T P_b (theta_b - m_b)]``

where ``L`` is the MaxEnt negative log-likelihood (:func:`mandril.planning.maxent_nll`) of the
task's demos under the chosen likelihood (:data:`mandril.data.LIKELIHOODS`: start-conditioned by
default), divided by the horizon so that rates and tolerances mean the same for every family, and
``c_b`` is zero or the initial parameters (fine-tuning regularised toward pre-trained weights). The
optional last term is a general quadratic penalty (:class:`QuadraticPenalty`: a Gaussian prior's
``-log`` density, up to a constant, for MAP fits such as ``map_prior``); ``theta_b`` there is the
task's parameters flattened in the order of ``init``'s keys.

Two optimisers, both written out per task so that every quantity (curvature pairs, step sizes, line
searches, moments, gradient norms) belongs to one task and a task's trajectory is the same whether it
is fitted alone or in a batch of any size up to the batched kernel's rounding (tested to 1e-10 for
tabular rewards), while all ``B`` objectives go through the batched kernel in one call per evaluation.
On the sparse layout with a batch-invariant reward model (the conv nets, the table) that rounding is
per task too, bit for bit: the backup decides task by task whether its exp-space step is exact
(``_deterministic_soft_max`` in :mod:`mandril.planning.kernels`), so a task whose values spread wide (e.g.
at a line search's trial point) no longer sends the other tasks of the call to the general step. That
mattered: the neural fits are chaotic in the last bits (a one-ulp change of one initial weight moved
the rewards of a 100-step conv fit by up to 2% and its normalized EVD by up to 0.01), and with the
old batch-wide decision a conv task fitted alone ended up to 0.3 in reward from the same task fitted
in its unit (``benchmarks/batched_fits.py``): a cell's value depended on which tasks shared its unit.

* ``"lbfgs"`` (default): L-BFGS with a backtracking (Armijo) line search. The objective is smooth
  (and convex for tabular and linear rewards), so it converges in tens of iterations where Adam
  needs thousands.
* ``"adam"``: Adam with a cosine-decayed (or constant) rate.

A task stops, and leaves the batch, for one of three reasons (:data:`STATUSES`, ``TaskFit.status``):

* ``"converged"``: the norm of its gradient is at most ``grad_tol``.
* ``"precision"`` (L-BFGS only): converged to the precision of the arithmetic: the objective can no
  longer tell a better point from a worse one. Near the optimum a step decreases ``J`` by about
  ``g^T H^-1 g / 2``; once that is below the rounding error of ``J`` itself (a few ulps of ``|J|``),
  the Armijo test compares rounding noise: it accepts steps of no use (backtracked to lengths of 1e-7
  and less, each costing up to 30 evaluations) and the gradient norm freezes, at a level set by how
  the CPU's kernels round (on one fit, 1.2e-10 with AVX2 and 1.7e-9 with AVX-512). The rule: the task
  stops when its line search finds no acceptable step, or when on ``PRECISION_STEPS`` (5) consecutive
  iterations the step it accepts decreases ``J`` by at most ``PRECISION_EPS * eps * |J|`` (4 machine
  epsilons of the dtype times ``|J|``: 4 to 8 ulps of J). A real decrease is that small only where
  ``||g|| <~ sqrt(8 eps |J| lambda_max(H))`` (about 1e-7 for ``|J| ~ 1`` and curvature ~ 10), far below
  any useful ``grad_tol``; the default 1e-5 stops fits whose steps still decrease ``J`` by more than
  1e4 times the threshold. Five steps rather than fewer because L-BFGS often still lowers the gradient
  for a step or two after ``J`` stops resolving progress: on 52 tabular fits run without the rule, it
  stops within a factor 1.1 (geometric mean; at most 2.8) of the smallest gradient norm the fit reached
  in 80 steps; after three steps, a factor 1.9 (at most 20). The reported gradient norm says how close
  to stationary the task got.
* ``"max_steps"``: it ran ``max_steps`` iterations without either.

A task whose objective or gradient is not finite, or whose reward exceeds ``max_abs_reward`` in
magnitude, has diverged: it gets a :class:`~mandril.methods.base.DivergenceError` naming the method,
the task, the step and the rate, and the others go on. Every stopping test reads only the task's own
numbers, so a task stops at the same step whether it is fitted alone or in a batch, as long as the
batched kernel rounds its numbers the same (at precision, a last bit decides the last steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from mandril.core.config import check_ints, check_numbers
from mandril.data.batch import MetaBatch, check_likelihood
from mandril.methods.base import DivergenceError
from mandril.planning import TaskBatch, maxent_nll
from mandril.rewards.batched import Params, batched_rewards

__all__ = ["FitSettings", "TaskFit", "QuadraticPenalty", "fit_rewards", "OPTIMIZERS", "SCHEDULES", "L2_CENTERS", "STATUSES", "PRECISION_EPS", "PRECISION_STEPS"]

#: The optimisers of a fit (``FitSettings.optimizer``).
OPTIMIZERS = ("lbfgs", "adam")
#: The learning-rate schedules of Adam fits (``FitSettings.schedule``).
SCHEDULES = ("cosine", "constant")
#: Where the L2 penalty pulls the parameters (``FitSettings.l2_center``): zero, or the initial parameters.
L2_CENTERS = ("zero", "init")
#: How a fit ended (``TaskFit.status``; see the module docstring).
STATUSES = ("converged", "precision", "max_steps")

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8
_ARMIJO, _MAX_BACKTRACKS = 1e-4, 30
# converged to precision: PRECISION_STEPS consecutive accepted steps that decrease J by at most
# PRECISION_EPS * eps * |J| (see the module docstring)
PRECISION_EPS, PRECISION_STEPS = 4.0, 5


@dataclass(frozen=True)
class FitSettings:
    """How a reward model is fitted (the optimiser half of a MaxEnt-family method's config).

    Attributes:
        optimizer: ``"lbfgs"`` (default) or ``"adam"``.
        lr: Adam's step size at the start; L-BFGS's first trial step is ``lr / ||g||`` on its
            first iteration and 1 (the quasi-Newton step) afterwards (> 0).
        max_steps: the most iterations per task (>= 1).
        grad_tol: a task has converged when the L2 norm of the gradient of ``J_b`` over all its
            parameters is at most this (>= 0).
        l2: weight of the ``(l2 / 2) ||theta - c||^2`` penalty (>= 0). Without it, with one or two
            demos, the rewards of unvisited states drift toward minus infinity.
        l2_center: ``"zero"`` (``c = 0``) or ``"init"`` (``c`` = the initial parameters, e.g. pre-trained weights).
        schedule: Adam's rate: ``"cosine"`` (decays to 0 at ``max_steps``) or ``"constant"``.
        history: L-BFGS's number of curvature pairs (>= 1).
        max_abs_reward: a task whose reward table reaches this magnitude has diverged (> 0); the
            families' true rewards are of order 10.
    """

    optimizer: str = "lbfgs"
    lr: float = 1.0
    max_steps: int = 300
    grad_tol: float = 1e-5
    l2: float = 0.01
    l2_center: str = "zero"
    schedule: str = "cosine"
    history: int = 10
    max_abs_reward: float = 1e4

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        check_numbers(self, positive=("lr", "max_abs_reward"), non_negative=("grad_tol", "l2"))
        check_ints(self, max_steps=1, history=1)
        if self.l2_center not in L2_CENTERS:
            raise ValueError(f"l2_center must be one of {list(L2_CENTERS)}, got {self.l2_center!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")

    @classmethod
    def of(cls, config: object) -> "FitSettings":
        """The optimiser fields of a method config that extends :class:`FitSettings`."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})

    def rate(self, step: int) -> float:
        """Adam's learning rate at step ``step`` (0-based)."""
        if self.schedule == "constant":
            return self.lr
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * step / self.max_steps))


@dataclass(frozen=True)
class TaskFit:
    """The result of one task's fit.

    Attributes:
        reward: ``(S,)`` or ``(S, A)`` float64, at the parameters where the fit stopped.
        params: those parameters (detached).
        steps: iterations taken.
        status: why it stopped (:data:`STATUSES`): ``"converged"`` (the gradient norm reached
            ``grad_tol``), ``"precision"`` (converged to the precision of the arithmetic: no step
            decreases the objective beyond rounding any more; see the module docstring) or
            ``"max_steps"``.
        grad_norm: the gradient norm where the fit stopped.
        loss: ``J_b`` there (per-step NLL plus the penalty).
    """

    reward: np.ndarray
    params: Params
    steps: int
    status: str
    grad_norm: float
    loss: float

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {list(STATUSES)}, got {self.status!r}")

    @property
    def converged(self) -> bool:
        """Whether the gradient norm reached ``grad_tol``."""
        return self.status == "converged"

    def info(self) -> dict:
        """The diagnostics as plain data (for ``MethodOutput.info``)."""
        return {"steps": self.steps, "status": self.status, "converged": self.converged, "grad_norm": self.grad_norm, "loss": self.loss}


@dataclass(frozen=True)
class QuadraticPenalty:
    """``(1/2) (theta_b - m_b)^T P_b (theta_b - m_b)`` added to task ``b``'s objective.

    Attributes:
        mean: ``(B, P)`` (or ``(P,)``, shared by every task): ``m``.
        precision: ``(B, P, P)`` (or ``(P, P)``, shared): ``P``, symmetric positive semi-definite.
            Its scale is that of the objective, which is per demo and per step: a Gaussian prior
            ``N(m, Sigma)`` over ``n`` demos of horizon ``H`` is ``P = Sigma^-1 / (n H)``.
    """

    mean: Tensor
    precision: Tensor

    def __post_init__(self) -> None:
        mean, precision = self.mean, self.precision
        if not isinstance(mean, Tensor) or not isinstance(precision, Tensor):
            raise TypeError(f"mean and precision must be torch tensors, got {type(mean).__name__} and {type(precision).__name__}")
        n_params = mean.shape[-1] if mean.ndim else 0
        if mean.ndim not in (1, 2) or precision.ndim != mean.ndim + 1 or precision.shape[-2:] != (n_params, n_params) or precision.shape[:-2] != mean.shape[:-1]:
            raise ValueError(f"a quadratic penalty needs mean (P,) with precision (P, P), or (B, P) with (B, P, P); got {tuple(mean.shape)} and {tuple(precision.shape)}")
        if not bool(torch.isfinite(mean).all()) or not bool(torch.isfinite(precision).all()):
            raise ValueError("a quadratic penalty's mean and precision must be finite")

    def batched(self, n_tasks: int, dtype: torch.dtype, device: Any) -> "QuadraticPenalty":
        """With a leading task axis of ``n_tasks``, as ``dtype`` on ``device``."""
        mean, precision = self.mean.to(dtype=dtype, device=device), self.precision.to(dtype=dtype, device=device)
        if mean.ndim == 1:
            mean, precision = mean.expand(n_tasks, -1), precision.expand(n_tasks, -1, -1)
        if mean.shape[0] != n_tasks:
            raise ValueError(f"the penalty has {mean.shape[0]} tasks' means for {n_tasks} tasks")
        return QuadraticPenalty(mean, precision)

    def value(self, x: Tensor) -> Tensor:
        """``(b,)`` at ``x (b, P)``."""
        d = x - self.mean
        return 0.5 * torch.einsum("bp,bpq,bq->b", d, self.precision, d)

    def select(self, rows: Tensor) -> "QuadraticPenalty":
        """The penalty of the tasks ``rows`` (indices into the batch) only."""
        return QuadraticPenalty(self.mean[rows], self.precision[rows])


class _Flat:
    """Between a parameter dict with a leading task axis and flat per-task vectors ``(b, P)``."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        self.names = list(params)
        self.shapes = [tuple(params[k].shape[1:]) for k in self.names]
        self.sizes = [int(np.prod(s)) for s in self.shapes]

    def flatten(self, params: Mapping[str, Tensor]) -> Tensor:
        return torch.cat([params[k].reshape(params[k].shape[0], -1) for k in self.names], dim=1)

    def unflatten(self, flat: Tensor) -> Params:
        pieces = torch.split(flat, self.sizes, dim=1)
        return {k: piece.reshape(flat.shape[0], *shape) for k, piece, shape in zip(self.names, pieces, self.shapes)}


@dataclass
class _Evaluation:
    """The objective of every running task at one point: values ``(b,)``, flat gradients ``(b, P)``, rewards.

    ``norms`` and ``biggest`` are computed once per state of the tensors (read per task, they would
    otherwise cost a pass over all ``b P`` gradient entries per task); an in-place change of ``grads``
    or ``rewards`` (their version counter) computes them anew.
    """

    values: Tensor
    grads: Tensor
    rewards: Tensor

    @property
    def norms(self) -> Tensor:
        return self._cached("_norms", self.grads, lambda: self.grads.norm(dim=1))

    @property
    def biggest(self) -> Tensor:
        return self._cached("_biggest", self.rewards, lambda: self.rewards.abs().flatten(1).amax(1))

    def _cached(self, name: str, source: Tensor, compute: Callable[[], Tensor]) -> Tensor:
        hit = self.__dict__.get(name)
        if hit is None or hit[0] is not source or hit[1] != source._version:
            hit = (source, source._version, compute())
            self.__dict__[name] = hit
        return hit[2]


def fit_rewards(
    reward_model: nn.Module,
    init: Mapping[str, Tensor],
    batch: MetaBatch,
    settings: FitSettings,
    *,
    likelihood: str = "start",
    temperature: float = 1.0,
    labels: Optional[Sequence[str]] = None,
    method: str = "maxent",
    penalty: Optional[QuadraticPenalty] = None,
) -> list[Union[TaskFit, DivergenceError]]:
    """Fit ``B`` tasks' parameters to their train demos (see the module docstring).

    Args:
        reward_model: the architecture (its own parameters are not used or changed).
        init: every parameter with a leading task axis ``B``: each task's starting point.
        batch: the ``B`` tasks with their train demos (``batch.train_visitation``).
        settings: the optimiser.
        likelihood: ``"start"`` or ``"p0"``.
        temperature: of the MaxEnt likelihood.
        labels: how errors name each task (default ``"task b"``).
        method: how errors name the method.
        penalty: an extra quadratic penalty on the flattened parameters (``P`` = their total size).

    Returns:
        One :class:`TaskFit` or :class:`DivergenceError` per task, in batch order.
    """
    check_likelihood(likelihood)
    n_tasks = batch.tasks.batch_size
    labels = [f"task {b}" for b in range(n_tasks)] if labels is None else list(labels)
    if len(labels) != n_tasks:
        raise ValueError(f"labels has {len(labels)} entries for {n_tasks} tasks")
    if any(v.shape[0] != n_tasks for v in init.values()):
        raise ValueError(f"every init parameter needs a leading task axis of {n_tasks}, got shapes {[tuple(v.shape) for v in init.values()]}")
    dtype, device = batch.tasks.dtype, batch.tasks.device
    start = {k: v.detach().to(dtype=dtype, device=device) for k, v in init.items()}
    flat = _Flat(start)
    if penalty is not None:
        penalty = penalty.batched(n_tasks, dtype, device)
        if penalty.mean.shape[1] != sum(flat.sizes):
            raise ValueError(f"the penalty is over {penalty.mean.shape[1]} parameters, the reward model has {sum(flat.sizes)} per task")
    run = _Run(reward_model, flat, batch, settings, likelihood, temperature, labels, method, flat.flatten(start), penalty)
    if settings.optimizer == "adam":
        run.adam()
    else:
        run.lbfgs()
    return run.results  # type: ignore[return-value]


class _Run:
    """The state of one batched fit: the running tasks (positions into the batch) and their tensors."""

    def __init__(self, reward_model: nn.Module, flat: _Flat, batch: MetaBatch, settings: FitSettings, likelihood: str, temperature: float,
                 labels: list[str], method: str, x: Tensor, penalty: Optional[QuadraticPenalty] = None) -> None:
        self.reward_model, self.flat, self.settings = reward_model, flat, settings
        self.likelihood, self.temperature, self.labels, self.method = likelihood, temperature, labels, method
        self.batch = batch
        self.active = list(range(batch.tasks.batch_size))
        self.x = x.clone()
        self.center = x.clone() if settings.l2_center == "init" else torch.zeros_like(x)
        self.penalty = penalty
        self.results: list[Optional[Union[TaskFit, DivergenceError]]] = [None] * len(self.active)
        self._last_sub: Optional[tuple[tuple[int, ...], TaskBatch]] = None  # (rows, their likelihood dynamics)

    # --- the objective ------------------------------------------------------------------------------
    def evaluate(self, x: Tensor, rows: Optional[Tensor] = None) -> _Evaluation:
        """Objective, gradient and rewards of every running task at ``x (b, P)`` (one batched kernel call);
        with ``rows`` (positions among the running tasks, ``x`` then ``(len(rows), P)``), of those tasks only.

        Where :meth:`_exact_sub_batches` holds and no task left out could veto the backup's exp-space
        step, a task's numbers do not depend on which other tasks share the call (tested bit for
        bit), so a sub-batch costs in proportion to its size and changes nothing.
        """
        center, penalty = self.center, self.penalty
        tasks, inputs, visitation = self.batch.likelihood_tasks("train", self.likelihood), self.batch.inputs, self.batch.train_visitation
        if rows is not None:
            tasks, inputs, visitation, center = self._sub_tasks(rows), inputs[rows], visitation[rows], center[rows]
            penalty = None if penalty is None else penalty.select(rows)
        leaf = x.detach().requires_grad_(True)
        params = self.flat.unflatten(leaf)
        rewards = batched_rewards(self.reward_model, params, inputs)
        nll = maxent_nll(tasks, rewards, visitation, self.temperature) / tasks.horizon
        loss = nll if penalty is None else nll + penalty.value(leaf)
        (grads,) = torch.autograd.grad(loss.sum(), [leaf])
        # the l2 penalty and its gradient written out: the numbers autograd gives (its gradient of
        # (l2 / 2) d^2 is (l2 / 2) (2 d), the same rounding as l2 d), without its temporaries
        offset = x.detach() - center
        objective = loss.detach() + 0.5 * self.settings.l2 * (offset**2).sum(1)
        return _Evaluation(objective, grads + offset.mul_(self.settings.l2), rewards.detach())

    def _sub_tasks(self, rows: Tensor) -> TaskBatch:
        """The likelihood dynamics of the running tasks at ``rows``: a backtracking trial often asks for
        the same rows as the one before it (no task accepted its halved step), so the last is kept."""
        key = tuple(rows.tolist())
        if self._last_sub is None or self._last_sub[0] != key:
            self._last_sub = (key, self.batch.likelihood_tasks("train", self.likelihood).select(rows))
        return self._last_sub[1]

    # --- bookkeeping --------------------------------------------------------------------------------
    def settle(self, evaluation: _Evaluation, step: int, out_of_steps: bool, at_precision: Optional[Tensor] = None) -> list[int]:
        """Record the tasks that diverged, converged, converged to precision (``at_precision (b,)``
        bool: no step decreases the objective beyond rounding any more) or ran out of steps; returns
        the positions still running."""
        keep = []
        for position, task in enumerate(self.active):
            stuck = at_precision is not None and bool(at_precision[position])
            value, norm, size = float(evaluation.values[position]), float(evaluation.norms[position]), float(evaluation.biggest[position])
            if not (math.isfinite(value) and math.isfinite(norm)) or size > self.settings.max_abs_reward:
                self.results[task] = DivergenceError(
                    f"{self.method}: the fit of {self.labels[task]} diverged at step {step} (objective {value:.4g}, largest |reward| {size:.4g}, "
                    f"limit {self.settings.max_abs_reward:g}) with {self.settings.optimizer} lr = {self.settings.lr:g}: lower the learning rate or raise l2"
                )
            elif norm <= self.settings.grad_tol or out_of_steps or stuck:
                params = self.flat.unflatten(self.x[position : position + 1])
                self.results[task] = TaskFit(
                    evaluation.rewards[position].to(torch.float64).cpu().numpy().copy(),
                    {k: v[0].clone() for k, v in params.items()},
                    step,
                    "converged" if norm <= self.settings.grad_tol else "precision" if stuck else "max_steps",
                    norm,
                    value,
                )
            else:
                keep.append(position)
        return keep

    def shrink(self, keep: list[int], *tensors: Tensor) -> list[Tensor]:
        """Drop the stopped tasks from the batch and from ``tensors`` (each with a leading task axis)."""
        if len(keep) == len(self.active):
            return list(tensors)
        rows = torch.as_tensor(keep, dtype=torch.long, device=self.x.device)
        self.batch = self.batch.select(keep)
        self._last_sub = None  # its rows were positions among the tasks that ran before
        self.active = [self.active[p] for p in keep]
        self.x, self.center = self.x[rows], self.center[rows]
        if self.penalty is not None:
            self.penalty = self.penalty.select(rows)
        return [t[rows] for t in tensors]

    # --- Adam ---------------------------------------------------------------------------------------
    def adam(self) -> None:
        first = torch.zeros_like(self.x)
        second = torch.zeros_like(self.x)
        step = 0
        while self.active:
            evaluation = self.evaluate(self.x)
            keep = self.settle(evaluation, step, step >= self.settings.max_steps)
            if not keep:
                return
            grads, first, second = self.shrink(keep, evaluation.grads, first, second)
            rate = self.settings.rate(step)
            step += 1
            first.mul_(_BETA1).add_(grads, alpha=1.0 - _BETA1)
            second.mul_(_BETA2).addcmul_(grads, grads, value=1.0 - _BETA2)
            denominator = (second / (1.0 - _BETA2**step)).sqrt_().add_(_EPS)
            self.x = self.x - rate * (first / (1.0 - _BETA1**step)) / denominator

    # --- L-BFGS -------------------------------------------------------------------------------------
    def lbfgs(self) -> None:
        pairs: list[tuple[Tensor, Tensor, Tensor]] = []  # (s, y, rho) with rho = 0 where the pair is not used
        evaluation = self.evaluate(self.x)
        at_precision: Optional[Tensor] = None
        flat_steps = torch.zeros(len(self.active), dtype=torch.long, device=self.x.device)  # consecutive steps without progress
        rounding = PRECISION_EPS * torch.finfo(self.x.dtype).eps
        step = 0
        while True:
            keep = self.settle(evaluation, step, step >= self.settings.max_steps, at_precision)
            if not keep:
                return
            if len(keep) < len(self.active):
                rows = torch.as_tensor(keep, dtype=torch.long, device=self.x.device)
                pairs = [(s[rows], y[rows], rho[rows]) for s, y, rho in pairs]
                evaluation = _Evaluation(evaluation.values[rows], evaluation.grads[rows], evaluation.rewards[rows])
                flat_steps = flat_steps[rows]
                self.shrink(keep)
            direction = _two_loop(evaluation.grads, pairs)
            slope = (direction * evaluation.grads).sum(1)
            uphill = ~(slope < 0)
            if bool(uphill.any()):  # not a descent direction (lost curvature): steepest descent, forget the pairs
                direction[uphill] = -evaluation.grads[uphill]
                slope[uphill] = -(evaluation.grads[uphill] ** 2).sum(1)
                pairs = [(s, y, torch.where(uphill, torch.zeros_like(rho), rho)) for s, y, rho in pairs]
            first_steps = torch.full_like(slope, 1.0)
            if step == 0:
                first_steps = torch.clamp(self.settings.lr / evaluation.norms.clamp_min(1e-12), max=1.0)
            x_new, new, stalled = self._line_search(evaluation, direction, slope, first_steps)
            flat = (evaluation.values - new.values) <= rounding * evaluation.values.abs()
            flat_steps = torch.where(flat, flat_steps + 1, torch.zeros_like(flat_steps))
            at_precision = stalled | (flat_steps >= PRECISION_STEPS)
            s, y = x_new - self.x, new.grads - evaluation.grads
            curvature = (s * y).sum(1)
            rho = torch.where(curvature > 1e-10, 1.0 / curvature.clamp_min(1e-10), torch.zeros_like(curvature))
            pairs = (pairs + [(s, y, rho)])[-self.settings.history :]
            self.x, evaluation = x_new, new
            step += 1

    def _exact_sub_batches(self) -> bool:
        """Whether a sub-batch can give each task the numbers of the whole batch, bit for bit: a reward
        model that says so (``batch_invariant``: the table, the convolutions) on the sparse layout
        (gathers and a block-diagonal CSR product: each task's rows by the same arithmetic), without a
        quadratic penalty. Batched matrix products (the dense layout's ``bmm``, vmap's linear layers)
        and the penalty's einsum take other paths for other batch sizes (one task: a matrix-vector
        product), which round differently. (The backup's exp-space step is decided task by task.)"""
        invariant = bool(getattr(self.reward_model, "batch_invariant", False))
        return invariant and self.penalty is None and self.batch.tasks.layout == "sparse"

    def _line_search(self, evaluation: _Evaluation, direction: Tensor, slope: Tensor, steps: Tensor) -> tuple[Tensor, _Evaluation, Tensor]:
        """Per-task backtracking until ``J(x + t d) <= J(x) + c t g.d`` (Armijo). Returns the new points,
        their evaluation and which tasks found no such step (they stay where they are and stop as
        converged to precision: they cannot be improved along the direction L-BFGS proposes).

        The first trial evaluates every task; a backtracking trial only the tasks still searching
        where that changes no number (:meth:`_exact_sub_batches`: the sparse layout of the GridWorld
        families, whose conv fits dominate the suite's time; there about half of all evaluations
        were backtracking trials of all 20 tasks of a unit for the sake of one or two). When every
        task accepts its first trial, that trial's tensors are the result as they are.
        """
        trial = self.x + steps[:, None] * direction
        tried = self.evaluate(trial)
        ok = torch.isfinite(tried.values) & (tried.values <= evaluation.values + _ARMIJO * steps * slope)
        if bool(ok.all()):
            return trial, tried, ~ok
        # the first trial's fresh tensors become the result; the rows of the tasks still searching are
        # put back to where they are until they accept a step
        accepted, rows = ok, (~ok).nonzero().squeeze(1)
        x_new, new = trial, tried
        x_new[rows], new.values[rows], new.grads[rows], new.rewards[rows] = self.x[rows], evaluation.values[rows], evaluation.grads[rows], evaluation.rewards[rows]
        sub_batches = self._exact_sub_batches()
        for _ in range(_MAX_BACKTRACKS - 1):
            rows = (~accepted).nonzero().squeeze(1)
            steps = steps.index_copy(0, rows, steps[rows] * 0.5)
            if sub_batches:
                trial = self.x[rows] + steps[rows, None] * direction[rows]
                tried = self.evaluate(trial, rows)
            else:  # a sub-batch would round differently: every task, at its own step, as in a full trial
                everywhere = self.x + steps[:, None] * direction
                every = self.evaluate(everywhere)
                trial, tried = everywhere[rows], _Evaluation(every.values[rows], every.grads[rows], every.rewards[rows])
            ok = torch.isfinite(tried.values) & (tried.values <= evaluation.values[rows] + _ARMIJO * steps[rows] * slope[rows])
            done = rows[ok]
            x_new[done], new.values[done], new.grads[done], new.rewards[done] = trial[ok], tried.values[ok], tried.grads[ok], tried.rewards[ok]
            accepted[done] = True
            if bool(accepted.all()):
                break
        return x_new, new, ~accepted


def _two_loop(grads: Tensor, pairs: Sequence[tuple[Tensor, Tensor, Tensor]]) -> Tensor:
    """The L-BFGS direction ``-H g`` per task from its curvature pairs (unused pairs have ``rho = 0``).

    ``grads (b, P)``; each pair ``(s (b, P), y (b, P), rho (b,))``. The products go through one scratch
    ``(b, P)`` buffer instead of a fresh tensor each, and the initial Hessian's scale is computed from
    each task's newest used pair only: the arithmetic of the textbook form, bit for bit. (In the
    conv fits ``P`` is about 15 000 per task and this recursion was about a fifth of a fit's time.)
    """
    q = grads.clone()
    scratch = torch.empty_like(grads)
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * torch.mul(s, q, out=scratch).sum(1)
        q.sub_(torch.mul(alpha[:, None], y, out=scratch))
        alphas.append(alpha)
    gamma = torch.ones_like(grads[:, 0])
    found = torch.zeros_like(gamma, dtype=torch.bool)
    for s, y, rho in reversed(pairs):  # the newest used pair scales the initial Hessian
        use = ~found & (rho > 0)
        if not bool(use.any()):
            continue
        curvature = torch.mul(s, y, out=scratch).sum(1)
        gamma = torch.where(use, curvature / torch.mul(y, y, out=scratch).sum(1).clamp_min(1e-300), gamma)
        found |= use
        if bool(found.all()):
            break
    r = q.mul_(gamma[:, None])
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        beta = rho * torch.mul(y, r, out=scratch).sum(1)
        r.add_(torch.mul(s, (alpha - beta)[:, None], out=scratch))
    return r.neg_()
