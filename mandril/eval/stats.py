"""Summaries of scores, with the definitions of rliable (Agarwal et al. 2021) and vectorised bootstraps.

Scores of one method on one benchmark setting are a matrix ``(runs, tasks)``: seeds as runs, held-out
tasks as tasks (rliable's layout). The interval estimates resample tasks with replacement and, within
each resampled task, its runs with replacement (rliable's stratified bootstrap with
``task_bootstrap=True``): our held-out tasks are draws from a distribution of tasks, so task-to-task
variation belongs in the interval.

* :func:`iqm`: the interquartile mean (rliable's ``aggregate_iqm``: ``scipy.stats.trim_mean(x, 0.25)``
  of all scores).
* :func:`probability_of_improvement`: rliable's ``P(X > Y)``: for each task, the probability that a
  run of X beats a run of Y (ties count half), averaged over tasks.
* :func:`interval`: a point estimate and a percentile interval of any of them.

rliable's own ``get_interval_estimates`` loops over bootstrap samples in Python (7 s for the IQMs of
ten methods, 137 s for one probability of improvement, 2000 samples, on the 2-core development
machine); these are the same statistics computed on all samples at once, checked against rliable's
point estimates in the tests.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["summarize", "iqm", "probability_of_improvement", "interval"]


def iqm(values: np.ndarray) -> float:
    """Interquartile mean of all values: the mean after trimming ``floor(n / 4)`` values at each end."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size == 0:
        raise ValueError("iqm needs at least one value")
    cut = x.size // 4
    return float(x[cut : x.size - cut].mean())


def _iqm_batched(samples: np.ndarray) -> np.ndarray:
    """IQM of each ``samples[i]`` (leading axis: bootstrap samples)."""
    flat = np.sort(samples.reshape(samples.shape[0], -1), axis=1)
    cut = flat.shape[1] // 4
    return flat[:, cut : flat.shape[1] - cut].mean(axis=1)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """rliable's ``P(X > Y)`` for score matrices ``x (runs_x, tasks)`` and ``y (runs_y, tasks)`` (higher is better;
    pass negated scores for a lower-is-better metric)."""
    return float(_poi_batched(np.asarray(x, float)[None], np.asarray(y, float)[None])[0])


def _poi_batched(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(reps,)`` P(X > Y) for ``x (reps, runs_x, tasks)``, ``y (reps, runs_y, tasks)``."""
    greater = (x[:, :, None, :] > y[:, None, :, :]).mean(axis=(1, 2))
    equal = (x[:, :, None, :] == y[:, None, :, :]).mean(axis=(1, 2))
    return (greater + 0.5 * equal).mean(axis=1)


def interval(statistic: str, scores: Sequence[np.ndarray], reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Point estimate and percentile bootstrap interval of ``statistic`` (``"iqm"``, ``"mean"`` or ``"poi"``).

    Args:
        statistic: ``"iqm"`` / ``"mean"`` of one score matrix ``scores = [x]``, or ``"poi"``, the
            probability of improvement of ``x`` over ``y`` for ``scores = [x, y]`` (paired: the same
            tasks are resampled for both, as the benchmark scores every method on the same tasks).
        scores: matrices ``(runs, tasks)`` with the same number of tasks.
        reps: bootstrap samples.
        confidence: interval coverage.
        seed: seeds the resampling.

    Returns:
        ``{"point", "low", "high"}``.
    """
    matrices = [np.asarray(s, dtype=np.float64) for s in scores]
    if any(m.ndim != 2 or m.size == 0 for m in matrices):
        raise ValueError(f"scores must be non-empty (runs, tasks) matrices, got shapes {[m.shape for m in matrices]}")
    if len({m.shape[1] for m in matrices}) != 1:
        raise ValueError(f"scores must share the tasks, got shapes {[m.shape for m in matrices]}")
    rng = np.random.default_rng(seed)
    tasks = matrices[0].shape[1]
    task_index = rng.integers(0, tasks, (reps, tasks))
    samples = [m[rng.integers(0, m.shape[0], (reps, m.shape[0], tasks)), task_index[:, None, :]] for m in matrices]
    if statistic == "iqm":
        point, values = iqm(matrices[0]), _iqm_batched(samples[0])
    elif statistic == "mean":
        point, values = float(matrices[0].mean()), samples[0].reshape(reps, -1).mean(axis=1)
    elif statistic == "poi":
        if len(matrices) != 2:
            raise ValueError("'poi' needs two score matrices [x, y]")
        point, values = probability_of_improvement(*matrices), _poi_batched(*samples)
    else:
        raise ValueError(f"statistic must be 'iqm', 'mean' or 'poi', got {statistic!r}")
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return {"point": point, "low": float(low), "high": float(high)}


def summarize(values: Sequence[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean, IQM and a percentile-bootstrap confidence interval of the mean of independent values."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("summarize needs at least one value")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (n_boot, x.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return {"mean": float(x.mean()), "ci_low": float(low), "ci_high": float(high), "iqm": iqm(x), "n": int(x.size)}

