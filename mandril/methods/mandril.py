"""MandRIL behind the one interface: meta-train on the training tasks, then adapt by a few MaxEnt
gradient steps on a new task's demos (Xu et al., ICML 2019).

The number of adaptation steps (``adapt_steps``) and their rate (``adapt_lr_scale`` times the inner
rate) only change how a new task is fitted, so a suite may choose them per number of demos (its
``by_n`` tables, as for every method's fit settings: see :mod:`mandril.bench.suite`).

More demos must never make the adapted reward worse. With the paper's settings (one fixed inner rate,
``K = 2`` demos per meta-training task) they did: the MaxEnt gradient of ``n`` demos is the gap between the
demos' mean visitation and the model's, an average whose spikes shrink as ``n`` grows, so a step budget that
suits one or two demos barely moves the reward with 16, and the prior's own preferences win (on the
informative bandit the unadapted prior picks a worse-than-uniform arm: normalized EVD 1.29-1.34 after one step
at every ``n``). The benchmark's suites therefore meta-learn per-parameter inner rates (Meta-SGD,
``learn_inner_lr``) on a ``K`` drawn from 1 to 32 per meta-iteration (``n_train_demos_choices``), so the
initialisation and its rates are trained for every ``n`` they are scored at.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import ClassVar, Sequence, Union

import numpy as np

from mandril.core.config import check_ints, check_numbers
from mandril.data.inputs import INPUT_KINDS
from mandril.functional import NonFiniteLossError
from mandril.methods.base import DivergenceError, FitError, FitProblem, MethodOutput
from mandril.methods.maxent import group_by_shape, torch_dtype, train_batch
from mandril.methods.meta_trainer import MandRILConfig
from mandril.methods.trained import TrainedRewardMethod
from mandril.rewards.spec import RewardModelSpec

__all__ = ["MandRILMethodConfig", "MandRILMethod"]


@dataclass(frozen=True)
class MandRILMethodConfig(MandRILConfig):
    """MandRIL's settings (the trainer's fields are those of :class:`MandRILConfig`).

    Attributes:
        reward_model: the reward model meta-learned (default: the paper's fully convolutional net).
        input_kind: what it reads of a task.
        iterations: meta-iterations.
        checkpoint_every: write the preparation checkpoint every this many iterations (when the
            harness gives a checkpoint path).
        adapt_lr_scale: adaptation steps take ``adapt_lr_scale`` times the inner rate (Meta-SGD's learned
            rates included).
    """

    reward_model: RewardModelSpec = field(default_factory=lambda: RewardModelSpec("conv"))
    input_kind: str = "map"
    iterations: int = 1500
    checkpoint_every: int = 100
    adapt_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.input_kind not in INPUT_KINDS or self.input_kind not in self.reward_model.input_kinds:
            raise ValueError(f"input_kind must be one of {list(self.reward_model.input_kinds)} for a {self.reward_model.kind} reward model, got {self.input_kind!r}")
        check_ints(self, iterations=0, checkpoint_every=1)
        check_numbers(self, positive=("adapt_lr_scale",))


class MandRILMethod(TrainedRewardMethod):
    """MandRIL: a meta-learned reward prior, adapted to each new task by gradient steps."""

    family_reward_model: ClassVar[bool] = True
    name: ClassVar[str] = "mandril"
    kind: ClassVar[str] = "meta-irl"
    Config: ClassVar[type] = MandRILMethodConfig
    batched: ClassVar[bool] = True
    progress_label: ClassVar[str] = "meta-training"
    fit_only_settings: ClassVar[tuple[str, ...]] = ("adapt_steps", "adapt_lr_scale", "checkpoint_every")

    def trainer_config(self) -> MandRILConfig:
        return MandRILConfig(**{f.name: getattr(self.config, f.name) for f in fields(MandRILConfig)})

    def iterations(self) -> int:
        return self.config.iterations

    def fit_batch(self, problems: Sequence[FitProblem]) -> list[Union[MethodOutput, FitError]]:
        """Adapt to every task; tasks of the same size and demo count in one batched call."""
        problems = self._check_ready(problems)
        results: list[Union[MethodOutput, FitError]] = [None] * len(problems)  # type: ignore[list-item]
        for group in group_by_shape(problems):
            by_n: dict[int, list[int]] = {}
            for i in group:
                by_n.setdefault(len(problems[i].states), []).append(i)
            for n, members in by_n.items():
                for i, result in zip(members, self._adapt_group([problems[i] for i in members], n)):
                    results[i] = result
        return results

    def _adapt_group(self, problems: Sequence[FitProblem], n_demos: int) -> list[Union[MethodOutput, FitError]]:
        trainer = self.require_trainer()
        steps, scale = self.config.adapt_steps, float(self.config.adapt_lr_scale)
        start = time.perf_counter()
        batch = train_batch(problems, torch_dtype(self.config.dtype), self.device, self.architecture["n_actions"] is not None)
        try:
            rewards = trainer.adapt_batch(batch, steps, scale)
        except NonFiniteLossError:
            if len(problems) > 1:  # find which tasks diverged; the others are unaffected
                return [result for p in problems for result in self._adapt_group([p], n_demos)]
            rewards = None
        seconds = (time.perf_counter() - start) / len(problems)
        out: list[Union[MethodOutput, FitError]] = []
        for b, problem in enumerate(problems):
            reward = None if rewards is None else rewards[b]
            if reward is None or not np.all(np.isfinite(reward)) or np.abs(reward).max() > self.config.max_abs_reward:
                out.append(DivergenceError(f"mandril: adapting to {problem.label} diverged ({steps} steps at {scale:g} x inner_lr {self.config.inner_lr:g}): lower the adaptation rate"))
            else:
                out.append(MethodOutput(reward=reward, info={"steps": steps, "lr_scale": scale, "seconds": seconds}))
        return out
