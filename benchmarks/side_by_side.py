"""A git revision's fits against this checkout's, side by side in one process, on a suite's cells.

    .venv/bin/python benchmarks/side_by_side.py --against 4ace8cc                    # maxent conv cells of gridworld
    .venv/bin/python benchmarks/side_by_side.py --against 4ace8cc --methods maxent,pretrain_finetune \\
        --families gridworld,gridworld_intent --n-demos 1,4,16 --repeats 3

The package ``mandril/`` of ``--against`` is extracted (``git archive``) into a temporary folder and
imported under another name (``mandril_at_rev``; its imports rewritten), next to this checkout's
``mandril``; ``mandril_envs`` is this checkout's for both. For each method, family, split and number of
demos, the unit's problems are built by each side's :func:`mandril.bench.work.unit_problems` and fitted
by each side's ``fit_batch``, alternately (the side that goes first alternates), ``--repeats`` times;
process CPU time, medians. Prints both times, their ratio, and whether every task's reward table,
steps and loss are identical (else the largest relative reward difference).

A method that needs a preparation is prepared on each side by a short training (``--prepare-iterations``
iterations on a pool of ``--prepare-tasks`` training tasks, the same on both sides): enough to time the
fits from trained weights, not the suite's preparation. The revision must have ``unit_problems`` and
``Suite.make_method(method, family, seed, n_demos)`` (issue 21 and later).
"""

from __future__ import annotations

import argparse
import importlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OLD = "mandril_at_rev"
# imports of the package and the module paths it names in strings (lazy imports)
_IMPORT = re.compile(r"\b(from|import) mandril(\.| )")
_STRING = re.compile(r"([\"'])mandril\.(?=[a-z])")


def extract(revision: str, folder: Path) -> None:
    """``mandril/`` of ``revision`` as the package :data:`OLD` under ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "mandril"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "mandril").rename(folder / OLD)
    for path in (folder / OLD).rglob("*.py"):
        text = path.read_text()
        path.write_text(_STRING.sub(rf"\1{OLD}.", _IMPORT.sub(rf"\1 {OLD}\2", text)))


def build(package: str, suite_path: str, method_name: str, family: str, split: str, n: int, n_tasks: int, states: dict, args: argparse.Namespace) -> tuple[Any, list]:
    """``(method, problems)`` of one unit by ``package``'s code (a prepared method trained briefly, once per family)."""
    bench = importlib.import_module(f"{package}.bench")
    cells = importlib.import_module(f"{package}.bench.cells")
    work = importlib.import_module(f"{package}.bench.work")
    suite = bench.load_suite(suite_path)
    method = suite.make_method(method_name, family, suite.seeds[0], n)
    if method.needs_preparation:
        key = (method_name, family)
        if key not in states:
            from mandril_envs.dataset import collect
            from mandril_envs.demos import ExpertSettings

            spec = suite.families[family]
            iterations = {name: args.prepare_iterations for name in ("iterations", "pretrain_iterations") if hasattr(method.config, name)}
            method.config = replace(method.config, **iterations)
            pool = collect(spec.env_id, args.prepare_tasks, spec.train.n_demos, "train", spec.train.task_seed, spec.train.demo_seed, ExpertSettings(**asdict(spec.expert)), spec.env_kwargs)
            method.prepare(pool)
            states[key] = method.state_dict()
        else:
            method.load_state_dict(states[key])
    unit = cells.Unit(family, split, method_name, "", suite.seeds[0], n, n_tasks, False)
    problems, _ = work.unit_problems(suite, unit, method)
    return method, problems


def compare(old: list, new: list) -> tuple[bool, float]:
    """Whether every task's reward, steps and loss are identical; the largest relative reward difference."""
    same, worst = True, 0.0
    for a, b in zip(old, new):
        if not (hasattr(a, "reward") and hasattr(b, "reward")):
            same = same and type(a) is type(b) and str(a) == str(b)
            continue
        worst = max(worst, float(np.abs(a.reward - b.reward).max() / max(np.abs(a.reward).max(), 1e-300)))
        same = same and np.array_equal(a.reward, b.reward) and a.info.get("steps") == b.info.get("steps") and a.info.get("loss") == b.info.get("loss")
    return same, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="the git revision to compare with (its mandril/ package)")
    parser.add_argument("--suite", default=str(ROOT / "benchmarks" / "suites" / "quick.toml"))
    parser.add_argument("--methods", default="maxent", help="comma-separated methods")
    parser.add_argument("--families", default="gridworld", help="comma-separated families")
    parser.add_argument("--splits", default="", help="comma-separated splits (default: the family's first)")
    parser.add_argument("--n-demos", default="1,8,32", help="comma-separated demo counts")
    parser.add_argument("--tasks", type=int, default=0, help="tasks per unit (default: the suite's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each side (median reported)")
    parser.add_argument("--prepare-iterations", type=int, default=30, help="training iterations of a prepared method (each side)")
    parser.add_argument("--prepare-tasks", type=int, default=40, help="training tasks of a prepared method's pool")
    args = parser.parse_args()
    if args.repeats < 1 or args.prepare_iterations < 0 or args.prepare_tasks < 1:
        print(f"side_by_side: --repeats and --prepare-tasks must be >= 1 and --prepare-iterations >= 0, got {args.repeats}, {args.prepare_tasks}, {args.prepare_iterations}", file=sys.stderr)
        sys.exit(2)

    import torch

    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="side_by_side_"))
    extract(args.against, folder)
    sys.path.insert(0, str(folder))
    from mandril.bench import load_suite

    suite = load_suite(args.suite)
    sides = {"old": (OLD, {}), "new": ("mandril", {})}
    methods, families = args.methods.split(","), args.families.split(",")
    print(f"{args.against} (old) against this checkout (new): {', '.join(methods)} on {', '.join(families)}; process CPU time, median of {args.repeats}")
    # warm-up: a process's first fit pays one-time imports (about a second); neither side is timed with them
    for name, (package, states) in sides.items():
        for method_name in methods:
            method, problems = build(package, args.suite, method_name, families[0], suite.families[families[0]].splits[0], 1, 2, states, args)
            method.config = replace(method.config, max_steps=2) if hasattr(method.config, "max_steps") else method.config
            method.fit_batch(problems)
    totals = {"old": 0.0, "new": 0.0}
    for family in families:
        spec = suite.families[family]
        splits = args.splits.split(",") if args.splits else spec.splits[:1]
        for method_name in methods:
            if not suite.runs_on(method_name, family):
                continue
            for split in splits:
                for n in (int(x) for x in args.n_demos.split(",")):
                    built = {name: build(package, args.suite, method_name, family, split, n, args.tasks or spec.n_tasks, states, args) for name, (package, states) in sides.items()}
                    times: dict[str, list[float]] = {"old": [], "new": []}
                    outputs: dict[str, list] = {}
                    for repeat in range(args.repeats):
                        for name in ("old", "new") if repeat % 2 == 0 else ("new", "old"):
                            method, problems = built[name]
                            start = time.process_time()
                            outputs[name] = method.fit_batch(problems)
                            times[name].append(time.process_time() - start)
                    same, worst = compare(outputs["old"], outputs["new"])
                    old, new = statistics.median(times["old"]), statistics.median(times["new"])
                    totals["old"], totals["new"] = totals["old"] + old, totals["new"] + new
                    verdict = "identical" if same else f"DIFFERENT (max relative reward difference {worst:.1e})"
                    print(f"  {family:18s} {split:12s} {method_name:18s} n={n:<3d} old {old:7.2f} s  new {new:7.2f} s  {old / new:5.2f}x  {verdict}", flush=True)
    print(f"all: old {totals['old']:.1f} s, new {totals['new']:.1f} s: {totals['old'] / max(totals['new'], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
