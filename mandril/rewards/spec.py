"""Reward models built from a plain spec (suite files, the CLI, checkpoints, method configs)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from mandril.rewards.models import ACTIVATIONS, ConvReward, LinearReward, MLPReward, TabularReward

__all__ = ["RewardModelSpec", "build_reward_model", "REWARD_KINDS", "INPUT_KIND_OF"]

#: ``tabular`` (one parameter per state), ``linear`` and ``mlp`` read the feature matrix ``(S, F)``;
#: ``conv`` reads a GridWorld map, the feature map ``(F, N, N)`` or the RGB image ``(3, 5N, 5N)``.
REWARD_KINDS = ("tabular", "linear", "mlp", "conv")

#: The input kinds each reward-model kind can read.
INPUT_KIND_OF: dict[str, tuple[str, ...]] = {"tabular": ("features",), "linear": ("features",), "mlp": ("features",), "conv": ("map", "rgb")}


@dataclass(frozen=True)
class RewardModelSpec:
    """Which reward model to build.

    Attributes:
        kind: one of :data:`REWARD_KINDS`.
        hidden: hidden widths (MLP units or conv channels; unused by ``tabular`` and ``linear``).
        kernel_size: conv kernel size (odd).
        activation: hidden activation (``relu``, ``tanh``, ``elu``, ``softplus``).
    """

    kind: str = "conv"
    hidden: tuple[int, ...] = (32, 32)
    kernel_size: int = 3
    activation: str = "relu"

    def __post_init__(self) -> None:
        if self.kind not in REWARD_KINDS:
            raise ValueError(f"reward model kind must be one of {list(REWARD_KINDS)}, got {self.kind!r}")
        if isinstance(self.hidden, (str, bytes)) or not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in self.hidden):
            raise ValueError(f"reward model hidden must be a list of ints >= 1, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if isinstance(self.kernel_size, bool) or not isinstance(self.kernel_size, int) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"reward model kernel_size must be an odd int >= 1, got {self.kernel_size!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"reward model activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")

    @property
    def input_kinds(self) -> tuple[str, ...]:
        """The task input kinds this model can read (:data:`INPUT_KIND_OF`)."""
        return INPUT_KIND_OF[self.kind]


def build_reward_model(
    spec: RewardModelSpec,
    sample_inputs: np.ndarray,
    n_states: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    n_actions: Optional[int] = None,
) -> nn.Module:
    """A fresh reward model for inputs shaped like ``sample_inputs`` (one task's input), initialised from ``seed``.

    Args:
        spec: which model.
        sample_inputs: one task's input (its shape decides the model's input size).
        n_states: ``S``.
        seed: initialisation seed (``tabular`` and ``linear`` start at zero).
        dtype: parameter dtype.
        n_actions: ``A`` for a state-action reward ``(S, A)``; ``None`` for a state reward ``(S,)``.
    """
    shape = np.shape(sample_inputs)
    if spec.kind in ("tabular", "linear", "mlp"):
        if len(shape) != 2 or shape[0] != n_states:
            raise ValueError(f"a {spec.kind} reward model reads the feature matrix (S, F) = ({n_states}, F), got inputs of shape {shape}: use input kind 'features'")
        if spec.kind == "tabular":
            return TabularReward(n_states, n_actions, dtype=dtype)
        if spec.kind == "linear":
            return LinearReward(shape[1], n_actions, init="zeros", seed=seed, dtype=dtype)
        return MLPReward(shape[1], spec.hidden, n_actions, activation=spec.activation, seed=seed, dtype=dtype)
    side = math.isqrt(n_states)
    if len(shape) != 3 or side * side != n_states or shape[1] % side or shape[1] != shape[2]:
        raise ValueError(f"a conv reward model reads a square map (C, N p, N p) of an N x N grid (S = {n_states}), got inputs of shape {shape}: use input kind 'map' or 'rgb'")
    return ConvReward(shape[0], spec.hidden, spec.kernel_size, shape[1] // side, n_actions, activation=spec.activation, seed=seed, dtype=dtype)
