"""Reference points scored with every suite, so a reader knows the scale: the expert (the true reward,
EVD 0), no information (the all-zero reward, whose optimal policy breaks every tie toward action 0),
and the uniform random policy (normalized EVD 1 by definition).

These are the only methods the harness hands the true model (``reads_true_reward = True``): the
expert needs it. They learn nothing and take no time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mandril.methods.base import FitProblem, Method, MethodOutput

__all__ = ["Expert", "ZeroReward", "UniformPolicy", "ReferenceConfig"]


@dataclass(frozen=True)
class ReferenceConfig:
    """References have no settings."""


class _Reference(Method):
    kind: ClassVar[str] = "reference"
    Config: ClassVar[type] = ReferenceConfig
    reads_true_reward: ClassVar[bool] = True


class Expert(_Reference):
    """The true reward: the best any reward can do (EVD 0)."""

    name: ClassVar[str] = "expert"

    def _fit_one(self, problem: FitProblem) -> MethodOutput:
        return MethodOutput(reward=np.array(problem.model.reward_matrix, dtype=np.float64))


class ZeroReward(_Reference):
    """The all-zero reward: what a method that learned nothing returns."""

    name: ClassVar[str] = "zero_reward"

    def _fit_one(self, problem: FitProblem) -> MethodOutput:
        return MethodOutput(reward=np.zeros_like(problem.model.reward_matrix, dtype=np.float64))


class UniformPolicy(_Reference):
    """Acting uniformly at random (normalized EVD 1)."""

    name: ClassVar[str] = "uniform_policy"
    output: ClassVar[str] = "policy"

    def _fit_one(self, problem: FitProblem) -> MethodOutput:
        m = problem.model
        return MethodOutput(policy=np.full((m.horizon, m.state_dim, m.action_dim), 1.0 / m.action_dim))
