"""Summaries of scores: mean, IQM and a percentile-bootstrap interval (explicit seed)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["summarize", "iqm"]


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50% (trimming ``floor(n / 4)`` values at each end)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        raise ValueError("iqm needs at least one value")
    quarter = x.size // 4
    return float(x[quarter : x.size - quarter].mean())


def summarize(values: Sequence[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean, IQM and a percentile-bootstrap confidence interval of the mean of independent values."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("summarize needs at least one value")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (n_boot, x.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return {"mean": float(x.mean()), "ci_low": float(low), "ci_high": float(high), "iqm": iqm(x), "n": int(x.size)}
