"""The statistics of a suite's records: summaries with tails, identical methods, verdicts and their replication.

Records are the per-cell dicts of :mod:`mandril.bench.store`. Scores are normalized EVD (lower is better),
arranged per (family, split, n, method) as ``(runs, tasks)`` matrices (rliable's layout: seeds as runs).

* :func:`summarize_records`: per family, split, n and method: the IQM and the mean with 95% stratified
  bootstrap intervals, the share of failures (normalized EVD above :data:`FAILURE_THRESHOLD`) with its
  interval, raw EVD, success, demo NLL.
* :func:`identical_methods`: per family, methods whose records agree on every cell within
  :data:`IDENTICAL_TOLERANCE` (shown once, compared once).
* :func:`compare_with`: the headline method against every other, with the verdict rule of
  :mod:`mandril.eval.verdicts` corrected over all comparisons, and every verdict re-tested on the two
  halves of the tasks (even and odd task index) and on each run separately: a win or loss that does not
  hold on both halves is **fragile**.
* :func:`best_others`: per family, split and n, the other method MandRIL is least likely to beat.
* :func:`more_demos`: per method, family, split, run and n, whether the method is worse with n demos
  than with the fewest (it should never be: more demos carry more information).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from mandril.eval.stats import interval, probability_of_improvement, score_intervals, sign_flip_p_value
from mandril.eval.verdicts import VerdictRule, call_verdicts

__all__ = ["COMPARISON_KEY", "comparison_key", "HEADLINE_METHOD", "REFERENCES", "FAILURE_THRESHOLD", "IDENTICAL_TOLERANCE", "RULE", "HALVES", "fill_failures", "score_matrix",
           "summarize_records", "identical_methods", "compare_with", "best_others", "aggregate", "convergence", "cell_scores", "more_demos"]

#: The method the report compares every other method with.
HEADLINE_METHOD = "mandril"
#: The fields that name one comparison (a row of :func:`compare_with`, or of a report's ``comparisons.csv``).
COMPARISON_KEY = ("family", "split", "n_demos", "method")
#: The reference points (not compared with the headline method: they frame the scores).
REFERENCES = ("expert", "bayes", "zero_reward", "uniform_policy")
#: A cell with normalized EVD above this is a failure (more than a tenth of the way from the expert to a uniform policy).
FAILURE_THRESHOLD = 0.1
#: Methods whose normalized EVD agrees within this on every cell of a family are the same method there.
IDENTICAL_TOLERANCE = 1e-12
#: The verdict rule of reports.
RULE = VerdictRule(alpha=0.05, correction="bh", tolerance=1e-9, min_tasks=5)
#: The fixed split of the tasks for replication: by the parity of the task index.
HALVES = {"even": 0, "odd": 1}
_REPS = 2000
_SCORED = ("evd", "normalized_evd", "learned_return", "demo_nll", "success")


def comparison_key(row: Mapping[str, Any]) -> tuple:
    """The comparison ``row`` is about: its :data:`COMPARISON_KEY` values, in that order."""
    return tuple(row[k] for k in COMPARISON_KEY)


def fill_failures(records: list[dict]) -> tuple[list[dict], int]:
    """Records with each failed cell scored as the zero reward's cell of the same task (if the suite has it),
    and how many failed cells had no such stand-in (dropped)."""
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
        filled.append({**r, **{k: stand_in.get(k) for k in _SCORED}})
    return filled, dropped


def score_matrix(rows: list[dict], key: str = "normalized_evd") -> tuple[np.ndarray, list[int], list[int]]:
    """``(seeds, tasks)`` matrix of ``key`` (NaN where missing), with the seed and task labels."""
    seeds = sorted({r["seed"] for r in rows})
    tasks = sorted({r["task"] for r in rows})
    seed_at, task_at = {s: i for i, s in enumerate(seeds)}, {t: i for i, t in enumerate(tasks)}
    matrix = np.full((len(seeds), len(tasks)), np.nan)
    for r in rows:
        value = r.get(key)
        if value is not None:
            matrix[seed_at[r["seed"]], task_at[r["task"]]] = float(value)
    return matrix, seeds, tasks


def _groups(filled: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in filled:
        groups[(r["family"], r["split"], r["n_demos"], r["method"])].append(r)
    return groups


def identical_methods(records: list[dict], order: Sequence[str] = (), headline: str = HEADLINE_METHOD) -> dict[str, dict[str, str]]:
    """``{family: {method: representative}}`` for every learning method (not the headline, not a reference)
    that gives the same normalized EVD as an earlier one (in ``order``, then by name) on every cell of the
    family, within :data:`IDENTICAL_TOLERANCE`; the representative is the earliest of its group."""
    filled, _ = fill_failures(records)
    cells: dict[str, dict[str, dict[tuple, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in filled:
        if r["method"] in REFERENCES or r["method"] == headline:
            continue
        value = r.get("normalized_evd")
        cells[r["family"]][r["method"]][(r["split"], r["n_demos"], r["seed"], r["task"])] = np.nan if value is None else float(value)
    out: dict[str, dict[str, str]] = {}
    for family, by_method in sorted(cells.items()):
        methods = [m for m in order if m in by_method] + sorted(set(by_method) - set(order))
        representatives: list[str] = []
        same: dict[str, str] = {}
        for method in methods:
            mine = by_method[method]
            for rep in representatives:
                theirs = by_method[rep]
                if mine.keys() == theirs.keys() and all(abs(mine[k] - theirs[k]) <= IDENTICAL_TOLERANCE for k in mine):
                    same[method] = rep
                    break
            else:
                representatives.append(method)
        if same:
            out[family] = same
    return out


def _twins(identical: dict[str, dict[str, str]], family: str, method: str) -> list[str]:
    return sorted(m for m, rep in identical.get(family, {}).items() if rep == method)


def summarize_records(records: list[dict], seed: int = 0, order: Sequence[str] = ()) -> list[dict]:
    """One row per (family, split, n_demos, method): cells, failures, the IQM and the mean of normalized EVD
    with intervals, the share of failures (above :data:`FAILURE_THRESHOLD`) with its interval, raw EVD,
    success, demo NLL, seconds per cell, and ``same_as`` (the method it is identical to on the family)."""
    filled, _ = fill_failures(records)
    identical = identical_methods(records, order)
    errors: dict[tuple, int] = defaultdict(int)
    for r in records:
        if r.get("error"):
            errors[(r["family"], r["split"], r["n_demos"], r["method"])] += 1
    rows = []
    for (family, split, n, method), members in sorted(_groups(filled).items()):
        normalized, _, _ = score_matrix(members, "normalized_evd")
        raw, _, _ = score_matrix(members, "evd")
        complete = ~np.isnan(normalized).any(axis=0)
        normalized, raw = normalized[:, complete], raw[:, complete]
        if normalized.size == 0:
            continue
        estimates = score_intervals(normalized, FAILURE_THRESHOLD, reps=_REPS, seed=seed)
        headline, mean, failing = estimates["iqm"], estimates["mean"], estimates["above"]
        raw_complete = raw[:, ~np.isnan(raw).any(axis=0)]
        mean_raw = interval("mean", [raw_complete], reps=_REPS, seed=seed) if raw_complete.size else {"point": None, "low": None, "high": None}
        success = [r["success"] for r in members if r.get("success") is not None]
        nll = [r["demo_nll"] for r in members if r.get("demo_nll") is not None]
        rows.append({
            "family": family, "split": split, "n_demos": n, "method": method, "same_as": identical.get(family, {}).get(method, ""),
            "cells": len(members), "failed": errors[(family, split, n, method)], "seeds": normalized.shape[0], "tasks": normalized.shape[1],
            "nevd_iqm": headline["point"], "nevd_low": headline["low"], "nevd_high": headline["high"],
            "nevd_mean": mean["point"], "nevd_mean_low": mean["low"], "nevd_mean_high": mean["high"],
            "fail_share": failing["point"], "fail_low": failing["low"], "fail_high": failing["high"],
            "evd_mean": mean_raw["point"], "evd_low": mean_raw["low"], "evd_high": mean_raw["high"],
            "success": float(np.mean(success)) if success else None, "demo_nll": float(np.mean(nll)) if nll else None,
            "seconds_per_cell": float(np.mean([r["seconds"] for r in members if r.get("seconds") is not None] or [0.0])),
        })
    return rows


def _test(mine: np.ndarray, theirs: np.ndarray, rule: VerdictRule) -> tuple[float, float]:
    """``(P(mine better), raw p-value)`` for lower-is-better ``(runs, tasks)`` matrices."""
    return probability_of_improvement(-mine, -theirs, rule.tolerance), sign_flip_p_value(-mine, -theirs, rule.tolerance)


def compare_with(records: list[dict], headline: str = HEADLINE_METHOD, seed: int = 0, rule: VerdictRule = RULE, order: Sequence[str] = ()) -> list[dict]:
    """``P(headline better)`` against every other learning method on their common cells, with the verdict
    (corrected over all the comparisons returned) and its replication (module docstring).

    A method identical to an earlier one on a family (:func:`identical_methods`) is compared once, under
    the earlier one's name (``identical`` names the others).

    Returns:
        One row per (family, split, n, method): ``runs``, ``tasks``, ``p_better`` with ``p_low``/``p_high``
        (95% stratified bootstrap over tasks and runs), ``p_value`` (exact sign-flip test), ``p_adjusted``,
        ``verdict``, ``verdict_even``/``verdict_odd`` (the same test, uncorrected, on the tasks of even /
        odd index), ``verdict_runs`` (``seed:verdict`` per run), and ``robust`` (``yes``/``no`` for a win or
        loss: whether it holds on both halves; empty otherwise).
    """
    filled, _ = fill_failures(records)
    identical = identical_methods(records, order, headline)
    groups: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in filled:
        groups[(r["family"], r["split"], r["n_demos"])][r["method"]].append(r)
    rows, subsets = [], []
    for (family, split, n), by_method in sorted(groups.items()):
        if headline not in by_method:
            continue
        for other, members in sorted(by_method.items()):
            if other == headline or other in REFERENCES or other in identical.get(family, {}):
                continue
            keys = {(r["seed"], r["task"]) for r in members} & {(r["seed"], r["task"]) for r in by_method[headline]}
            mine, seeds, tasks = score_matrix([r for r in by_method[headline] if (r["seed"], r["task"]) in keys])
            theirs, _, _ = score_matrix([r for r in members if (r["seed"], r["task"]) in keys])
            complete = ~(np.isnan(mine).any(axis=0) | np.isnan(theirs).any(axis=0))
            if not complete.any():
                continue
            mine, theirs = mine[:, complete], theirs[:, complete]
            task_ids = np.asarray(tasks)[complete]
            estimate = interval("poi", [-mine, -theirs], reps=_REPS, seed=seed, tolerance=rule.tolerance)  # lower EVD is better
            rows.append({"family": family, "split": split, "n_demos": n, "method": other, "identical": ";".join(_twins(identical, family, other)),
                         "runs": mine.shape[0], "tasks": mine.shape[1], "p_better": estimate["point"], "p_low": estimate["low"], "p_high": estimate["high"],
                         "p_value": sign_flip_p_value(-mine, -theirs, rule.tolerance)})
            parts = {f"half_{name}": (mine[:, task_ids % 2 == parity], theirs[:, task_ids % 2 == parity]) for name, parity in HALVES.items()}
            parts.update({f"run_{s}": (mine[i : i + 1], theirs[i : i + 1]) for i, s in enumerate(seeds)})
            subsets.append(parts)
    verdicts, adjusted = call_verdicts(rule, [r["p_value"] for r in rows], [r["p_better"] for r in rows], [r["tasks"] for r in rows])
    for row, verdict, p_adjusted, parts in zip(rows, verdicts, adjusted, subsets):
        replicated = {}
        for name, (mine, theirs) in parts.items():
            if mine.shape[1] == 0:
                replicated[name] = "too few tasks"
                continue
            p_better, p_value = _test(mine, theirs, rule)
            replicated[name] = call_verdicts(rule, [p_value], [p_better], [mine.shape[1]], corrected=False)[0][0]
        row.update({"p_adjusted": None if np.isnan(p_adjusted) else float(p_adjusted), "verdict": verdict,
                    "verdict_even": replicated["half_even"], "verdict_odd": replicated["half_odd"],
                    "verdict_runs": ";".join(f"{k[4:]}:{v}" for k, v in replicated.items() if k.startswith("run_")),
                    "robust": ("yes" if replicated["half_even"] == replicated["half_odd"] == verdict else "no") if verdict in ("win", "loss") else ""})
    return rows


def best_others(comparisons: list[dict]) -> list[dict]:
    """Per (family, split, n): the compared method with the lowest ``P(MandRIL better)`` (the one MandRIL is
    least likely to beat; ties broken by the lower interval end, then the name); only comparisons with a verdict."""
    by_cell: dict[tuple, list[dict]] = defaultdict(list)
    for c in comparisons:
        if c["verdict"] != "too few tasks":
            by_cell[(c["family"], c["split"], c["n_demos"])].append(c)
    return [min(rows, key=lambda c: (c["p_better"], c["p_high"], c["method"])) for _, rows in sorted(by_cell.items())]


def aggregate(records: list[dict], seed: int = 0) -> list[dict]:
    """IQM of normalized EVD across every family and split, per method and n (on the cells each method has)."""
    filled, _ = fill_failures(records)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in filled:
        groups[(r["n_demos"], r["method"])].append({**r, "task": f"{r['family']}/{r['split']}/{r['task']}"})
    rows = []
    for (n, method), members in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        matrix, _, _ = score_matrix(members, "normalized_evd")
        matrix = matrix[:, ~np.isnan(matrix).any(axis=0)]
        if matrix.size == 0:
            continue
        estimate = interval("iqm", [matrix], reps=_REPS, seed=seed)
        families = sorted({r["family"] for r in members})
        rows.append({"n_demos": n, "method": method, "families": families, "tasks": matrix.shape[1], "nevd_iqm": estimate["point"], "nevd_low": estimate["low"], "nevd_high": estimate["high"]})
    return rows


def convergence(records: list[dict]) -> dict[str, dict[str, Optional[tuple[int, int]]]]:
    """``{method: {family: (converged, reported) or None}}``: fits whose record says ``info.converged`` true,
    of those that report it (``None``: the method does not report convergence on that family)."""
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    seen: dict[str, set] = defaultdict(set)
    for r in records:
        seen[r["method"]].add(r["family"])
        info = r.get("info") or {}
        if isinstance(info, dict) and isinstance(info.get("converged"), bool):
            pair = counts[r["method"]][r["family"]]
            pair[0] += int(info["converged"])
            pair[1] += 1
    return {method: {family: tuple(counts[method][family]) if family in counts[method] else None for family in sorted(families)}
            for method, families in seen.items()}


def cell_scores(records: list[dict], key: str = "normalized_evd") -> dict[tuple, dict[tuple, float]]:
    """``{(family, split, n, method): {(seed, task): score}}`` of ``key``, failed cells scored as the zero reward
    (:func:`fill_failures`): what paired comparisons across methods or demo counts read."""
    filled, _ = fill_failures(records)
    scores: dict[tuple, dict[tuple, float]] = defaultdict(dict)
    for r in filled:
        if r.get(key) is not None:
            scores[(r["family"], r["split"], r["n_demos"], r["method"])][(r["seed"], r["task"])] = float(r[key])
    return scores


def more_demos(records: list[dict], seed: int = 0, references: Sequence[str] = REFERENCES) -> list[dict]:
    """Per learning method, family, split and run (and all runs together, ``seed = "all"``): its normalized EVD
    with each larger number of demos minus with the fewest, on the same tasks (one row per larger ``n``).

    The difference is paired by task (each run scores the same held-out tasks at every ``n``); its interval is
    the 95% bootstrap interval of the mean difference over tasks (runs within tasks resampled too for the
    ``"all"`` row). ``worse`` is true when the whole interval lies above 0: the method is worse with more
    demos beyond noise. Failed cells count as the zero reward (:func:`fill_failures`).

    Returns:
        Rows ``{method, family, split, seed, n_first, n_last, first, last, difference, low, high, tasks, worse}``.
    """
    cells = {key: scores for key, scores in cell_scores(records).items() if key[3] not in references}
    by_method: dict[tuple, list[int]] = defaultdict(list)
    for family, split, n, method in cells:
        by_method[(method, family, split)].append(n)
    rows = []
    for (method, family, split), ns in sorted(by_method.items()):
        first_n = min(ns)
        for last_n in sorted(n for n in ns if n > first_n):
            rows += _paired_change(cells[(family, split, first_n, method)], cells[(family, split, last_n, method)],
                                   {"method": method, "family": family, "split": split}, first_n, last_n, seed)
    return rows


def _paired_change(first: dict, last: dict, labels: dict, first_n: int, last_n: int, seed: int) -> list[dict]:
    """:func:`more_demos`'s rows for one method, family and split at ``last_n`` against ``first_n``: per run and ``"all"``."""
    rows = []
    common = sorted(set(first) & set(last))
    runs = sorted({s for s, _ in common})
    for run in runs + ["all"]:
        keys = [k for k in common if run == "all" or k[0] == run]
        tasks = sorted({t for _, t in keys})
        if len(tasks) < 2:
            continue
        chosen = runs if run == "all" else [run]
        matrix = np.full((len(chosen), len(tasks)), np.nan)
        for s, t in keys:
            matrix[chosen.index(s), tasks.index(t)] = last[(s, t)] - first[(s, t)]
        matrix = matrix[:, ~np.isnan(matrix).any(axis=0)]
        if matrix.shape[1] < 2:
            continue
        estimate = interval("mean", [matrix], reps=_REPS, seed=seed)
        rows.append({**labels, "seed": run, "n_first": first_n, "n_last": last_n,
                     "first": float(np.mean([first[k] for k in keys])), "last": float(np.mean([last[k] for k in keys])),
                     "difference": estimate["point"], "low": estimate["low"], "high": estimate["high"], "tasks": matrix.shape[1],
                     "worse": bool(estimate["low"] > 0)})
    return rows
