"""Behavioural cloning through ``imitation.algorithms.bc.BC``.

An SB3 ``ActorCriticPolicy`` (an MLP on the one-hot state, plus the time feature) is fitted by
imitation's BC (negative log-likelihood of the demos' actions, an entropy bonus, optional L2) with
Adam for a fixed number of minibatch steps, then read into a time-expanded ``(H, S, A)`` policy
table, which the harness scores as it is. BC needs no environment and no rollouts.

Determinism: imitation's data loader shuffles with the global torch generator and the policy is
initialised from it; a fit seeds it from its ``seed`` and restores it afterwards
(:func:`~.common.seeded_global_rngs`), so two fits with the same seed give identical tables.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

from mandril.core.config import check_ints, check_numbers
from mandril.methods.base import FitProblem, Method, MethodOutput
from mandril.methods.imitation.adapters import TIME_FEATURES
from mandril.methods.imitation.adversarial import _hidden

__all__ = ["BCConfig", "BC"]

#: A BC fit whose demo NLL per step ends above this many times a uniform policy's (``log A``), plus 1, diverged.
_DIVERGED_NLL_FACTOR = 10.0


@dataclass(frozen=True)
class BCConfig:
    """Settings of behavioural cloning.

    Defaults chosen on 3 train tasks of 8x8 GridWorld at 1, 4 and 16 demos (the package's
    ``sweep`` module; normalized EVD at n = 1 / 4 / 16): 500 steps of 32 gave 0.74 / 0.52 / 0.41,
    1000 of 64 0.76 / 0.47 / 0.26, 2000 of 32 0.78 / 0.51 / 0.26, wider layers (64, 64) at
    ``lr = 3e-3`` 0.82 / 0.51 / 0.21. Time feature (measured at 500 steps of 32): ``"onehot"`` gave
    0.67 / 0.45 / 0.35 on GridWorld but 0.79 / 0.53 / 0.44 on TabularMDP-v0 (``"none"``: 0.61 /
    0.48 / 0.45), and a worse held-out demo NLL on both (it overfits: 4.4 against 2.3 nats per step
    at one GridWorld demo); ``"fraction"`` changed little. The default is ``"none"``: a stationary
    policy.

    Issue 17 made a fit about a tenth as costly at equal quality: 250 steps of (up to) 256
    transitions at ``lr = 3e-3`` instead of 1000 of 64 at ``1e-3`` (all the demos in one batch up to
    16 GridWorld demos), and demo batches drawn by :class:`~.common.ExpertBatches` instead of
    imitation's ``DataLoader``. On validation tasks (train split from 1,000,000 on) the normalized
    EVD moved by at most 0.015 (GridWorld, TabularMDP-Linear, TabularMDP-v0 at n = 1, 4, 16).
    The time feature there, against ``"none"`` (4 tasks per family): ``"onehot"`` is worse with few
    demos (n = 1: +0.04 GridWorld, +0.07 TabularMDP-Linear, +0.12 TabularMDP-v0) and better with
    16 (-0.04, -0.07, -0.02): a time-indexed policy needs demos at every step. ``"fraction"`` (one
    column) was as good or better at every n on GridWorld and TabularMDP-Linear (-0.04 at 16) and
    no better on TabularMDP-v0. The default stays ``"none"``; the quick tuning sweep chooses it per
    family and per number of demos.

    Attributes:
        n_batches: Adam steps on minibatches of the demos (a budget independent of the number of
            demos; imitation's ``n_batches``).
        batch_size: demo transitions per step; clipped to the number of demo transitions ``n * H``
            when there are fewer (``info`` records the value used).
        lr: Adam learning rate.
        ent_weight: weight of the entropy bonus.
        l2_weight: weight of the L2 penalty on the policy's parameters.
        hidden: hidden layer widths of the policy MLP.
        time_feature: what the observations add to the one-hot state: ``"none"`` (a stationary
            policy), ``"onehot"`` of the step ``t`` or ``"fraction"`` ``t / H``.
    """

    n_batches: int = 250
    batch_size: int = 256
    lr: float = 3e-3
    ent_weight: float = 1e-3
    l2_weight: float = 0.0
    hidden: tuple[int, ...] = (32, 32)
    time_feature: str = "none"

    def __post_init__(self) -> None:
        check_ints(self, n_batches=1, batch_size=1)
        check_numbers(self, positive=("lr",), non_negative=("ent_weight", "l2_weight"))
        _hidden("hidden", self.hidden)
        if self.time_feature not in TIME_FEATURES:
            raise ValueError(f"time_feature must be one of {list(TIME_FEATURES)}, got {self.time_feature!r}")


class BC(Method):
    """Behavioural cloning through imitation: a policy table per task."""

    name: ClassVar[str] = "bc"
    kind: ClassVar[str] = "imitation"
    Config: ClassVar[type] = BCConfig
    output: ClassVar[str] = "policy"

    def _fit_one(self, problem: FitProblem) -> MethodOutput:
        import numpy as np
        import torch
        from gymnasium import spaces
        from imitation.algorithms.bc import BC as ImitationBC
        from stable_baselines3.common.policies import ActorCriticPolicy

        from mandril.methods.imitation.adapters import Observations, demos_to_trajectories, policy_table
        from mandril.methods.imitation.common import ExpertBatches, QuietLogger, check_finite, derive_seed, seeded_global_rngs

        c = self.config
        model = problem.model
        observations = Observations(model.state_dim, model.horizon, c.time_feature)
        batch_size = min(c.batch_size, problem.states.shape[0] * model.horizon)
        with seeded_global_rngs(derive_seed(problem.seed, 0)):
            action_space = spaces.Discrete(model.action_dim)
            policy = ActorCriticPolicy(observations.space(), action_space, lr_schedule=lambda _: c.lr, net_arch=list(c.hidden))
            trainer = ImitationBC(
                observation_space=observations.space(),
                action_space=action_space,
                rng=np.random.default_rng(derive_seed(problem.seed, 1)),
                policy=policy,
                demonstrations=ExpertBatches(demos_to_trajectories(problem.states, problem.actions, observations), batch_size, derive_seed(problem.seed, 2)),
                batch_size=batch_size,
                optimizer_kwargs={"lr": c.lr},
                ent_weight=c.ent_weight,
                l2_weight=c.l2_weight,
                device="cpu",
                custom_logger=QuietLogger(),
            )
            with warnings.catch_warnings():  # imitation's BC logger calls float() on a tensor that requires grad
                warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar", category=UserWarning)
                trainer.train(n_batches=c.n_batches, progress_bar=False)
            if not all(bool(torch.isfinite(p).all()) for p in trainer.policy.parameters()):
                check_finite(math.nan, method=self.name, label=problem.label, what="a policy parameter", rates=f"lr={c.lr:g}")
            table = policy_table(trainer.policy, observations, model.action_dim)
        steps = np.arange(model.horizon)
        nll = float(-np.log(np.maximum(table[steps[None, :], problem.states[:, :-1], problem.actions], 1e-300)).mean())
        # a fit that ends far worse on its own demos than acting uniformly (log A per step) has diverged
        check_finite(nll, method=self.name, label=problem.label, what="the demos' negative log-likelihood per step", rates=f"lr={c.lr:g}", limit=_DIVERGED_NLL_FACTOR * math.log(model.action_dim) + 1.0)
        return MethodOutput(policy=table, info={"n_batches": c.n_batches, "batch_size": batch_size, "train_nll": nll})
