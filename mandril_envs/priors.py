"""What a task family says about a task's reward before any demo: its prior, as plain arrays.

``env.unwrapped.reward_prior()`` describes the current task's reward prior given what the task
shows (its layout, its features, its split), never the task's own draw: an estimator that knows the
family (``mandril``'s ``bayes`` reference) consumes it. Three forms cover the suite's families:

* :class:`GaussianRewardPrior`: ``reward = (basis @ params).reshape(shape)`` with independent
  ``params_i ~ N(mean_i, std_i^2)`` (the linear-intent families; the RL^2 random MDPs' ``N(1, 1)``
  state-action means, with the identity basis; Gaussian bandits).
* :class:`BoxRewardPrior`: every reward entry independently uniform on ``[low, high]``
  (Bernoulli bandits: arm means ``U[0, 1]``).
* :class:`DiscreteRewardPrior`: one of ``K`` candidate reward tables with probabilities
  (GridWorld: which sprite is the goal).

Every form gives its ``mean_reward()`` (the prior mean reward table) and the reward
``shape``; the candidates of a discrete prior come in a canonical order that says nothing about
which one is the task's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

__all__ = ["GaussianRewardPrior", "BoxRewardPrior", "DiscreteRewardPrior", "RewardPrior"]


def _frozen(value: np.ndarray) -> np.ndarray:
    value = np.array(value, dtype=np.float64)
    value.setflags(write=False)
    return value


def _check_shape(shape: tuple) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (1, 2) or min(shape) < 1:
        raise ValueError(f"shape must be a reward table's (S,) or (S, A), got {shape}")
    return shape


@dataclass(frozen=True, eq=False)
class GaussianRewardPrior:
    """``reward = (basis @ params).reshape(shape)``, ``params ~ N(mean, diag(std^2))``.

    Attributes:
        shape: the reward table's shape, ``(S,)`` or ``(S, A)``.
        mean: ``(P,)`` prior mean of the parameters.
        std: ``(P,)`` prior standard deviations (0: the parameter is fixed at its mean).
        basis: ``(R, P)`` with ``R = prod(shape)``, or ``None`` for the identity (``P = R``: one
            parameter per reward entry).
        names: ``(P,)`` names of the parameters (for reports), or empty.
    """

    shape: tuple[int, ...]
    mean: np.ndarray
    std: np.ndarray
    basis: Optional[np.ndarray] = None
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        shape = _check_shape(self.shape)
        mean, std = _frozen(self.mean), _frozen(self.std)
        size = int(np.prod(shape))
        if self.basis is None:
            n_params = size
        else:
            basis = _frozen(self.basis)
            if basis.ndim != 2 or basis.shape[0] != size:
                raise ValueError(f"basis must be (R, P) with R = {size} (the reward shape {shape}), got {basis.shape}")
            n_params = basis.shape[1]
            object.__setattr__(self, "basis", basis)
        for name, value in (("mean", mean), ("std", std)):
            if value.shape != (n_params,) or not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be {n_params} finite numbers (P,), got shape {value.shape}")
        if (std < 0).any():
            raise ValueError(f"std must be >= 0, got minimum {std.min()}")
        if self.names and len(self.names) != n_params:
            raise ValueError(f"names must have P = {n_params} entries, got {len(self.names)}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "names", tuple(self.names))

    @property
    def n_params(self) -> int:
        """``P``."""
        return int(self.mean.shape[0])

    def reward(self, params: np.ndarray) -> np.ndarray:
        """The reward table ``shape`` of parameters ``params (P,)``."""
        params = np.asarray(params, dtype=np.float64)
        flat = params if self.basis is None else self.basis @ params
        return flat.reshape(self.shape)

    def mean_reward(self) -> np.ndarray:
        """The reward of the prior mean parameters."""
        return self.reward(self.mean)


@dataclass(frozen=True, eq=False)
class BoxRewardPrior:
    """Every entry of the reward table independently uniform on ``[low, high]``.

    Attributes:
        shape: the reward table's shape, ``(S,)`` or ``(S, A)``.
        low, high: the bounds (``low < high``).
    """

    shape: tuple[int, ...]
    low: float
    high: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _check_shape(self.shape))
        low, high = float(self.low), float(self.high)
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"a box prior needs finite low < high, got [{low}, {high}]")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def mean_reward(self) -> np.ndarray:
        """The box's centre, as a reward table."""
        return np.full(self.shape, 0.5 * (self.low + self.high))


@dataclass(frozen=True, eq=False)
class DiscreteRewardPrior:
    """One of ``K`` candidate reward tables.

    Attributes:
        rewards: ``(K, *shape)`` the candidates, in a canonical order (not the task's).
        probs: ``(K,)`` their prior probabilities (non-negative, summing to 1; 0 for a candidate the
            family could not have drawn for this task).
        labels: ``(K,)`` ints naming each candidate in the family's terms (GridWorld: the goal's state).
    """

    rewards: np.ndarray
    probs: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        rewards, probs = _frozen(self.rewards), _frozen(self.probs)
        labels = np.array(self.labels, dtype=np.int64)
        labels.setflags(write=False)
        if rewards.ndim not in (2, 3) or rewards.shape[0] < 1:
            raise ValueError(f"rewards must be (K, S) or (K, S, A) with K >= 1, got {rewards.shape}")
        k = rewards.shape[0]
        if probs.shape != (k,) or labels.shape != (k,):
            raise ValueError(f"probs and labels must have K = {k} entries, got {probs.shape} and {labels.shape}")
        if (probs < 0).any() or abs(probs.sum() - 1.0) > 1e-9:
            raise ValueError(f"probs must be non-negative and sum to 1, got {probs.tolist()}")
        object.__setattr__(self, "rewards", rewards)
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "labels", labels)

    @property
    def shape(self) -> tuple[int, ...]:
        """The reward table's shape."""
        return tuple(self.rewards.shape[1:])

    def mean_reward(self) -> np.ndarray:
        """The prior mean reward ``sum_k probs[k] rewards[k]``."""
        return np.tensordot(self.probs, self.rewards, axes=1)


#: Any of the families' reward priors (what :meth:`~mandril_envs.base.TabularTaskEnv.reward_prior` returns).
RewardPrior = Union[GaussianRewardPrior, BoxRewardPrior, DiscreteRewardPrior]
