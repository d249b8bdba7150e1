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

Sums (:meth:`RewardNoise.find_implausible_group`): the rewards of each state-action pair (arm) of
each task, of each task, and of the whole dataset are summed, and each sum is tested with a Chernoff
bound on its tail probability that holds for any number of independent rewards:
``P(ones - sum p >= t) <= exp(-n KL(pbar + t/n || pbar))`` (and the lower tail alike) for Bernoulli
rewards, ``P(|sum z| >= t sqrt(n)) <= 2 exp(-t^2 / 2)`` for Gaussian ones. A sum is refused when its
two-sided bound falls below :data:`FALSE_ALARM` divided by the number of sums tested in the whole
dataset (Bonferroni): an honest dataset is refused with probability below ``1e-9`` whatever its size.
Ten standard deviations of one task's count miss edits that the bound sees: every reward of a small
bandit dataset set to 1 (20 pulls per task, means near 0.6) is 4 standard deviations per task, but
100 ones in 100 pulls with means summing to 55 has probability ``exp(-60)``; an arm of mean 0.1
paying 1 thirty times in a row has probability ``1e-30``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mandril_envs.validation import check_choice, check_float

__all__ = ["PLAUSIBLE_SIGMAS", "FALSE_ALARM", "RewardNoise"]

#: How many standard deviations a recorded reward (or a total) may lie from its expectation.
PLAUSIBLE_SIGMAS = 10.0
#: The probability that the per-pair tests refuse an honest dataset (at most, by a union bound).
FALSE_ALARM = 1e-9


def _bernoulli_kl(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``KL(Bernoulli(q) || Bernoulli(p))`` elementwise, ``0 log 0 = 0`` (``p`` in ``(0, 1)`` where ``q`` differs)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.where(q > 0, q * np.log(q / p), 0.0)
        second = np.where(q < 1, (1 - q) * np.log((1 - q) / (1 - p)), 0.0)
    return first + second


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
        per_pair = f"; the sums per state-action pair (arm), per task and of the dataset have Chernoff tail bounds above {FALSE_ALARM:g} / the number of sums"
        if self.kind == "bernoulli":
            return (
                "each reward is 0 or 1 and possible under its arm's mean p (1 needs p > 0, 0 needs p < 1); "
                f"the number of ones per task is within {PLAUSIBLE_SIGMAS:g} standard deviations of sum p" + per_pair
            )
        if self.kind == "gaussian":
            return (
                f"each reward is within {PLAUSIBLE_SIGMAS:g} noise standard deviations (std {self.std:g}) of its mean r, and "
                f"each task's mean standardised residual within {PLAUSIBLE_SIGMAS:g} standard errors of 0" + per_pair
            )
        return "each reward equals its mean r exactly (noiseless rewards)"

    def find_implausible_group(self, means: np.ndarray, rewards: np.ndarray, groups: np.ndarray, n_tests: int) -> Optional[tuple[int, str]]:
        """The first group of rewards whose sum is implausible, or ``None``.

        Each group's sum is tested with a Chernoff bound on its tail probability that holds for
        independent rewards of any (even different) means (see the module docstring): Bernoulli,
        ``P(ones - sum p >= t) <= exp(-n KL(pbar + t/n || pbar))`` with ``pbar`` the group's mean p
        (Hoeffding 1963, Theorem 1), and the lower tail alike; Gaussian, ``sum z ~ N(0, n)``. A group
        is refused when its two-sided bound falls below ``FALSE_ALARM / n_tests``.

        Args:
            means: ``(n,)`` the mean reward of each recorded step.
            rewards: ``(n,)`` the recorded rewards (for Bernoulli, already 0/1: :meth:`find_implausible` first).
            groups: ``(n,)`` int labels: a state-action pair (``s * A + a``), a task, or all zeros.
            n_tests: how many groups are tested in the whole dataset (the Bonferroni divisor), >= 1.

        Returns:
            ``None``, or ``(label of the first implausible group, reason)``.
        """
        if self.kind == "none":
            return None
        labels, inverse = np.unique(np.asarray(groups).ravel(), return_inverse=True)
        pulls, expected, observed = self.group_sums(means, rewards, inverse, labels.size)
        found = self.find_implausible_sums(pulls, expected, observed, n_tests)
        return None if found is None else (int(labels[found[0]]), found[1])

    def group_sums(self, means: np.ndarray, rewards: np.ndarray, inverse: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(pulls, expected, observed)`` per group (``inverse``: each step's group index in ``0 .. n_groups-1``):
        the number of rewards, the sum of their means, and the sum of the ones (Bernoulli) or of the
        standardised residuals ``(r - mean) / std`` (Gaussian). Sums of disjoint groups add up."""
        means, rewards, inverse = np.asarray(means, np.float64).ravel(), np.asarray(rewards, np.float64).ravel(), np.asarray(inverse).ravel()
        pulls = np.bincount(inverse, minlength=n_groups).astype(np.float64)
        expected = np.bincount(inverse, weights=means, minlength=n_groups)
        values = rewards if self.kind == "bernoulli" else (rewards - means) / (self.std or 1.0)
        return pulls, expected, np.bincount(inverse, weights=values, minlength=n_groups)

    def find_implausible_sums(self, pulls: np.ndarray, expected: np.ndarray, observed: np.ndarray, n_tests: int) -> Optional[tuple[int, str]]:
        """The first group whose sums (:meth:`group_sums`) are implausible, as ``(group index, reason)``, or ``None``."""
        if self.kind == "none":
            return None
        pulls, expected, observed = (np.atleast_1d(np.asarray(x, np.float64)) for x in (pulls, expected, observed))
        threshold = math.log(2.0 * max(int(n_tests), 1) / FALSE_ALARM)  # refuse when 2 exp(-exponent) < FALSE_ALARM / n_tests
        safe = np.maximum(pulls, 1.0)
        if self.kind == "bernoulli":
            pbar = expected / safe
            inside = (pulls > 0) & (pbar > 0) & (pbar < 1)  # a mean of 0 or 1 pays one value only: find_implausible checked it
            exponent = np.where(inside, pulls * _bernoulli_kl(np.clip(observed / safe, 0.0, 1.0), np.clip(pbar, 1e-300, 1 - 1e-16)), 0.0)
        else:
            exponent = np.where(pulls > 0, observed**2 / (2 * safe), 0.0)
        bad = np.flatnonzero(exponent > threshold)
        if not bad.size:
            return None
        g = int(bad[0])
        if self.kind == "bernoulli":
            described = f"{int(observed[g])} ones in {int(pulls[g])} pulls where {expected[g]:.1f} are expected"
        else:
            described = f"{int(pulls[g])} rewards sum to {observed[g] / math.sqrt(pulls[g]):.1f} standard errors from their expectation"
        return g, f"{described}: probability below {2 * math.exp(-exponent[g]):.2g}, less than {FALSE_ALARM:g} / {int(n_tests)} sums tested"

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
