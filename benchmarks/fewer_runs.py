"""What running some methods on fewer runs or tasks would cost in verdicts: a run's comparisons recomputed on subsets.

    .venv/bin/python benchmarks/fewer_runs.py benchmarks/results/standard                 # AIRL, GAIL and BC
    .venv/bin/python benchmarks/fewer_runs.py benchmarks/results/standard --methods gail --json out.json

A suite is cheaper when its most expensive methods run on fewer runs or tasks; the question is what that costs in
verdicts. For each subset below, the comparisons of MandRIL with every other method are recomputed
(:func:`mandril.bench.analysis.compare_with`: the same rule, the same correction over all comparisons) with the
chosen methods' cells reduced to the subset and every other method's kept, and the chosen methods' verdicts are
compared with the full run's:

* ``first run``: the chosen methods' cells of the first run (seed) only;
* ``first two runs``: of the first two runs;
* ``half the tasks``: every run, the first half of each split's tasks (by task index).

Prints, per subset, how many of the chosen methods' verdicts are the same, how many of the full run's robust wins
and losses change, and how many turn a win into a loss or back.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Callable


def subsets(records: list[dict], methods: set[str]) -> dict[str, Callable[[dict], bool]]:
    """The reductions tried, each a predicate on one of the chosen methods' records (kept when true)."""
    seeds = sorted({r["seed"] for r in records if r["method"] in methods})
    tasks: dict[tuple, set] = {}
    for r in records:
        if r["method"] in methods:
            tasks.setdefault((r["family"], r["split"]), set()).add(r["task"])
    first_half = {k: set(sorted(v)[: max(1, len(v) // 2)]) for k, v in tasks.items()}
    return {"first run": lambda r: r["seed"] == seeds[0],
            "first two runs": lambda r: r["seed"] in seeds[:2],
            "half the tasks": lambda r: r["task"] in first_half[(r["family"], r["split"])]}


def cost(records: list[dict], methods: set[str], order: list[str]) -> dict:
    """``{"full": counts, subset name: {"same", "of", "robust_changed", "robust", "flips", "verdicts"}}``."""
    from mandril.bench.analysis import compare_with, comparison_key

    full = {comparison_key(c): c for c in compare_with(records, order=order) if c["method"] in methods}
    if not full:
        raise ValueError(f"no comparison of MandRIL with {sorted(methods)} in these records")
    robust = [k for k, c in full.items() if c["robust"] == "yes"]
    out: dict = {"full": dict(Counter(c["verdict"] for c in full.values()))}
    for name, keep in subsets(records, methods).items():
        part = {comparison_key(c): c for c in compare_with([r for r in records if r["method"] not in methods or keep(r)], order=order) if c["method"] in methods}
        verdict = {k: part[k]["verdict"] if k in part else "missing" for k in full}
        out[name] = {"same": sum(verdict[k] == c["verdict"] for k, c in full.items()), "of": len(full),
                     "robust_changed": sum(verdict[k] != full[k]["verdict"] for k in robust), "robust": len(robust),
                     "flips": sum({verdict[k], c["verdict"]} == {"win", "loss"} for k, c in full.items()),
                     "verdicts": dict(Counter(verdict.values()))}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[2].replace("\n", " "), formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Example: .venv/bin/python benchmarks/fewer_runs.py benchmarks/results/standard --methods airl,gail,bc")
    parser.add_argument("results", help="a run's output folder or a published folder (records/ or records.jsonl.gz)")
    parser.add_argument("--methods", default="airl,gail,bc", help="comma-separated methods whose cells are reduced (default: airl,gail,bc)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    from mandril.bench import units_of
    from mandril.bench.store import RunStore

    folder = Path(args.results)
    if not (folder / "suite.json").is_file():
        parser.exit(2, f"fewer_runs.py: error: results: {folder} is not a run's or a published folder (no suite.json)\n")
    store = RunStore(folder)
    suite = store.suite()
    methods = {m for m in args.methods.split(",") if m}
    unknown = sorted(methods - set(suite.methods))
    if unknown or not methods:
        parser.exit(2, f"fewer_runs.py: error: --methods: {unknown or 'nothing'} not among the suite's methods {list(suite.methods)}\n")
    records = store.scan(units_of(suite)).records
    try:
        result = cost(records, methods, list(suite.methods))
    except ValueError as error:
        parser.exit(2, f"fewer_runs.py: error: {error}\n")
    print(f"{', '.join(sorted(methods))} in {folder}: {sum(result['full'].values())} comparisons with MandRIL, {result['full']}")
    for name, row in result.items():
        if name != "full":
            print(f"{name:15s} same verdict {row['same']} of {row['of']}; robust wins and losses changed {row['robust_changed']} of {row['robust']}; "
                  f"win <-> loss {row['flips']}; {row['verdicts']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
