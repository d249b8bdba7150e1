"""How ``step()`` draws a reward around its mean, and which recorded rewards that makes plausible.

A family declares its noise (:meth:`TabularTaskEnv.reward_noise
<mandril_envs.base.TabularTaskEnv.reward_noise>`); the same :class:`RewardNoise` both draws the
rewards ``step()`` returns and judges rewards read from a file (:meth:`RewardNoise.find_implausible`),
so the two cannot drift apart:

* ``"none"``: the reward is the mean ``r(s[, a])`` itself; a recorded reward must equal it exactly.
* ``"bernoulli"``: 1 with probability ``p = r(s, a)``, else 0. A recorded reward must be 0 or 1 and
  possible (1 needs ``p > 0``, 0 needs ``p < 1``), and the number of ones must lie within
  :data:`PLAUSIBLE_SIGMAS` standard deviations of its expectation ``sum p``.
* ``"gaussian"``: ``r(s[, a]) + N(0, std^2)``. Each recorded reward must lie within
  :data:`PLAUSIBLE_SIGMAS` noise standard deviations of its mean, and the mean standardised residual
  within :data:`PLAUSIBLE_SIGMAS` standard errors of 0 (so a constant shift of all rewards shows).

Ten standard deviations: an honest file is refused with probability below ``1e-22`` per reward
(``2 Phi(-10)``), i.e. never in practice, while a tampered one (every reward set to 1000, or all
shifted by a few noise standard deviations) is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mandril_envs.validation import check_choice, check_float

__all__ = ["PLAUSIBLE_SIGMAS", "RewardNoise"]

#: How many standard deviations a recorded reward (or a total) may lie from its expectation.
PLAUSIBLE_SIGMAS = 10.0


@dataclass(frozen=True)
class RewardNoise:
    """The noise ``step()`` adds to a mean reward.

    Attributes:
        kind: ``"none"``, ``"bernoulli"`` or ``"gaussian"``.
        std: the Gaussian noise's standard deviation (> 0 for ``"gaussian"``, else unused).
    """

    kind: str = "none"
    std: float = 0.0

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, ("none", "bernoulli", "gaussian"))
        std = check_float("std", self.std, 0.0)
        if self.kind == "gaussian" and std == 0.0:
            raise ValueError("std must be > 0 for Gaussian noise (use kind='none' for a noiseless reward)")

    def sample(self, rng: np.random.Generator, mean: float) -> float:
        """One reward around ``mean``, drawn from ``rng`` (the first draw of :meth:`sample_array`)."""
        return float(self.sample_array(rng, np.array([mean], dtype=np.float64))[0])

    def sample_array(self, rng: np.random.Generator, means: np.ndarray) -> np.ndarray:
        """Rewards around ``means`` (any shape), one draw from ``rng`` per element in C order.

        Returns:
            float64 array of the shape of ``means`` (a copy of ``means`` when noiseless).
        """
        means = np.asarray(means, dtype=np.float64)
        if self.kind == "bernoulli":
            return (rng.random(means.shape) < means).astype(np.float64)
        if self.kind == "gaussian":
            return means + rng.normal(0.0, self.std, size=means.shape)
        return means.copy()

    def describe(self) -> str:
        """What :meth:`find_implausible` verifies, in words."""
        if self.kind == "bernoulli":
            return (
                "each reward is 0 or 1 and possible under its arm's mean p (1 needs p > 0, 0 needs p < 1); "
                f"the number of ones per task is within {PLAUSIBLE_SIGMAS:g} standard deviations of sum p"
            )
        if self.kind == "gaussian":
            return (
                f"each reward is within {PLAUSIBLE_SIGMAS:g} noise standard deviations (std {self.std:g}) of its mean r, and "
                f"each task's mean standardised residual within {PLAUSIBLE_SIGMAS:g} standard errors of 0"
            )
        return "each reward equals its mean r exactly (noiseless rewards)"

    def find_implausible(self, means: np.ndarray, rewards: np.ndarray) -> Optional[tuple[Optional[int], str]]:
        """The first reward (or total) that this noise could not have produced, or ``None``.

        Args:
            means: ``(n,)`` the mean reward of each recorded step, from the true model.
            rewards: ``(n,)`` the recorded rewards.

        Returns:
            ``None`` when every check passes, else ``(index of the reward or None for a total, reason)``.
        """
        means = np.asarray(means, dtype=np.float64).ravel()
        rewards = np.asarray(rewards, dtype=np.float64).ravel()
        if means.shape != rewards.shape:
            raise ValueError(f"means and rewards must have the same shape, got {means.shape} and {rewards.shape}")
        if self.kind == "none":
            wrong = np.flatnonzero(rewards != means)
            if wrong.size:
                i = int(wrong[0])
                return i, f"reward {float(rewards[i])!r} differs from the task's reward {float(means[i])!r} (the family's rewards are noiseless)"
            return None
        if self.kind == "bernoulli":
            impossible = ((rewards != 0.0) & (rewards != 1.0)) | ((rewards == 1.0) & (means <= 0.0)) | ((rewards == 0.0) & (means >= 1.0))
            if impossible.any():
                i = int(np.flatnonzero(impossible)[0])
                return i, f"reward {float(rewards[i])!r} is impossible for a Bernoulli arm of mean {float(means[i])!r} (rewards are 0 or 1)"
            variance = float((means * (1.0 - means)).sum())
            excess = float(rewards.sum() - means.sum())
            if variance > 0 and abs(excess) > PLAUSIBLE_SIGMAS * math.sqrt(variance):
                return None, (
                    f"{int(rewards.sum())} ones in {rewards.size} pulls where {means.sum():.1f} +- {math.sqrt(variance):.1f} are expected "
                    f"({abs(excess) / math.sqrt(variance):.1f} standard deviations, more than {PLAUSIBLE_SIGMAS:g})"
                )
            return None
        z = (rewards - means) / self.std
        beyond = np.flatnonzero(np.abs(z) > PLAUSIBLE_SIGMAS)
        if beyond.size:
            i = int(beyond[0])
            return i, (
                f"reward {float(rewards[i])!r} is {abs(z[i]):.1f} noise standard deviations (std {self.std:g}) from its mean {float(means[i])!r}, "
                f"more than {PLAUSIBLE_SIGMAS:g}"
            )
        if z.size and abs(z.sum()) / math.sqrt(z.size) > PLAUSIBLE_SIGMAS:
            return None, (
                f"the mean standardised residual of {z.size} rewards is {z.mean():.3g}, "
                f"{abs(z.sum()) / math.sqrt(z.size):.1f} standard errors from 0 (more than {PLAUSIBLE_SIGMAS:g}): the rewards are shifted"
            )
        return None
