"""The report of a suite's output directory: statistics, tables, plots, and where MandRIL wins, ties and loses.

Headline score: normalized EVD (0: the expert, 1: a uniform random policy), as an interquartile mean
with a 95% stratified bootstrap interval over held-out tasks (and seeds as runs), per family, split
and number of demos; raw EVD (mean), success and held-out demo NLL beside it. A failed cell (a
diverged fit) is scored as the zero reward on the same task and demos, not dropped, and counted.

MandRIL against each other method: rliable's probability of improvement ``P(MandRIL better)`` on the
same cells, with its interval: a **win** when the interval lies above 1/2, a **loss** when it lies
below, a **tie** otherwise.

Files: ``report.md``, ``summary.csv`` and ``summary.json`` (one row per family, split, n, method),
``comparisons.csv`` (MandRIL against each method), ``plots/<family>.png`` and ``plots/aggregate.png``.
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from mandril.bench.cells import units_of
from mandril.bench.store import RunStore
from mandril.bench.suite import Suite
from mandril.core.io import atomic_write_bytes, atomic_write_text, write_csv, write_json
from mandril.eval.stats import interval

__all__ = ["write_report", "summarize_records", "compare_with", "HEADLINE_METHOD"]

HEADLINE_METHOD = "mandril"
REFERENCES = ("expert", "bayes", "zero_reward", "uniform_policy")
_REPS = 2000


def _fill_failures(records: list[dict]) -> tuple[list[dict], int]:
    """Records with each failed cell scored as the zero reward's cell of the same task (if the suite has it)."""
    zero = {(r["family"], r["split"], r["seed"], r["task"], r["n_demos"]): r for r in records if r["method"] == "zero_reward" and not r.get("error")}
    filled, dropped = [], 0
    for r in records:
        if not r.get("error"):
            filled.append(r)
            continue
        stand_in = zero.get((r["family"], r["split"], r["seed"], r["task"], r["n_demos"]))
        if stand_in is None:
            dropped += 1
            continue
        filled.append({**r, **{k: stand_in[k] for k in ("evd", "normalized_evd", "learned_return", "demo_nll", "success")}})
    return filled, dropped


def _matrix(rows: list[dict], key: str) -> tuple[np.ndarray, list[int], list[int]]:
    """``(seeds, tasks)`` matrix of ``key`` (NaN where missing), with the seed and task labels."""
    seeds = sorted({r["seed"] for r in rows})
    tasks = sorted({r["task"] for r in rows})
    matrix = np.full((len(seeds), len(tasks)), np.nan)
    for r in rows:
        value = r.get(key)
        if value is not None:
            matrix[seeds.index(r["seed"]), tasks.index(r["task"])] = float(value)
    return matrix, seeds, tasks


def summarize_records(records: list[dict], seed: int = 0) -> list[dict]:
    """One row per (family, split, n_demos, method): cells, failures, and the statistics (module docstring)."""
    filled, _ = _fill_failures(records)
    failures: dict[tuple, int] = defaultdict(int)
    for r in records:
        if r.get("error"):
            failures[(r["family"], r["split"], r["n_demos"], r["method"])] += 1
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in filled:
        groups[(r["family"], r["split"], r["n_demos"], r["method"])].append(r)
    rows = []
    for (family, split, n, method), members in sorted(groups.items()):
        normalized, _, _ = _matrix(members, "normalized_evd")
        raw, _, _ = _matrix(members, "evd")
        complete = ~np.isnan(normalized).any(axis=0)
        normalized, raw = normalized[:, complete], raw[:, complete]
        headline = interval("iqm", [normalized], reps=_REPS, seed=seed)
        mean_raw = interval("mean", [raw], reps=_REPS, seed=seed)
        success = [r["success"] for r in members if r.get("success") is not None]
        nll = [r["demo_nll"] for r in members if r.get("demo_nll") is not None]
        rows.append({
            "family": family, "split": split, "n_demos": n, "method": method, "cells": len(members), "failed": failures[(family, split, n, method)],
            "seeds": normalized.shape[0], "tasks": normalized.shape[1],
            "nevd_iqm": headline["point"], "nevd_low": headline["low"], "nevd_high": headline["high"], "nevd_mean": float(normalized.mean()),
            "evd_mean": mean_raw["point"], "evd_low": mean_raw["low"], "evd_high": mean_raw["high"],
            "success": float(np.mean(success)) if success else None, "demo_nll": float(np.mean(nll)) if nll else None,
            "seconds_per_cell": float(np.mean([r["seconds"] for r in members if r.get("seconds") is not None] or [0.0])),
        })
    return rows


#: Fewer common held-out tasks than this (a reduced grid of cells) get no win/tie/loss verdict.
MIN_TASKS_FOR_VERDICT = 5


def compare_with(records: list[dict], headline: str = HEADLINE_METHOD, seed: int = 0) -> list[dict]:
    """``P(headline better)`` against every other non-reference method on their common cells, with the verdict."""
    filled, _ = _fill_failures(records)
    groups: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in filled:
        groups[(r["family"], r["split"], r["n_demos"])][r["method"]].append(r)
    rows = []
    for (family, split, n), by_method in sorted(groups.items()):
        if headline not in by_method:
            continue
        for other, members in sorted(by_method.items()):
            if other == headline or other in REFERENCES:
                continue
            keys = {(r["seed"], r["task"]) for r in members} & {(r["seed"], r["task"]) for r in by_method[headline]}
            mine, _, tasks = _matrix([r for r in by_method[headline] if (r["seed"], r["task"]) in keys], "normalized_evd")
            theirs, _, _ = _matrix([r for r in members if (r["seed"], r["task"]) in keys], "normalized_evd")
            complete = ~(np.isnan(mine).any(axis=0) | np.isnan(theirs).any(axis=0))
            if not complete.any():
                continue
            estimate = interval("poi", [-mine[:, complete], -theirs[:, complete]], reps=_REPS, seed=seed)  # lower EVD is better
            verdict = "win" if estimate["low"] > 0.5 else "loss" if estimate["high"] < 0.5 else "tie"
            if complete.sum() < MIN_TASKS_FOR_VERDICT:
                verdict = "too few tasks"  # a bootstrap over 2 or 3 tasks says nothing
            rows.append({"family": family, "split": split, "n_demos": n, "method": other, "tasks": int(complete.sum()),
                         "p_better": estimate["point"], "p_low": estimate["low"], "p_high": estimate["high"], "verdict": verdict})
    return rows


def _aggregate(records: list[dict], seed: int = 0) -> list[dict]:
    """IQM of normalized EVD across every family and split, per method and n (on the cells each method has)."""
    filled, _ = _fill_failures(records)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in filled:
        groups[(r["n_demos"], r["method"])].append({**r, "task": f"{r['family']}/{r['split']}/{r['task']}"})
    rows = []
    for (n, method), members in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        matrix, _, _ = _matrix(members, "normalized_evd")
        matrix = matrix[:, ~np.isnan(matrix).any(axis=0)]
        estimate = interval("iqm", [matrix], reps=_REPS, seed=seed)
        families = sorted({r["family"] for r in members})
        rows.append({"n_demos": n, "method": method, "families": families, "tasks": matrix.shape[1], "nevd_iqm": estimate["point"], "nevd_low": estimate["low"], "nevd_high": estimate["high"]})
    return rows


# --- plots -----------------------------------------------------------------------------------------
def _plot(rows: list[dict], path: Path, title: str, panel_key: Optional[str], order: Sequence[str] = ()) -> None:
    """EVD-vs-demos lines with interval bands, one panel per ``panel_key`` value; each method keeps its
    colour (by its place in ``order``) across plots; symlog y so that 0.005 and 0.05 are told apart."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({r[panel_key] for r in rows}) if panel_key else [None]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    present = {r["method"] for r in rows}
    methods = [m for m in order if m in present] + sorted(present - set(order))
    learners = [m for m in methods if m not in REFERENCES]
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(learners)}
    colours.update({m: str(0.2 + 0.25 * i) for i, m in enumerate(m for m in methods if m in REFERENCES)})
    for axis, panel in zip(axes[0], panels):
        for method in methods:
            line = sorted((r for r in rows if r["method"] == method and (panel_key is None or r[panel_key] == panel)), key=lambda r: r["n_demos"])
            if not line:
                continue
            n = [r["n_demos"] for r in line]
            style = {"linestyle": "--", "linewidth": 1.0} if method in REFERENCES else {"marker": "o", "linewidth": 2.2 if method == HEADLINE_METHOD else 1.4}
            axis.plot(n, [r["nevd_iqm"] for r in line], label=method, color=colours[method], **style)
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
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


# --- the report --------------------------------------------------------------------------------------
def _versions() -> dict:
    import importlib.metadata as metadata

    out = {"python": platform.python_version()}
    for name in ("mandril", "torch", "numpy", "gymnasium", "imitation", "stable-baselines3", "rliable", "ray"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10, cwd=Path(__file__).resolve().parent)
        return result.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "") if result.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cell(row: Optional[dict]) -> str:
    if row is None:
        return ""
    failed = f" ({row['failed']} failed)" if row["failed"] else ""
    return f"{row['nevd_iqm']:.3f} [{row['nevd_low']:.3f}, {row['nevd_high']:.3f}]{failed}"


def write_report(out: Union[str, Path], seed: int = 0) -> dict:
    """Compute the statistics of ``out``'s records and write the report files; returns the summary.

    Raises:
        FileNotFoundError / ValueError: ``out`` is not a suite's output directory, or holds no records.
    """
    store = RunStore(out)
    suite = store.suite()
    records = store.records()
    if not records:
        raise ValueError(f"{store.root} holds no records yet: run 'mandril bench run' first")
    rows = summarize_records(records, seed)
    comparisons = compare_with(records, seed=seed)
    aggregate = _aggregate(records, seed)
    root = store.root
    write_csv(root / "summary.csv", rows)
    write_json(root / "summary.json", {"rows": rows, "aggregate": aggregate, "comparisons": comparisons})
    if comparisons:
        write_csv(root / "comparisons.csv", comparisons)
    for family in suite.families:
        family_rows = [r for r in rows if r["family"] == family]
        if family_rows:
            _plot(family_rows, root / "plots" / f"{family}.png", f"{suite.name}: {family} ({suite.families[family].env_id})", "split", suite.methods)
    _plot(aggregate, root / "plots" / "aggregate.png", f"{suite.name}: all families", None, suite.methods)
    atomic_write_text(root / "report.md", _markdown(suite, store, records, rows, comparisons, aggregate))
    return {"rows": rows, "comparisons": comparisons, "aggregate": aggregate}


def _markdown(suite: Suite, store: RunStore, records: list[dict], rows: list[dict], comparisons: list[dict], aggregate: list[dict]) -> str:
    units = units_of(suite)
    status = store.status(units)
    total_left = sum(v["left"] for v in status.values())
    failed = sum(1 for r in records if r.get("error"))
    lines = [f"# Benchmark `{suite.name}`", ""]
    if suite.description:
        lines += [suite.description.strip(), ""]
    lines += [
        "Scores: **normalized EVD** (0: as good as the expert; 1: as bad as a uniform random policy), interquartile mean "
        "[95% stratified bootstrap interval over held-out tasks, seeds as runs]. Raw EVD, success and held-out demo NLL "
        "are in `summary.csv`. A failed cell (a diverged fit) is scored as the zero reward on the same task and counted.",
        "",
        f"Cells: {len(records)} of {sum(u.n_tasks for u in units)} done" + (f" ({total_left} left: the run is incomplete)" if total_left else "")
        + f"; {failed} failed. Seeds {list(suite.seeds)}; likelihood `{suite.likelihood}` for every MaxEnt-family method.",
        "",
    ]
    for method, limits in suite.cells.items():
        scope = [f"families {', '.join(limits.families)}" if limits.families else "", f"splits {', '.join(limits.splits)}" if limits.splits else "",
                 f"n = {', '.join(map(str, limits.n_demos))}" if limits.n_demos else "", f"the first {limits.n_tasks} tasks of each split" if limits.n_tasks else "",
                 f"seeds {list(limits.seeds)}" if limits.seeds else ""]
        lines.append(f"- `{method}` runs on a reduced grid: " + "; ".join(part for part in scope if part) + " (its comparisons rest on those cells alone).")
    if suite.cells:
        lines.append("")
    verdicts = [c for c in comparisons]
    if verdicts:
        counts = {v: sum(1 for c in verdicts if c["verdict"] == v) for v in ("win", "tie", "loss", "too few tasks")}
        lines += ["## Where MandRIL wins, ties and loses", "",
                  f"Against each other method on the same cells, `P(MandRIL better)` on normalized EVD (rliable's probability of improvement) "
                  f"with a 95% interval: {counts['win']} wins (interval above 1/2), {counts['tie']} ties, {counts['loss']} losses "
                  f"(interval below 1/2), over families x splits x n x methods"
                  + (f"; {counts['too few tasks']} comparisons on fewer than {MIN_TASKS_FOR_VERDICT} common tasks get no verdict (P shown)" if counts["too few tasks"] else "")
                  + ".", ""]
        for family in suite.families:
            for split in suite.families[family].splits:
                here = [c for c in verdicts if c["family"] == family and c["split"] == split]
                if not here:
                    continue
                parts = []
                for verdict in ("loss", "tie", "win", "too few tasks"):
                    named = [f"{c['method']} (n={c['n_demos']}, P={c['p_better']:.2f})" for c in here if c["verdict"] == verdict]
                    if named:
                        parts.append(f"**{ {'win': 'wins', 'tie': 'ties', 'loss': 'losses', 'too few tasks': 'too few tasks to call'}[verdict]}**: " + ", ".join(named))
                lines += [f"- `{family}` / `{split}`: " + "; ".join(parts)]
        lines.append("")
    lines += ["## Normalized EVD by family", ""]
    for family, spec in suite.families.items():
        lines += [f"### {family} (`{spec.env_id}` {json.dumps(spec.env_kwargs)})", "", f"![{family}](plots/{family}.png)", ""]
        for split in spec.splits:
            here = [r for r in rows if r["family"] == family and r["split"] == split]
            if not here:
                continue
            ns = sorted({r["n_demos"] for r in here})
            lines += [f"`{split}`:", "", "| method | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
            for method in suite.methods:
                by_n = {r["n_demos"]: r for r in here if r["method"] == method}
                if by_n:
                    name = f"**{method}**" if method == HEADLINE_METHOD else method
                    lines.append(f"| {name} | " + " | ".join(_cell(by_n.get(n)) for n in ns) + " |")
            lines.append("")
    if aggregate:
        ns = sorted({r["n_demos"] for r in aggregate})
        lines += ["## All families together", "", "![aggregate](plots/aggregate.png)", "", "| method | families | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|---|" + "---|" * len(ns)]
        for method in suite.methods:
            by_n = {r["n_demos"]: r for r in aggregate if r["method"] == method}
            if by_n:
                families = sorted({f for r in by_n.values() for f in r["families"]})
                lines.append(f"| {method} | {len(families)} | " + " | ".join("" if n not in by_n else f"{by_n[n]['nevd_iqm']:.3f} [{by_n[n]['nevd_low']:.3f}, {by_n[n]['nevd_high']:.3f}]" for n in ns) + " |")
        lines.append("")
    seconds: dict[str, float] = defaultdict(float)
    for r in records:
        seconds[r["method"]] += float(r.get("seconds") or 0.0)
    preparation = store.preparation_seconds()
    lines += ["## Wall time", "", "| method | fitting (s, all cells) | preparation (s) |", "|---|---|---|"]
    for method in suite.methods:
        prepared = sum(v for k, v in preparation.items() if k.split("--")[0] == method)
        lines.append(f"| {method} | {seconds[method]:.1f} | {prepared:.1f} |")
    lines += ["", "## Settings", ""]
    for family in suite.families:
        lines += [f"`{family}`:", ""]
        for method in suite.methods:
            if not suite.runs_on(method, family):
                continue
            settings = suite.make_method(method, family, suite.seeds[0]).settings()
            settings.pop("seed", None)
            lines.append(f"- `{method}` ({suite.config_hash(method, family)}): `{json.dumps(settings, sort_keys=True)}`")
        lines.append("")
    versions = _versions()
    lines += [
        "## Reproduce",
        "",
        f"Suite digest `{suite.digest()}`; git commit `{_commit()}`; machine {platform.machine()} {platform.system()}, "
        f"{__import__('os').cpu_count()} CPUs; versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        f"Report written {datetime.date.today().isoformat()}. The full suite is in `suite.json`; every cell's record in `records/`.",
        "",
    ]
    return "\n".join(lines)
