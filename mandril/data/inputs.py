"""What a reward model reads of a task: the env's ``reward_input(kind)``, checked."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from mandril_envs.base import TabularTaskEnv

__all__ = ["INPUT_KINDS", "task_inputs"]

#: What a reward model can read of a task: its feature matrix ``(S, F)``, its map features
#: ``(F, N, N)`` (GridWorld) or its map image ``(3, 5N, 5N)`` in [0, 1] (GridWorld, no agent).
#: Which of them a family offers is the env's ``reward_input_kinds``.
INPUT_KINDS = ("features", "map", "rgb")


def task_inputs(env: gym.Env, kind: str) -> np.ndarray:
    """The reward-model input of the env's current task (``env.unwrapped.reward_input(kind)``; see :data:`INPUT_KINDS`)."""
    base = env.unwrapped
    if not isinstance(base, TabularTaskEnv):
        raise TypeError(f"env must be a mandril_envs env, got {type(base).__name__}")
    if kind not in INPUT_KINDS:
        raise ValueError(f"input kind must be one of {list(INPUT_KINDS)}, got {kind!r}")
    if kind not in base.reward_input_kinds:
        raise ValueError(f"input kind {kind!r} is not offered by family {base.family!r}: it offers {list(base.reward_input_kinds)}")
    return base.reward_input(kind)
