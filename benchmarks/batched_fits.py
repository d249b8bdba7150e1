"""Batched fits against one task at a time, on a suite's cells, in one process.

    .venv/bin/python benchmarks/batched_fits.py                       # the quick suite's MaxEnt cells
    .venv/bin/python benchmarks/batched_fits.py --suite benchmarks/suites/smoke.toml --repeats 1
    .venv/bin/python benchmarks/batched_fits.py --help

For each batched MaxEnt-family method of the suite (``maxent_tabular``, ``maxent_linear``, ``maxent``)
and each family, split and number of demos of the suite, the unit's tasks are fitted twice: all at
once (``fit_batch``: what the harness does) and one task at a time (``fit`` per task), alternately,
``--repeats`` times. Prints the median times, their ratio, and the largest difference between the two
reward tables (the batched fit of a task must be the fit of that task alone).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default=str(ROOT / "benchmarks" / "suites" / "quick.toml"), help="suite file whose cells are fitted")
    parser.add_argument("--methods", default="maxent_tabular,maxent_linear,maxent", help="comma-separated batched methods")
    parser.add_argument("--n-demos", default="", help="comma-separated demo counts (default: the suite's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each side (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this process's CPU time (steadier on a machine other jobs load)")
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)

    from mandril.bench import load_suite
    from mandril.bench.cells import Unit
    from mandril.bench.work import unit_problems

    suite = load_suite(args.suite)
    wanted = [m for m in args.methods.split(",") if m in suite.methods]
    print(f"{suite.name}: {', '.join(wanted)}; {platform.machine()}, {args.threads} torch thread(s), torch {torch.__version__}, {args.clock} time, median of {args.repeats}")
    total_batched = total_single = 0.0
    for family, spec in suite.families.items():
        counts = [int(x) for x in args.n_demos.split(",")] if args.n_demos else suite.family_n_demos(family)
        for method_name in wanted:
            if not suite.runs_on(method_name, family):
                continue
            for split in spec.splits:
                for n in counts:
                    unit = Unit(family, split, method_name, "", suite.seeds[0], n, spec.n_tasks, False)
                    method = suite.make_method(method_name, family, suite.seeds[0], n)  # with its per-n settings, as the harness
                    problems, _ = unit_problems(suite, unit, method)
                    batched_times, single_times = [], []
                    for _ in range(args.repeats):
                        start = clock()
                        together = method.fit_batch(problems)
                        batched_times.append(clock() - start)
                        start = clock()
                        alone = [method.fit_batch([p])[0] for p in problems]
                        single_times.append(clock() - start)
                    diff = max(float(np.abs(a.reward - b.reward).max()) for a, b in zip(together, alone) if hasattr(a, "reward") and hasattr(b, "reward"))
                    b, s = statistics.median(batched_times), statistics.median(single_times)
                    total_batched, total_single = total_batched + b, total_single + s
                    print(f"  {family:20s} {split:12s} n={n:<3d} {method_name:15s} {len(problems)} tasks: batched {b:7.2f} s, one at a time {s:7.2f} s, "
                          f"{s / b:5.1f}x; max |diff| {diff:.1e}", flush=True)
    print(f"all cells: batched {total_batched:.1f} s, one at a time {total_single:.1f} s: {total_single / total_batched:.1f}x")


if __name__ == "__main__":
    main()
