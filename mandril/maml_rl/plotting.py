"""The learning-curve PNG: pre- and post-adaptation return over meta-iterations."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from mandril.core.io import atomic_write_bytes, read_csv

__all__ = ["plot_curve", "moving_average"]


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average (shorter windows at the start), same length as ``values``."""
    values = np.asarray(values, dtype=np.float64)
    cumsum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[lo]) / (idx - lo)


def plot_curve(metrics_csv: Union[str, Path], out_png: Union[str, Path], *, scale: float = 1.0, title: str = "",
               ylabel: Optional[str] = None, references: Optional[dict[str, float]] = None, window: int = 10) -> Path:
    """Plot ``pre_return`` and ``post_return`` of ``metrics.csv`` (times ``scale``) against the iteration.

    Args:
        scale: multiply the returns (e.g. by ``n`` to show totals over ``n`` episodes/pulls).
        references: horizontal lines ``{label: value}`` (already scaled).
        window: moving-average window drawn over the raw curves.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_csv(metrics_csv)
    if not rows:
        raise ValueError(f"{str(metrics_csv)!r} has no rows to plot")
    it = np.array([r["iteration"] for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, label, color in (("post_return", "post-adaptation", "tab:blue"), ("pre_return", "pre-adaptation", "tab:gray")):
        y = np.array([r[key] for r in rows]) * scale
        ax.plot(it, y, color=color, alpha=0.3, linewidth=0.8)
        ax.plot(it, moving_average(y, window), color=color, linewidth=2, label=f"{label} ({window}-batch mean)")
    if rows and "val_post_return" in rows[0]:
        val = np.array([r["val_post_return"] for r in rows]) * scale
        has = np.isfinite(val)
        if has.any():
            # validated after step i, i.e. the parameters of iteration i + 1
            ax.plot(it[has] + 1, val[has], "o-", color="tab:orange", markersize=3, linewidth=1,
                    label="post-adaptation, validation tasks (exact)")
            best = int(np.nanargmax(val))
            ax.plot([it[best] + 1], [val[best]], "*", color="tab:red", markersize=12, label="best (best.pt)")
    for i, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, linestyle="--", linewidth=1, color=f"C{i + 2}", label=label)
    ax.set_xlabel("meta-iteration (TRPO step)")
    ax.set_ylabel(ylabel or (f"return x {scale:g}" if scale != 1 else "mean episode return"))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(out_png, buffer.getvalue())
    return Path(out_png)
