"""MAML for RL with a TRPO outer step (Finn, Abbeel and Levine 2017).

For each task ``i`` of a meta-batch:

* inner loop: ``phi_i = theta - fast_lr * grad L_in(theta; D_i)``, with ``L_in`` the REINFORCE loss
  ``-mean_t log pi_theta(a_t | o_t) A_t`` on the pre-update episodes ``D_i`` (advantages from a
  linear baseline refit on ``D_i``, GAE, normalised); ``num_steps`` such steps, fresh episodes
  sampled with the current adapted policy before each;
* outer loss: the TRPO surrogate on the post-update episodes ``D'_i`` sampled with ``phi_i``:
  ``L(theta) = -mean_i mean_t [pi_{phi_i(theta)}(a|o) / pi_{phi_i(theta_old)}(a|o)] A'_t`` and
  ``KL(theta) = mean_i mean_t KL(pi_{phi_i(theta_old)} || pi_{phi_i(theta)})``.

The TRPO step solves ``(H_KL + damping I) x = grad L`` by conjugate gradient, scales ``x`` so the
quadratic KL model equals ``max_kl`` and backtracks until the surrogate improves within the trust
region. ``phi_i(theta)`` keeps the graph through the inner gradient (second order) unless
``first_order``; the Hessian-vector products are exact (double backprop: third derivatives
through the inner step) or finite differences of the KL gradient (``hvp="finite_difference"``).
The inner step is :func:`mandril.functional.gradient_step`, shared with MandRIL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from mandril.functional import Params, gradient_step
from mandril.maml_rl.advantages import discounted_returns, gae, normalize
from mandril.maml_rl.baseline import LinearFeatureBaseline
from mandril.maml_rl.policies import Policy
from mandril.maml_rl.sampler import EpisodeBatch, MultiTaskSampler
from mandril.maml_rl.trpo import conjugate_gradient, exact_hvp, finite_difference_hvp, flatten, line_search, unflatten

__all__ = ["TaskData", "MAMLTRPO", "Rollouts"]


@dataclass
class TaskData:
    """One task's episodes, ready for a loss.

    Attributes:
        observations: ``(T, B, D)``.
        actions: ``(T, B)`` int64.
        advantages: ``(T, B)`` (constants: no graph).
        mask: ``(T, B)``.
    """

    observations: Tensor
    actions: Tensor
    advantages: Tensor
    mask: Tensor


@dataclass
class Rollouts:
    """What one meta-batch sampled.

    Attributes:
        train: ``num_steps`` pre-update batches (the adaptation data of inner step ``k`` is ``train[k]``).
        train_data: ``[task][step]`` :class:`TaskData` of the pre-update episodes.
        adapted: per task, the adapted parameters (detached) that sampled ``valid``.
        valid: the post-update batch.
        valid_data: per task :class:`TaskData` of the post-update episodes.
    """

    train: list[EpisodeBatch]
    train_data: list[list[TaskData]]
    adapted: list[Params]
    valid: EpisodeBatch
    valid_data: list[TaskData]


class MAMLTRPO:
    """The meta-learner: holds the policy (``theta``) and performs inner adaptation and TRPO steps.

    Args:
        policy: a policy whose ``logits(obs, params)`` takes a parameter dict.
        fast_lr, num_steps, first_order: the inner loop.
        gamma, gae_lambda, baseline_reg, normalize_advantages: advantages.
        max_kl, cg_iters, cg_damping, ls_max_steps, ls_backtrack_ratio, hvp, fd_eps: the TRPO step.
    """

    def __init__(self, policy: Policy, *, fast_lr: float = 0.5, num_steps: int = 1, first_order: bool = False,
                 gamma: float = 0.99, gae_lambda: float = 1.0, baseline_reg: float = 1e-5, normalize_advantages: bool = True,
                 max_kl: float = 0.01, cg_iters: int = 10, cg_damping: float = 1e-5, ls_max_steps: int = 15,
                 ls_backtrack_ratio: float = 0.8, hvp: str = "finite_difference", fd_eps: float = 1e-5) -> None:
        if hvp not in ("finite_difference", "exact"):
            raise ValueError(f"hvp must be 'finite_difference' or 'exact', got {hvp!r}")
        if not fast_lr > 0 or num_steps < 1:
            raise ValueError(f"fast_lr must be > 0 and num_steps >= 1, got fast_lr={fast_lr!r}, num_steps={num_steps!r}")
        self.policy = policy
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
        return cls(policy, fast_lr=m.fast_lr, num_steps=m.num_steps, first_order=m.first_order, gamma=a.gamma,
                   gae_lambda=a.gae_lambda, baseline_reg=a.baseline_reg, normalize_advantages=a.normalize,
                   max_kl=t.max_kl, cg_iters=t.cg_iters, cg_damping=t.cg_damping, ls_max_steps=t.ls_max_steps,
                   ls_backtrack_ratio=t.ls_backtrack_ratio, hvp=t.hvp, fd_eps=t.fd_eps)

    # --- data --------------------------------------------------------------------------------
    def prepare(self, batch: EpisodeBatch) -> list[TaskData]:
        """Per task: refit the linear baseline on its episodes and compute (normalised) GAE advantages."""
        out = []
        for i in range(batch.n_tasks):
            obs, rew, mask = batch.observations[i], batch.rewards[i], batch.mask[i]
            baseline = LinearFeatureBaseline(self.baseline_reg)
            baseline.fit(obs, discounted_returns(rew, mask, self.gamma), mask)
            adv = gae(rew, baseline.predict(obs, mask), mask, self.gamma, self.gae_lambda)
            if self.normalize_advantages:
                adv = normalize(adv, mask)
            out.append(TaskData(obs, batch.actions[i], adv.detach(), mask))
        return out

    # --- inner loop ----------------------------------------------------------------------------
    def inner_loss(self, params: Params, data: TaskData) -> Tensor:
        """REINFORCE: ``-sum(mask * log pi(a|o) * A) / sum(mask)`` (a scalar)."""
        log_probs = torch.log_softmax(self.policy.logits(data.observations, params), dim=-1)
        taken = log_probs.gather(-1, data.actions.unsqueeze(-1)).squeeze(-1)
        return -(taken * data.advantages * data.mask).sum() / data.mask.sum()

    def adapt(self, params: Params, steps_data: Sequence[TaskData], *, first_order: Optional[bool] = None) -> Params:
        """``len(steps_data)`` inner steps from ``params`` (step ``k`` uses ``steps_data[k]``)."""
        first_order = self.first_order if first_order is None else first_order
        current = dict(params)
        for data in steps_data:
            current = gradient_step(current, self.inner_loss(current, data), self.fast_lr, first_order=first_order)
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
        theta = {k: v.detach() for k, v in self.policy.params().items()}
        current: Any = theta
        train, per_step = [], []
        adapted = [dict(theta) for _ in tasks]
        for k in range(self.num_steps):
            batch = sampler.sample(self.policy, current, tasks, n_episodes, seed=seeds[k], generator=generator)
            data = self.prepare(batch)
            train.append(batch)
            per_step.append(data)
            with torch.enable_grad():
                adapted = [
                    {n: t.detach() for n, t in self.adapt(_leaves(adapted[i]), [data[i]], first_order=True).items()}
                    for i in range(len(tasks))
                ]
            current = adapted
        valid = sampler.sample(self.policy, adapted, tasks, valid_episodes or n_episodes, seed=seeds[-1], generator=generator)
        train_data = [[per_step[k][i] for k in range(self.num_steps)] for i in range(len(tasks))]
        return Rollouts(train, train_data, adapted, valid, self.prepare(valid))

    # --- outer loss ----------------------------------------------------------------------------
    def _old_log_probs(self, rollouts: Rollouts) -> list[Tensor]:
        with torch.enable_grad():
            theta = _leaves({k: v.detach() for k, v in self.policy.params().items()})
            out = []
            for data, valid in zip(rollouts.train_data, rollouts.valid_data):
                phi = self.adapt(theta, data, first_order=True)
                out.append(torch.log_softmax(self.policy.logits(valid.observations, phi), dim=-1).detach())
        return out

    def surrogate(self, params: Params, rollouts: Rollouts, old_log_probs: Sequence[Tensor], *,
                  first_order: Optional[bool] = None, need_loss: bool = True) -> tuple[Tensor, Tensor]:
        """``(L(params), KL(params))``, averaged over tasks (scalars, in ``params`` 's graph).

        ``params`` must require grad (the inner step differentiates the inner loss with respect to them).
        """
        losses, kls = [], []
        for data, valid, old in zip(rollouts.train_data, rollouts.valid_data, old_log_probs):
            phi = self.adapt(params, data, first_order=first_order)
            log_probs = torch.log_softmax(self.policy.logits(valid.observations, phi), dim=-1)
            denom = valid.mask.sum()
            kl = (old.exp() * (old - log_probs)).sum(-1)
            kls.append((kl * valid.mask).sum() / denom)
            if need_loss:
                taken = log_probs.gather(-1, valid.actions.unsqueeze(-1)).squeeze(-1)
                old_taken = old.gather(-1, valid.actions.unsqueeze(-1)).squeeze(-1)
                ratio = torch.exp(taken - old_taken)
                losses.append(-(ratio * valid.advantages * valid.mask).sum() / denom)
        loss = torch.stack(losses).mean() if need_loss else torch.zeros(())
        return loss, torch.stack(kls).mean()

    def kl_hvp(self, rollouts: Rollouts, old_log_probs: Sequence[Tensor],
               params: Optional[Params] = None) -> Callable[[Tensor], Tensor]:
        """``v -> (H + cg_damping I) v`` for the Hessian of ``KL`` at ``params`` (default ``theta``), exact or by finite differences."""
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
        """
        old = self._old_log_probs(rollouts)
        theta = {k: v.detach() for k, v in self.policy.params().items()}
        leaves = _leaves(dict(theta))
        loss, _ = self.surrogate(leaves, rollouts, old)
        grad = flatten(torch.autograd.grad(loss, list(leaves.values())))
        loss_before = float(loss.detach())
        with torch.enable_grad():
            inner = float(np.mean([float(self.inner_loss(leaves, d[0]).detach()) for d in rollouts.train_data]))
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
