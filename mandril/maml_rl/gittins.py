"""Gittins indices of a Bernoulli arm with a Beta(1, 1) prior, discount ``gamma``, by calibration.

An arm that has shown ``s`` successes and ``f`` failures has the posterior Beta(s + 1, f + 1) and
the predictive success probability ``mu = (s + 1) / (s + f + 2)``. Its Gittins index is the
constant reward per step ``lam`` at which a gambler facing "pull this arm (and keep the option to
retire later)" or "retire now for ``lam`` per step forever" is indifferent (Gittins 1979):

    V(s, f; lam) = max( lam / (1 - gamma),  mu + gamma [mu V(s+1, f; lam) + (1 - mu) V(s, f+1; lam)] ).

For one ``lam`` a single backward sweep over the anti-diagonals ``d = s + f`` gives ``V`` at every
state. The sweep is run for a whole grid of ``lam`` values at once (``grid`` values in ``[0, 1]``,
one array axis), and the index of a state is where ``continue - retire``, which decreases in
``lam``, crosses zero, linearly interpolated between the two grid points around the crossing.
The tree is truncated at ``d = depth``: there the posterior is taken as settled,
``V = max(lam, mu) / (1 - gamma)``. With ``depth`` well past the states the policy visits, the
truncation changes the indices of those states by less than the grid resolution (tested).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

__all__ = ["gittins_indices"]


def gittins_indices(gamma: float, max_pulls: int, *, depth: Optional[int] = None, grid: int = 1001) -> np.ndarray:
    """The Gittins index of every arm state an ``max_pulls``-pull run can meet.

    Args:
        gamma: discount in ``(0, 1)``.
        max_pulls: the table covers ``s + f < max_pulls``.
        depth: truncation of the belief tree (default ``max_pulls`` plus ``3 / (1 - gamma)``, at
            least 50, at most 1000 and at most ``max(50, 20 max_pulls)``: information beyond twenty
            times the run's pulls is not modelled; at ``gamma = 0.999`` and ten pulls that moves the
            indices by about 1e-3, the grid's resolution).
        grid: number of retirement rates ``lam`` in ``[0, 1]`` (resolution ``1 / (grid - 1)``, refined by interpolation).

    Returns:
        ``(max_pulls, max_pulls)`` array ``index[s, f]`` (NaN where ``s + f >= max_pulls``), values in ``(0, 1)``.
    """
    if not 0 < gamma < 1:
        raise ValueError(f"gamma must be in (0, 1), got {gamma!r}")
    if isinstance(max_pulls, bool) or not isinstance(max_pulls, int) or max_pulls < 1:
        raise ValueError(f"max_pulls must be an int >= 1, got {max_pulls!r}")
    if depth is None:
        depth = max_pulls + min(1000, max(50, math.ceil(3 / (1 - gamma))), max(50, 20 * max_pulls))
    if depth < max_pulls:
        raise ValueError(f"depth must be >= max_pulls = {max_pulls}, got {depth}")
    if grid < 3:
        raise ValueError(f"grid must be >= 3, got {grid}")
    lam = np.linspace(0.0, 1.0, grid)[:, None]  # (G, 1)
    retire = lam / (1.0 - gamma)
    successes = np.arange(depth + 1)
    values = np.maximum(lam, (successes + 1) / (depth + 2)) / (1.0 - gamma)  # (G, depth + 1): diagonal d = depth
    table = np.full((max_pulls, max_pulls), np.nan)
    for d in range(depth - 1, -1, -1):
        s = successes[: d + 1]
        mu = (s + 1) / (d + 2)
        cont = mu + gamma * (mu * values[:, 1 : d + 2] + (1.0 - mu) * values[:, : d + 1])  # (G, d + 1)
        if d < max_pulls:
            gap = cont - retire  # decreasing in lam: > 0 at lam = 0, <= 0 at lam = 1
            upper = np.argmax(gap <= 0.0, axis=0)  # first grid point where retiring is at least as good
            lower = np.maximum(upper - 1, 0)
            cols = np.arange(d + 1)
            g_lo, g_hi = gap[lower, cols], gap[upper, cols]
            weight = np.where(g_lo > g_hi, g_lo / np.where(g_lo > g_hi, g_lo - g_hi, 1.0), 0.0)
            table[s, d - s] = lam[lower, 0] + weight * (lam[upper, 0] - lam[lower, 0])
        values = np.maximum(retire, cont)
    return table
