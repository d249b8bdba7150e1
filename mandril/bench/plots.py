"""The report's plots: normalized EVD against the number of demos, and performance profiles.

Every method keeps its colour (by its place in the suite's method list) across plots; PNGs are written
atomically and carry no date, so the same numbers give the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from mandril.core.io import atomic_write_bytes

__all__ = ["plot_curves", "plot_profiles", "PROFILE_TAUS"]

#: Thresholds of the performance profiles: 0, then log-spaced from 1e-3 to 2 (normalized EVD).
PROFILE_TAUS = np.concatenate([[0.0], np.logspace(-3, np.log10(2.0), 64)])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(plt, methods: Sequence[str], references: Sequence[str]) -> dict:
    learners = [m for m in methods if m not in references]
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(learners)}
    colours.update({m: str(0.2 + 0.25 * i) for i, m in enumerate(m for m in methods if m in references)})
    return colours


def _save(plt, figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def plot_curves(rows: list[dict], path: Path, title: str, panel_key: Optional[str], order: Sequence[str], references: Sequence[str],
                headline: str, labels: Optional[dict] = None) -> list[str]:
    """IQM-vs-demos lines with interval bands, one panel per ``panel_key`` value; symlog y so that 0.005
    and 0.05 are told apart. ``labels`` renames methods in the legend (e.g. to name identical ones). One
    legend names every method plotted in any panel (a method on a reduced grid may be in one panel only);
    returns its entries."""
    plt = _pyplot()
    labels = labels or {}
    panels = sorted({r[panel_key] for r in rows}) if panel_key else [None]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    present = {r["method"] for r in rows}
    methods = [m for m in order if m in present] + sorted(present - set(order))
    colours = _colours(plt, [m for m in order] + sorted(present - set(order)), references)
    for axis, panel in zip(axes[0], panels):
        for method in methods:
            line = sorted((r for r in rows if r["method"] == method and (panel_key is None or r[panel_key] == panel)), key=lambda r: r["n_demos"])
            if not line:
                continue
            n = [r["n_demos"] for r in line]
            style = {"linestyle": "--", "linewidth": 1.0} if method in references else {"marker": "o", "linewidth": 2.2 if method == headline else 1.4}
            axis.plot(n, [r["nevd_iqm"] for r in line], label=labels.get(method, method), color=colours[method], **style)
            axis.fill_between(n, [r["nevd_low"] for r in line], [r["nevd_high"] for r in line], color=colours[method], alpha=0.15)
        ticks = sorted({r["n_demos"] for r in rows})
        axis.set_xscale("log", base=2)
        axis.set_xticks(ticks)
        axis.set_xticklabels([str(t) for t in ticks])
        axis.set_yscale("symlog", linthresh=0.01)
        axis.set_ylim(bottom=0.0)
        axis.set_xlabel("demonstrations of the new task")
        axis.set_ylabel("normalized EVD, IQM (lower is better; symlog)")
        axis.set_title(str(panel) if panel is not None else "all families")
        axis.grid(alpha=0.3)
    handles: dict[str, Any] = {}
    for axis in axes[0]:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    axes[0][-1].legend(list(handles.values()), list(handles), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.suptitle(title)
    figure.tight_layout()
    _save(plt, figure, path)
    return list(handles)


def plot_profiles(scores: dict[tuple, np.ndarray], path: Path, title: str, order: Sequence[str], references: Sequence[str], headline: str,
                  labels: Optional[dict] = None) -> None:
    """rliable-style performance profiles: for each method, the share of its (run, task) scores at or below
    each threshold tau of :data:`PROFILE_TAUS`; one panel per (split, n) of ``scores``
    (``{(split, n, method): scores}``), rows by split and columns by n, one legend naming every method."""
    plt = _pyplot()
    labels = labels or {}
    splits = sorted({k[0] for k in scores})
    ns = sorted({k[1] for k in scores})
    present = {k[2] for k in scores}
    methods = [m for m in order if m in present] + sorted(present - set(order))
    colours = _colours(plt, [m for m in order] + sorted(present - set(order)), references)
    figure, axes = plt.subplots(len(splits), len(ns), figsize=(3.2 * len(ns) + 2.4, 2.8 * len(splits) + 0.6), squeeze=False, sharey=True)
    handles = {}
    for i, split in enumerate(splits):
        for j, n in enumerate(ns):
            axis = axes[i][j]
            for method in methods:
                values = scores.get((split, n, method))
                if values is None or values.size == 0:
                    continue
                share = (values.ravel()[None, :] <= PROFILE_TAUS[:, None] + 1e-9).mean(axis=1)  # differences below 1e-9 are ties
                style = {"linestyle": "--", "linewidth": 1.0} if method in references else {"linewidth": 2.2 if method == headline else 1.3}
                (handle,) = axis.step(PROFILE_TAUS, share, where="post", color=colours[method], label=labels.get(method, method), **style)
                handles.setdefault(method, handle)
            axis.set_xscale("symlog", linthresh=1e-3)
            axis.set_xlim(0.0, PROFILE_TAUS[-1])
            axis.set_ylim(-0.02, 1.02)
            axis.axvline(0.1, color="black", linewidth=0.6, linestyle=":")
            axis.set_title(f"{split}, n={n}", fontsize=9)
            axis.grid(alpha=0.3)
            if i == len(splits) - 1:
                axis.set_xlabel("tau (normalized EVD)")
            if j == 0:
                axis.set_ylabel("share of tasks <= tau")
    figure.legend([handles[m] for m in methods if m in handles], [labels.get(m, m) for m in methods if m in handles],
                  fontsize=7, loc="center right")
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0, 1 - 2.2 / (3.2 * len(ns) + 2.4), 1))
    _save(plt, figure, path)
