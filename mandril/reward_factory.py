"""Reward models built from a plain spec (for suite files, the CLI and checkpoints), and the
MaxEnt-from-scratch baseline as an evaluation method."""

from __future__ import annotations

import copy
import math
import zlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from mandril.irl.maxent import MaxEntIRL
from mandril.irl_data import demo_visitation
from mandril.rewards import ConvReward, LinearReward, MLPReward
from mandril_envs.model import TabularModel

__all__ = ["RewardModelSpec", "build_reward_model", "maxent_method", "REWARD_KINDS"]

#: ``linear``/``mlp`` read the feature matrix ``(S, F)``; ``conv`` reads a map, either the
#: feature map ``(F, N, N)`` or the RGB image ``(3, 5N, 5N)`` (the paper's pixel setting).
REWARD_KINDS = ("linear", "mlp", "conv")


@dataclass
class RewardModelSpec:
    """Which reward model to build.

    Attributes:
        kind: one of :data:`REWARD_KINDS`.
        hidden: hidden widths (MLP units or conv channels).
        kernel_size: conv kernel size (odd).
        activation: hidden activation.
    """

    kind: str = "conv"
    hidden: tuple[int, ...] = (32, 32)
    kernel_size: int = 3
    activation: str = "relu"

    def __post_init__(self) -> None:
        if self.kind not in REWARD_KINDS:
            raise ValueError(f"reward model kind must be one of {list(REWARD_KINDS)}, got {self.kind!r}")
        self.hidden = tuple(int(h) for h in self.hidden)


def build_reward_model(spec: RewardModelSpec, sample_inputs: np.ndarray, n_states: int, seed: int, dtype: torch.dtype = torch.float64) -> nn.Module:
    """A fresh reward model for inputs shaped like ``sample_inputs`` (one task's input), initialised from ``seed``."""
    shape = np.shape(sample_inputs)
    if spec.kind in ("linear", "mlp"):
        if len(shape) != 2 or shape[0] != n_states:
            raise ValueError(f"a {spec.kind} reward model reads the feature matrix (S, F) = ({n_states}, F), got inputs of shape {shape}: use input kind 'features'")
        if spec.kind == "linear":
            return LinearReward(shape[1], init="uniform", seed=seed, dtype=dtype)
        return MLPReward(shape[1], spec.hidden, activation=spec.activation, seed=seed, dtype=dtype)
    side = math.isqrt(n_states)
    if len(shape) != 3 or side * side != n_states or shape[1] % side or shape[1] != shape[2]:
        raise ValueError(f"a conv reward model reads a square map (C, N p, N p) of an N x N grid (S = {n_states}), got inputs of shape {shape}: use input kind 'map' or 'rgb'")
    return ConvReward(shape[0], spec.hidden, spec.kernel_size, shape[1] // side, activation=spec.activation, seed=seed, dtype=dtype)


def maxent_method(
    spec: RewardModelSpec,
    sample_inputs: np.ndarray,
    n_states: int,
    steps: int,
    lr: float,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    l2: float = 0.0,
    init: Optional[nn.Module] = None,
) -> Callable[[TabularModel, np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """MaxEnt IRL as an evaluation method: Adam for ``steps`` steps on the task's demos (with an
    ``l2`` penalty on the parameters: with one or two demos the unregularised likelihood drives the
    rewards of unvisited states towards minus infinity).

    From scratch (``init=None``): a fresh model per task, whose initialisation seed is derived from
    ``seed`` and a checksum of the task's inputs, so results do not depend on the order tasks are
    scored in. Fine-tuning (``init`` given, e.g. a pre-trained model): each task starts from a copy of it.
    """

    def fit(model: TabularModel, inputs: np.ndarray, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        if init is not None:
            reward_model = copy.deepcopy(init)
        else:
            task_seed = int(np.random.SeedSequence([seed, zlib.crc32(np.ascontiguousarray(inputs).tobytes())]).generate_state(1)[0] % 2**31)
            reward_model = build_reward_model(spec, inputs, n_states, task_seed, dtype)
        irl = MaxEntIRL(reward_model, "adam", steps, lr=lr, l2=l2, progress=False, dtype="float64" if dtype == torch.float64 else "float32")
        return irl.fit(model, demo_visitation(model, states, actions), inputs)

    return fit
