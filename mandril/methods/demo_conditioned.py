"""The MandRIL paper's demo-conditioned baseline: a network that reads the task and its demos and
outputs the reward, trained on the training tasks, with no gradient step at test time.

Its input is the task's input with the demos appended as extra per-state channels (features: extra
columns; a map: extra planes; an RGB map: extra planes at the pixel resolution): the demos' state
(or state-action) visitation divided by ``H`` (a distribution over where they spent their time), the
empirical distribution of their first states, and a constant ``log(1 + n)`` (how many demos there
are). Training (the MandRIL loop with no inner step) draws ``K`` demos of a training task (``K``
drawn from ``n_demos_choices`` each iteration) as the input and scores the predicted reward by the
MaxEnt likelihood of ``K'`` other demos of the same task.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from mandril.core.config import check_ints, check_numbers
from mandril.data.batch import MetaBatch, check_likelihood
from mandril.data.inputs import INPUT_KINDS
from mandril.data.sources import DatasetSource
from mandril.methods.base import DivergenceError, FitError, FitProblem, MethodOutput
from mandril.methods.maxent import group_by_shape, torch_dtype, train_batch
from mandril.methods.meta_trainer import MandRILConfig
from mandril.methods.trained import TrainedRewardMethod
from mandril.rewards.spec import RewardModelSpec

__all__ = ["DemoConditionedConfig", "DemoConditioned", "DemoConditionedSource", "append_demo_channels", "demo_channel_count"]


def demo_channel_count(state_action: bool, n_actions: int) -> int:
    """How many per-state channels the demos add: visitation (1, or ``A`` for state-action), start, ``log(1 + n)``."""
    return (n_actions if state_action else 1) + 2


def append_demo_channels(inputs: Tensor, visitation: Tensor, start: Tensor, n_demos: Sequence[int], horizon: int) -> Tensor:
    """The task inputs with the demos appended (see the module docstring).

    Args:
        inputs: ``(B, S, F)`` features, ``(B, C, N, N)`` a map or ``(B, C, N p, N p)`` an image.
        visitation: ``(B, S)`` or ``(B, S, A)`` demo visitation (sums to ``H`` per task).
        start: ``(B, S)`` the demos' first-state distribution.
        n_demos: ``B`` demo counts.
        horizon: ``H``.

    Returns:
        ``(B, S, F + c)``, ``(B, C + c, N, N)`` or ``(B, C + c, N p, N p)`` with ``c`` from :func:`demo_channel_count`.
    """
    n_batch, n_states = start.shape
    per_state = visitation.reshape(n_batch, n_states, -1) / horizon
    count = torch.as_tensor([math.log1p(n) for n in n_demos], dtype=inputs.dtype, device=inputs.device).view(n_batch, 1, 1).expand(n_batch, n_states, 1)
    channels = torch.cat([per_state.to(inputs.dtype), start.to(inputs.dtype).unsqueeze(-1), count], dim=-1)  # (B, S, c)
    if inputs.ndim == 3:
        return torch.cat([inputs, channels], dim=-1)
    side = math.isqrt(n_states)
    planes = channels.transpose(1, 2).reshape(n_batch, -1, side, side)
    pixels = inputs.shape[-1] // side
    if pixels > 1:
        planes = planes.repeat_interleave(pixels, dim=-2).repeat_interleave(pixels, dim=-1)
    return torch.cat([inputs, planes], dim=1)


class DemoConditionedSource:
    """Draws training batches whose inputs carry ``K`` train demos (``K`` from ``choices`` per draw)."""

    def __init__(self, source: DatasetSource, choices: Sequence[int]) -> None:
        self.source, self.choices = source, tuple(choices)

    def sample(self, batch_size: int, n_train: int, n_test: int, rng: np.random.Generator) -> MetaBatch:
        """A batch of the wrapped source whose inputs carry ``K`` train demos, ``K`` drawn from ``choices``
        (``n_train`` is ignored: ``K`` replaces it)."""
        k = int(self.choices[int(rng.integers(len(self.choices)))])
        batch = self.source.sample(batch_size, k, n_test, rng)
        inputs = append_demo_channels(batch.inputs, batch.train_visitation, batch.train_start, [k] * batch_size, batch.tasks.horizon)
        return replace(batch, inputs=inputs)


@dataclass(frozen=True)
class DemoConditionedConfig:
    """Settings of the demo-conditioned baseline.

    Attributes:
        reward_model, input_kind: the network (it reads the task input plus the demo channels).
        iterations: training steps (Adam).
        meta_lr: Adam's rate.
        meta_batch_size: tasks per step.
        n_demos_choices: the numbers of input demos ``K`` drawn from per step; a suite refuses to score it
            at an ``n`` not among them (default: the benchmark's 1 to 32).
        n_test_demos: ``K'``, demos scoring the predicted reward per task.
        likelihood, temperature, dtype: as for every MaxEnt-family method.
        max_abs_reward: rewards beyond this magnitude mean training diverged.
        seed: seeds the initialisation and the draws.
        checkpoint_every: training checkpoint period (when the harness gives a path).
    """

    reward_model: RewardModelSpec = field(default_factory=lambda: RewardModelSpec("conv"))
    input_kind: str = "map"
    iterations: int = 1500
    meta_lr: float = 3e-3
    meta_batch_size: int = 16
    n_demos_choices: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    n_test_demos: int = 10
    likelihood: str = "start"
    temperature: float = 1.0
    max_abs_reward: float = 1e4
    dtype: str = "float64"
    seed: int = 0
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS or self.input_kind not in self.reward_model.input_kinds:
            raise ValueError(f"input_kind must be one of {list(self.reward_model.input_kinds)} for a {self.reward_model.kind} reward model, got {self.input_kind!r}")
        if self.reward_model.kind == "tabular":
            raise ValueError("a demo-conditioned reward must read its inputs: reward_model kind 'tabular' cannot")
        check_likelihood(self.likelihood)
        torch_dtype(self.dtype)
        if not self.n_demos_choices or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.n_demos_choices):
            raise ValueError(f"n_demos_choices must be a non-empty list of ints >= 1, got {self.n_demos_choices!r}")
        check_ints(self, iterations=0, meta_batch_size=1, n_test_demos=1, seed=0, checkpoint_every=1)
        check_numbers(self, positive=("meta_lr", "temperature", "max_abs_reward"))


class DemoConditioned(TrainedRewardMethod):
    """A network from (task, demos) to reward, trained on the training tasks."""

    family_reward_model: ClassVar[bool] = True
    name: ClassVar[str] = "demo_conditioned"
    kind: ClassVar[str] = "meta-irl"
    Config: ClassVar[type] = DemoConditionedConfig
    batched: ClassVar[bool] = True
    progress_label: ClassVar[str] = "training"
    fit_only_settings: ClassVar[tuple[str, ...]] = ("checkpoint_every",)

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._state_action = False
        self._n_actions = 1

    def trainer_config(self) -> MandRILConfig:
        c = self.config
        return MandRILConfig(
            inner_steps=0, meta_batch_size=c.meta_batch_size, n_train_demos=max(c.n_demos_choices), n_test_demos=c.n_test_demos, meta_lr=c.meta_lr,
            temperature=c.temperature, likelihood=c.likelihood, max_abs_reward=c.max_abs_reward, dtype=c.dtype, seed=c.seed,
        )

    def iterations(self) -> int:
        return self.config.iterations

    def check_training(self, pool_demos: int, scored_n: Sequence[int]) -> None:
        """The network is trained on the demo counts it is scored at: every scored ``n`` must be one of
        ``n_demos_choices`` (it never sees an ``n`` outside its training), and the pool must hold the largest
        choice plus ``n_test_demos`` demos per task."""
        missing = sorted(set(scored_n) - set(self.config.n_demos_choices))
        if missing:
            raise ValueError(f"demo_conditioned is scored with n = {missing} demos but trained only on n_demos_choices = "
                             f"{list(self.config.n_demos_choices)}: add them to n_demos_choices")
        super().check_training(pool_demos, scored_n)

    def _prepare(self, data: Any, *, checkpoint: Any, log_dir: Any, progress: bool, checkpoint_metadata: Any = None) -> None:
        from mandril.methods.trained import training_source

        source = training_source(data, self.input_kind, self.config.dtype, self.device)
        self._state_action, self._n_actions = source.state_action, source.models[0].action_dim
        super()._prepare(source, checkpoint=checkpoint, log_dir=log_dir, progress=progress, checkpoint_metadata=checkpoint_metadata)

    def wrap_source(self, source: DatasetSource) -> DemoConditionedSource:
        return DemoConditionedSource(source, self.config.n_demos_choices)

    def model_input_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        extra = demo_channel_count(self._state_action, self._n_actions)
        if len(input_shape) == 2:
            return (input_shape[0], input_shape[1] + extra)
        return (input_shape[0] + extra, *input_shape[1:])

    def fit_batch(self, problems: Sequence[FitProblem]) -> list[Union[MethodOutput, FitError]]:
        """One forward pass per group of same-size tasks."""
        problems = self._check_ready(problems)
        trainer = self.require_trainer()
        c = self.config
        results: list[Union[MethodOutput, FitError]] = [None] * len(problems)  # type: ignore[list-item]
        for group in group_by_shape(problems):
            chosen = [problems[i] for i in group]
            start = time.perf_counter()
            batch = train_batch(chosen, torch_dtype(c.dtype), self.device, self.architecture["n_actions"] is not None)
            inputs = append_demo_channels(batch.inputs, batch.train_visitation, batch.train_start, [len(p.states) for p in chosen], batch.tasks.horizon)
            with torch.no_grad():
                rewards = trainer.reward_model(inputs).to(torch.float64).cpu().numpy()
            seconds = (time.perf_counter() - start) / len(chosen)
            for i, problem, reward in zip(group, chosen, rewards):
                if not np.all(np.isfinite(reward)) or np.abs(reward).max() > c.max_abs_reward:
                    results[i] = DivergenceError(f"{self.name}: the predicted reward of {problem.label} is not finite or beyond {c.max_abs_reward:g}: training diverged")
                else:
                    results[i] = MethodOutput(reward=reward, info={"seconds": seconds})
        return results

    def state_dict(self) -> dict:
        return {**super().state_dict(), "state_action": self._state_action, "n_actions": self._n_actions}

    def load_state_dict(self, state: Any) -> None:
        self._state_action, self._n_actions = bool(state.get("state_action", False)), int(state.get("n_actions", 1))
        super().load_state_dict(state)
