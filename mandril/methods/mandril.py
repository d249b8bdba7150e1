"""MandRIL behind the one interface: meta-train on the training tasks, then adapt by a few MaxEnt
gradient steps on a new task's demos (Xu et al., ICML 2019).

The number of adaptation steps and their rate may depend on how many demos the new task has
(``adapt_by_n``): one large step is best with one or two demos, more smaller steps with many
(measured on validation tasks by the tuning sweep).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import ClassVar, Sequence, Union

import numpy as np

from mandril.core.config import check_ints
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
        adapt_by_n: adaptation settings by number of demos: ``{"8": {"steps": 20, "lr_scale": 0.3}}``
            means that from 8 demos on, adaptation takes 20 steps at 0.3 times the inner rate; the
            entry with the largest key at most ``n`` applies, and below every key ``adapt_steps`` at
            the inner rate.
    """

    reward_model: RewardModelSpec = field(default_factory=lambda: RewardModelSpec("conv"))
    input_kind: str = "map"
    iterations: int = 1500
    checkpoint_every: int = 100
    adapt_by_n: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.input_kind not in INPUT_KINDS or self.input_kind not in self.reward_model.input_kinds:
            raise ValueError(f"input_kind must be one of {list(self.reward_model.input_kinds)} for a {self.reward_model.kind} reward model, got {self.input_kind!r}")
        check_ints(self, iterations=0, checkpoint_every=1)
        for key, entry in self.adapt_by_n.items():
            if not str(key).isdigit() or int(key) < 1:
                raise ValueError(f"adapt_by_n keys must be numbers of demos >= 1 (as strings), got {key!r}")
            if not isinstance(entry, dict) or not set(entry) <= {"steps", "lr_scale"} or not entry:
                raise ValueError(f"adapt_by_n[{key!r}] must be a table with 'steps' and/or 'lr_scale', got {entry!r}")
            steps, scale = entry.get("steps", 1), entry.get("lr_scale", 1.0)
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
                raise ValueError(f"adapt_by_n[{key!r}]['steps'] must be an int >= 0, got {steps!r}")
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < 1e6:
                raise ValueError(f"adapt_by_n[{key!r}]['lr_scale'] must be a number > 0, got {scale!r}")

    def adaptation(self, n_demos: int) -> tuple[int, float]:
        """``(steps, lr_scale)`` for a new task with ``n_demos`` demos."""
        steps, scale = self.adapt_steps, 1.0
        keys = sorted(int(k) for k in self.adapt_by_n if int(k) <= n_demos)
        if keys:
            entry = self.adapt_by_n[str(keys[-1])]
            steps, scale = int(entry.get("steps", self.adapt_steps)), float(entry.get("lr_scale", 1.0))
        return steps, scale


class MandRILMethod(TrainedRewardMethod):
    """MandRIL: a meta-learned reward prior, adapted to each new task by gradient steps."""

    family_reward_model: ClassVar[bool] = True
    name: ClassVar[str] = "mandril"
    kind: ClassVar[str] = "meta-irl"
    Config: ClassVar[type] = MandRILMethodConfig
    batched: ClassVar[bool] = True
    progress_label: ClassVar[str] = "meta-training"
    fit_only_settings: ClassVar[tuple[str, ...]] = ("adapt_steps", "adapt_by_n", "checkpoint_every")

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
        steps, scale = self.config.adaptation(n_demos)
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
