"""Does a run's verdicts survive a second look? Its robust verdicts checked on a replicate.

A replicate (:func:`mandril.bench.suite.replicate`, ``mandril bench run SUITE --replicate 1``) is the same
suite on other held-out tasks with other runs. :func:`compare_runs` takes the first run's robust wins and
losses (those that held on both halves of its tasks: :func:`mandril.bench.analysis.compare_with`) and
looks each up in the replicate's ``comparisons.csv``: it **agrees** (the same verdict), is **not
replicated** (a tie there), or **flips** (a win became a loss or back). It also counts every verdict of
the first run against the replicate's (a confusion table), ties included.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Union

from mandril.bench.analysis import COMPARISON_KEY, comparison_key

__all__ = ["compare_runs", "replication_markdown", "VERDICTS"]

#: The verdicts a comparison can have (the rows of the confusion table).
VERDICTS = ("win", "tie", "loss", "too few tasks")


def _comparisons(folder: Path) -> dict[tuple, dict]:
    path = folder / "comparisons.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no comparisons.csv: give a run's folder after its report ('mandril bench report'), or a published one")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "robust" not in rows[0]:
        raise ValueError(f"{path} has no 'robust' column (written before verdicts were replicated on halves): rewrite it with 'mandril bench report {folder}'")
    return {comparison_key(row): row for row in rows}


def _held_out(folder: Path) -> tuple[dict, list]:
    """Each family's held-out task seed and the runs, from the folder's suite.json."""
    suite = json.loads((folder / "suite.json").read_text())["suite"]
    return {name: family["task_seed"] for name, family in suite["families"].items()}, list(suite["seeds"])


def compare_runs(first: Union[str, Path], second: Union[str, Path]) -> dict:
    """The first run's robust verdicts checked on the second (module docstring).

    Returns:
        ``{"robust": n, "agree": k, "share": k / n (None when n = 0), "not_replicated": [...], "flips": [...],
        "confusion": {(first verdict, second verdict): count}, "shared_tasks": [families whose held-out task seed is the
        same in both], "shared_runs": [seeds in both]}``; rows are the first run's comparison rows with ``"second"``
        (the replicate's verdict, or ``"missing"``).
    """
    first, second = Path(first), Path(second)
    mine, theirs = _comparisons(first), _comparisons(second)
    robust, not_replicated, flips, agree = 0, [], [], 0
    confusion: Counter = Counter()
    for key, row in mine.items():
        other = theirs.get(key)
        verdict, again = row["verdict"], (other["verdict"] if other else "missing")
        confusion[(verdict, again)] += 1
        if verdict not in ("win", "loss") or row["robust"] != "yes":
            continue
        robust += 1
        entry = {**{k: row[k] for k in COMPARISON_KEY}, "first": verdict, "second": again}
        if again == verdict:
            agree += 1
        elif again in ("win", "loss"):
            flips.append(entry)
        else:
            not_replicated.append(entry)
    seeds_a, runs_a = _held_out(first)
    seeds_b, runs_b = _held_out(second)
    return {"robust": robust, "agree": agree, "share": agree / robust if robust else None, "not_replicated": not_replicated, "flips": flips,
            "confusion": dict(confusion), "shared_tasks": sorted(f for f in seeds_a if seeds_b.get(f) == seeds_a[f]),
            "shared_runs": sorted(set(runs_a) & set(runs_b))}


def replication_markdown(result: dict, first: str, second: str) -> str:
    """The comparison as a short markdown page."""
    lines = [f"# Replication of `{first}` by `{second}`", ""]
    if result["shared_tasks"] or result["shared_runs"]:
        lines += [f"**Not an independent replicate**: the same held-out tasks on {result['shared_tasks']}, the same runs {result['shared_runs']}.", ""]
    share = "no robust verdicts to check" if result["share"] is None else f"{result['agree']} of {result['robust']} robust verdicts agree ({100 * result['share']:.0f}%)"
    lines += [f"{share}; {len(result['flips'])} flip (a win became a loss or back); {len(result['not_replicated'])} became ties or were not called.", ""]
    for title, entries in (("Flips", result["flips"]), ("Not replicated", result["not_replicated"])):
        if entries:
            lines += [f"## {title}", ""] + [f"- `{e['family']}` / `{e['split']}` n={e['n_demos']} vs `{e['method']}`: {e['first']} -> {e['second']}" for e in entries] + [""]
    seconds = list(VERDICTS) + ["missing"]
    lines += ["## Every verdict (rows: the first run; columns: the replicate)", "", "| | " + " | ".join(seconds) + " |", "|---|" + "---|" * len(seconds)]
    for verdict in VERDICTS:
        lines.append(f"| {verdict} | " + " | ".join(str(result["confusion"].get((verdict, again), 0)) for again in seconds) + " |")
    return "\n".join(lines) + "\n"
