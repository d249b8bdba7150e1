"""MAML for RL with a TRPO outer step (Finn, Abbeel and Levine 2017).

For each task ``i`` of a meta-batch:

* inner loop: ``phi_i = theta - fast_lr * grad L_in(theta; D_i)``, with ``L_in`` the REINFORCE loss
  ``-mean_t log pi_theta(a_t | o_t) A_t`` on the pre-update episodes ``D_i`` (advantages from a
  linear baseline refit on ``D_i``, GAE, normalised); ``num_steps`` such steps, fresh episodes
  sampled with the current adapted policy before each (with ``inner_objective = "lvc"`` the loss
  is ``-mean_t [pi/stop_gradient(pi)] A_t``: the same step, see :meth:`MAMLTRPO.inner_loss`);
* outer loss: the TRPO surrogate on the post-update episodes ``D'_i`` sampled with ``phi_i``:
  ``L(theta) = -mean_i mean_t [pi_{phi_i(theta)}(a|o) / pi_{phi_i(theta_old)}(a|o)] A'_t`` and
  ``KL(theta) = mean_i mean_t KL(pi_{phi_i(theta_old)} || pi_{phi_i(theta)})``.

The TRPO step solves ``(H_KL + damping I) x = grad L`` by conjugate gradient, scales ``x`` so the
quadratic KL model equals ``max_kl`` and backtracks until the surrogate improves within the trust
region. ``phi_i(theta)`` keeps the graph through the inner gradient (second order) unless
``first_order``; the Hessian-vector products are exact (double backprop: third derivatives
through the inner step) or finite differences of the KL gradient (``hvp="finite_difference"``);
see ``benchmarks/maml/README.md`` ("The meta-gradient") for the derivation.
The inner step is :func:`mandril.functional.adapt`, shared with MandRIL.

All ``N`` tasks of a meta-batch are processed at once: ``theta`` is expanded to a task-batched
dict (:func:`~mandril.maml_rl.policies.expand_params`), the inner gradient of the *sum* of the
per-task losses with respect to it is each task's own gradient, and every loss is one batched
computation over ``(N, T, B)`` tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor

from mandril import functional
from mandril.functional import NonFiniteLossError, Params
from mandril.maml_rl.advantages import discounted_returns, gae, normalize
from mandril.maml_rl.baseline import LinearFeatureBaseline
from mandril.maml_rl.policies import Policy, expand_params
from mandril.maml_rl.sampler import EpisodeBatch, MultiTaskSampler
from mandril.maml_rl.trpo import conjugate_gradient, exact_hvp, finite_difference_hvp, flatten, line_search, unflatten

__all__ = ["TaskData", "MAMLTRPO", "Rollouts"]


@dataclass
class TaskData:
    """The episodes of ``N`` tasks reduced to what the losses read: sums per distinct observation and action.

    Every loss here is a sum over steps of a function of ``(o_t, a_t)`` weighted by the step's
    advantage (or by 1), so it can be summed per distinct observation ``u`` and action ``a``
    first: ``sum_t f(o_t, a_t) A_t = sum_{u, a} f(u, a) S[u, a]`` with ``S[u, a]`` the sum of the
    advantages of the steps that took ``a`` at ``u``. With discrete observations (bandits: one;
    tabular MDPs: the states) the policy is then evaluated on a handful of rows instead of on
    every one of the ``T * B`` steps, exactly (up to the order of floating-point sums).

    Attributes:
        observations: ``(N, U, D)`` the distinct observations of each task (zero rows with zero
            count pad tasks with fewer than ``U``).
        counts: ``(N, U)`` real steps at each observation.
        advantage_sums: ``(N, U, A)`` sum of the (constant) advantages of the real steps that took ``a`` at ``u``.
        n_steps: ``(N,)`` real steps of each task.
    """

    observations: Tensor
    counts: Tensor
    advantage_sums: Tensor
    n_steps: Tensor

    @property
    def n_tasks(self) -> int:
        """``N``."""
        return int(self.counts.shape[0])

    @classmethod
    def from_steps(cls, observations: Tensor, actions: Tensor, advantages: Tensor, mask: Tensor, n_actions: int) -> "TaskData":
        """Reduce steps ``(N, T, B, D)``, ``(N, T, B)`` int64, ``(N, T, B)``, ``(N, T, B)`` to per-observation sums."""
        n, dim = observations.shape[0], observations.shape[-1]
        flat_obs = observations.reshape(n, -1, dim)
        flat_act = actions.reshape(n, -1)
        weights = (advantages * mask).reshape(n, -1).detach()
        real = mask.reshape(n, -1)
        # one sort for all tasks: rows (task, observation), grouped by task in the sorted result
        task = torch.arange(n, dtype=observations.dtype).repeat_interleave(flat_obs.shape[1])[:, None]
        rows, inverse = torch.unique(torch.cat([task, flat_obs.reshape(-1, dim)], dim=1), dim=0, return_inverse=True)
        row_task = rows[:, 0].long()
        per_task = torch.bincount(row_task, minlength=n)
        first = torch.cumsum(per_task, 0) - per_task  # (N,) where each task's rows start
        local = torch.arange(rows.shape[0]) - first[row_task]  # a row's index within its task
        width = int(per_task.max())
        table = observations.new_zeros((n, width, dim))
        table[row_task, local] = rows[:, 1:]
        index = local[inverse].reshape(n, -1)  # (N, T*B)
        counts = real.new_zeros((n, width)).scatter_add_(1, index, real)
        sums = weights.new_zeros((n, width * n_actions)).scatter_add_(1, index * n_actions + flat_act, weights)
        return cls(table, counts, sums.reshape(n, width, n_actions), real.sum(dim=1))


@dataclass
class Rollouts:
    """What one meta-batch sampled.

    Attributes:
        train: ``num_steps`` pre-update batches (the adaptation data of inner step ``k`` is ``train[k]``).
        train_data: ``num_steps`` :class:`TaskData` (all tasks) of the pre-update episodes.
        adapted: the task-batched adapted parameters (``(N, ...)``, detached) that sampled ``valid``.
        valid: the post-update batch.
        valid_data: :class:`TaskData` of the post-update episodes.
    """

    train: list[EpisodeBatch]
    train_data: list[TaskData]
    adapted: Params
    valid: EpisodeBatch
    valid_data: TaskData


class MAMLTRPO:
    """The meta-learner: holds the policy (``theta``) and performs inner adaptation and TRPO steps.

    Args:
        policy: a policy whose ``logits(obs, params)`` takes a (task-batched) parameter dict.
        fast_lr, num_steps, first_order, inner_objective: the inner loop.
        exploration_entropy: weight of the exploration policy's entropy in the outer objective.
        gamma, gae_lambda, baseline_reg, normalize_advantages: advantages.
        max_kl, cg_iters, cg_damping, ls_max_steps, ls_backtrack_ratio, hvp, fd_eps: the TRPO step.
    """

    def __init__(self, policy: Policy, *, fast_lr: float = 0.5, num_steps: int = 1, first_order: bool = False,
                 inner_objective: str = "reinforce", exploration_entropy: float = 0.0, gamma: float = 0.99, gae_lambda: float = 1.0, baseline_reg: float = 1e-5, normalize_advantages: bool = True,
                 max_kl: float = 0.01, cg_iters: int = 10, cg_damping: float = 1e-5, ls_max_steps: int = 15,
                 ls_backtrack_ratio: float = 0.8, hvp: str = "finite_difference", fd_eps: float = 1e-5) -> None:
        if hvp not in ("finite_difference", "exact"):
            raise ValueError(f"hvp must be 'finite_difference' or 'exact', got {hvp!r}")
        if not fast_lr > 0 or num_steps < 1:
            raise ValueError(f"fast_lr must be > 0 and num_steps >= 1, got fast_lr={fast_lr!r}, num_steps={num_steps!r}")
        self.policy = policy
        if inner_objective not in ("reinforce", "lvc"):
            raise ValueError(f"inner_objective must be 'reinforce' or 'lvc', got {inner_objective!r}")
        self.inner_objective = inner_objective
        if not exploration_entropy >= 0:
            raise ValueError(f"exploration_entropy must be >= 0, got {exploration_entropy!r}")
        self.exploration_entropy = float(exploration_entropy)
        self.fast_lr, self.num_steps, self.first_order = float(fast_lr), int(num_steps), bool(first_order)
        self.gamma, self.gae_lambda, self.normalize_advantages = float(gamma), float(gae_lambda), bool(normalize_advantages)
        self.baseline_reg = float(baseline_reg)
        self.max_kl, self.cg_iters, self.cg_damping = float(max_kl), int(cg_iters), float(cg_damping)
        self.ls_max_steps, self.ls_backtrack_ratio = int(ls_max_steps), float(ls_backtrack_ratio)
        self.hvp, self.fd_eps = hvp, float(fd_eps)

    @classmethod
    def from_config(cls, policy: Policy, config: Any) -> "MAMLTRPO":
        """Build from a :class:`mandril.maml_rl.config.Config`."""
        m, a, t = config.maml, config.advantage, config.trpo
        return cls(policy, fast_lr=m.fast_lr, num_steps=m.num_steps, first_order=m.first_order,
                   inner_objective=m.inner_objective, exploration_entropy=m.exploration_entropy, gamma=a.gamma,
                   gae_lambda=a.gae_lambda, baseline_reg=a.baseline_reg, normalize_advantages=a.normalize,
                   max_kl=t.max_kl, cg_iters=t.cg_iters, cg_damping=t.cg_damping, ls_max_steps=t.ls_max_steps,
                   ls_backtrack_ratio=t.ls_backtrack_ratio, hvp=t.hvp, fd_eps=t.fd_eps)

    # --- data --------------------------------------------------------------------------------
    def prepare(self, batch: EpisodeBatch) -> TaskData:
        """Per task: refit the linear baseline on its episodes, compute (normalised) GAE advantages,
        reduce to :class:`TaskData` (all tasks at once)."""
        obs, rew, mask = batch.observations, batch.rewards, batch.mask
        baseline = LinearFeatureBaseline(self.baseline_reg)
        baseline.fit(obs, discounted_returns(rew, mask, self.gamma), mask)
        adv = gae(rew, baseline.predict(obs, mask), mask, self.gamma, self.gae_lambda)
        if self.normalize_advantages:
            adv = normalize(adv, mask, dims=(-2, -1))
        return TaskData.from_steps(obs, batch.actions, adv, mask, self.policy.n_actions)

    def log_probs(self, params: Params, data: TaskData) -> Tensor:
        """``(N, U, A)`` log-probabilities at each task's distinct observations (``params`` shared or task-batched)."""
        return torch.log_softmax(self.policy.logits(data.observations, params), dim=-1)

    # --- inner loop ----------------------------------------------------------------------------
    def inner_loss(self, params: Params, data: TaskData, objective: Optional[str] = None) -> Tensor:
        """The inner objective per task, shape ``(N,)``; ``params``: shared by all tasks or task-batched.

        ``"reinforce"``: ``-sum_t log pi(a_t|o_t) A_t / n``. ``"lvc"``: ``-sum_t r_t A_t / n`` with
        ``r_t = pi(a_t|o_t) / stop_gradient(pi(a_t|o_t))``, which is 1 with the same gradient, but whose
        Hessian has the extra term ``sum_t grad log pi grad log pi^T A_t / n``: the part of the inner
        objective's curvature that comes from the exploration episodes being sampled by ``pi_theta``
        (the low-variance curvature estimator of ProMP, Rothfuss et al. 2019). Through the inner step,
        that term gives the meta-gradient credit for how ``theta`` explores; without it nothing in the
        meta-gradient keeps the exploration policy exploring. ``objective`` overrides ``inner_objective``.
        """
        log_probs = self.log_probs(params, data)
        if (objective or self.inner_objective) == "lvc":
            log_probs = torch.exp(log_probs - log_probs.detach())  # = 1, gradient d log pi, curvature d2 log pi + (d log pi)^2
        return -(log_probs * data.advantage_sums).sum(dim=(-2, -1)) / data.n_steps

    def adapt(self, params: Params, steps_data: Sequence[TaskData], *, first_order: Optional[bool] = None,
              objective: Optional[str] = None) -> Params:
        """``len(steps_data)`` inner steps of every task from ``params`` (step ``k`` uses ``steps_data[k]``).

        Args:
            params: ``theta`` (shared; it is expanded to one copy per task) or task-batched parameters.
            objective: the inner objective (default ``inner_objective``); both give the same ``phi``,
                they differ in its second derivatives.

        Returns:
            Task-batched ``phi`` ``(N, ...)``, in the graph of ``params`` (through the inner gradient
            too unless first order).
        """
        first_order = self.first_order if first_order is None else first_order
        current = dict(params)
        if not self.policy.is_task_batched(current):
            current = expand_params(current, steps_data[0].n_tasks)
        for data in steps_data:
            current, _ = functional.adapt(lambda p, d=data: self.inner_loss(p, d, objective).sum(), current, self.fast_lr, 1,
                                          first_order=first_order)
        return current

    def sample(self, sampler: MultiTaskSampler, tasks: Sequence[Any], n_episodes: int, *, seeds: Sequence[int],
               generator: torch.Generator, valid_episodes: Optional[int] = None) -> Rollouts:
        """Sample pre-update episodes, adapt (``num_steps`` times) and sample post-update episodes.

        Args:
            seeds: ``num_steps + 1`` sampler seeds (one per inner step, then the post-update batch).
            valid_episodes: post-update episodes per task (default ``n_episodes``).
        """
        if len(seeds) != self.num_steps + 1:
            raise ValueError(f"seeds must have num_steps + 1 = {self.num_steps + 1} entries, got {len(seeds)}")
        current: Params = {k: v.detach() for k, v in self.policy.params().items()}
        train, per_step = [], []
        for k in range(self.num_steps):
            batch = sampler.sample(self.policy, current, tasks, n_episodes, seed=seeds[k], generator=generator)
            data = self.prepare(batch)
            train.append(batch)
            per_step.append(data)
            with torch.enable_grad():
                start = _leaves(current) if self.policy.is_task_batched(current) else expand_params(_leaves(current), len(tasks))
                current = {n: t.detach() for n, t in self.adapt(start, [data], first_order=True).items()}
        valid = sampler.sample(self.policy, current, tasks, valid_episodes or n_episodes, seed=seeds[-1], generator=generator)
        return Rollouts(train, per_step, current, valid, self.prepare(valid))

    # --- outer loss ----------------------------------------------------------------------------
    def _old_log_probs(self, rollouts: Rollouts) -> Tensor:
        """``(N, U, A)`` log-probabilities at the post-update observations under ``phi(theta_old)`` (constants)."""
        with torch.enable_grad():
            theta = _leaves({k: v.detach() for k, v in self.policy.params().items()})
            phi = self.adapt(theta, rollouts.train_data, first_order=True)
            return self.log_probs(phi, rollouts.valid_data).detach()

    def surrogate(self, params: Params, rollouts: Rollouts, old_log_probs: Tensor, *,
                  first_order: Optional[bool] = None, need_loss: bool = True, objective: Optional[str] = None) -> tuple[Tensor, Tensor]:
        """``(L(params), KL(params))``, averaged over tasks (scalars, in ``params`` 's graph).

        ``L = -mean_i sum_t ratio_t A_t / n_i`` and ``KL = mean_i sum_t KL(pi_old(.|o_t) || pi(.|o_t)) / n_i``
        over each task's ``n_i`` post-update steps, summed per distinct observation (:class:`TaskData`).
        With ``exploration_entropy = beta > 0``, ``L`` gains ``-beta`` times the mean entropy of the
        exploration policy ``pi_params`` over the exploration steps (:meth:`exploration_entropy_of`).
        ``params`` must require grad (the inner step differentiates the inner loss with respect to them).
        ``objective`` overrides the inner objective (the values are the same; the derivatives differ).
        """
        valid, old = rollouts.valid_data, old_log_probs
        phi = self.adapt(params, rollouts.train_data, first_order=first_order, objective=objective)
        log_probs = self.log_probs(phi, valid)
        kl_at = (old.exp() * (old - log_probs)).sum(-1)  # (N, U)
        kl = ((kl_at * valid.counts).sum(-1) / valid.n_steps).mean()
        if not need_loss:
            return torch.zeros((), dtype=kl.dtype), kl
        ratio = torch.exp(log_probs - old)  # (N, U, A)
        loss = (-(ratio * valid.advantage_sums).sum(dim=(-2, -1)) / valid.n_steps).mean()
        if self.exploration_entropy > 0 and not self.policy.is_task_batched(params):
            loss = loss - self.exploration_entropy * self.exploration_entropy_of(params, rollouts.train_data[0])
        return loss, kl

    def exploration_entropy_of(self, params: Params, data: TaskData) -> Tensor:
        """Mean entropy of the exploration policy ``pi_params`` over the exploration steps of every task (a scalar)."""
        log_probs = self.log_probs(params, data)
        entropy = -(log_probs.exp() * log_probs).sum(-1)  # (N, U)
        return ((entropy * data.counts).sum(-1) / data.n_steps).mean()

    def kl_hvp(self, rollouts: Rollouts, old_log_probs: Tensor, params: Optional[Params] = None) -> Callable[[Tensor], Tensor]:
        """``v -> (H + cg_damping I) v`` for the Hessian ``H`` of ``KL`` at ``params`` (default ``theta``), exact or by finite differences.

        With the REINFORCE inner objective both give the Hessian of the KL the line search checks.
        With the LVC objective they differ (see ``benchmarks/maml/README.md``, "The meta-gradient"):
        double backprop differentiates through LVC's inner Jacobian ``J_lvc`` on both sides, giving
        ``J_lvc^T F J_lvc`` at ``theta_old`` (a metric that also counts how the adapted policies move
        through the exploration data), while finite differences can only move ``theta`` in the
        function itself, giving ``J_lvc^T F J`` (``J``: the REINFORCE Jacobian; not symmetric).
        """
        params = _leaves({k: v.detach() for k, v in (params or self.policy.params()).items()})
        if self.hvp == "exact":
            return exact_hvp(lambda p: self.surrogate(p, rollouts, old_log_probs, need_loss=False)[1], params, self.cg_damping)

        def kl_grad(p: Params) -> Tensor:
            with torch.enable_grad():
                leaves = _leaves({k: v.detach() for k, v in p.items()})
                kl = self.surrogate(leaves, rollouts, old_log_probs, need_loss=False)[1]
                return flatten(torch.autograd.grad(kl, list(leaves.values())))

        return finite_difference_hvp(kl_grad, params, self.cg_damping, self.fd_eps)

    # --- the TRPO step -------------------------------------------------------------------------
    def step(self, rollouts: Rollouts) -> dict:
        """One TRPO step on ``theta`` from a meta-batch of rollouts; updates the policy in place.

        Returns:
            Diagnostics: ``loss_before``, ``loss_after``, ``kl``, ``step_fraction``, ``accepted``,
            ``cg_residual``, ``grad_norm``, ``inner_loss`` (mean pre-update REINFORCE loss).

        Raises:
            NonFiniteLossError: if the surrogate loss or its gradient is not finite (a rejected step
                is not an error: ``accepted`` is False and ``theta`` is unchanged).
        """
        old = self._old_log_probs(rollouts)
        theta = {k: v.detach() for k, v in self.policy.params().items()}
        leaves = _leaves(dict(theta))
        loss, _ = self.surrogate(leaves, rollouts, old)
        grad = flatten(torch.autograd.grad(loss, list(leaves.values())))
        loss_before = float(loss.detach())
        if not (math.isfinite(loss_before) and bool(torch.isfinite(grad).all())):
            raise NonFiniteLossError(f"the TRPO surrogate loss ({loss_before}) or its gradient is not finite")
        with torch.no_grad():
            inner = float(self.inner_loss(theta, rollouts.train_data[0]).mean())
        hvp = self.kl_hvp(rollouts, old, theta)
        direction, residual = conjugate_gradient(hvp, grad, self.cg_iters)
        shs = 0.5 * float(torch.dot(direction, hvp(direction)))
        info = {"loss_before": loss_before, "inner_loss": inner, "grad_norm": float(grad.norm()), "cg_residual": residual}
        if not (math.isfinite(shs) and shs > 0):
            info.update(loss_after=loss_before, kl=0.0, step_fraction=0.0, accepted=False)
            return info
        full_step = direction / math.sqrt(shs / self.max_kl)
        flat_theta = flatten(theta)

        def evaluate(fraction: float) -> tuple[float, float]:
            candidate = _leaves(unflatten(flat_theta - fraction * full_step, theta))
            with torch.enable_grad():
                new_loss, new_kl = self.surrogate(candidate, rollouts, old, first_order=True)
            return float(new_loss.detach()), float(new_kl.detach())

        result = line_search(evaluate, loss_before, self.max_kl, self.ls_max_steps, self.ls_backtrack_ratio)
        if result.accepted:
            new = unflatten(flat_theta - result.step_fraction * full_step, theta)
            with torch.no_grad():
                for name, param in self.policy.named_parameters():
                    param.copy_(new[name])
        info.update(loss_after=result.loss, kl=result.kl, step_fraction=result.step_fraction, accepted=result.accepted)
        return info


def _leaves(params: Params) -> Params:
    """Detached copies of ``params`` that require grad (fresh leaves of a new graph)."""
    return {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
