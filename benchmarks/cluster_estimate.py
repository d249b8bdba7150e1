"""The CPU-hours a suite needs (on a cluster or anywhere), from CPU seconds measured here.

    .venv/bin/python benchmarks/cluster_estimate.py                 # the paper suite: measure, then sum
    .venv/bin/python benchmarks/cluster_estimate.py --recompute     # sum again from the saved measurements
    .venv/bin/python benchmarks/cluster_estimate.py --help

What is measured, in this process with one torch thread, as process CPU time (so a busy machine
inflates it little), each after one unmeasured run of the same kind (imports and first calls, which
a cluster's workers pay once): for every method and family of the suite, one unit of ``--tasks`` held-out tasks
at each of the ``--n-demos`` demo counts, through the harness's own :func:`mandril.bench.work.run_unit`
(its per-cell CPU); and for every method that needs a preparation, :func:`run_preparation` on the
family's full training pool at two shortened lengths (``--iterations``), whose difference gives the CPU
of one training iteration and whose rest the fixed cost; building the pool is measured once per family
and counted once per preparation (each preparation job builds it in its worker).

What is summed: over :func:`mandril.bench.cells.units_of` of the suite, each unit's tasks times the
per-cell CPU of its method and family at its demo count (interpolated in log n between the measured
counts, constant beyond them), and over its preparations the fixed cost plus the per-iteration CPU
times the suite's iterations. Batched methods fit a whole unit at once, and the suite's units are
larger than the measured ones, so their cells are overestimated (an upper bound); the rest scale
with the cells. The measurements and the sums are written to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]


def _iteration_setting(method: str) -> Optional[str]:
    """The name of the setting that counts the training iterations of a method with a preparation; ``None``
    for a preparation of fixed length (``map_prior`` fits its pool once), measured once at full length."""
    from mandril.methods import METHODS

    names = [f.name for f in fields(METHODS[method].Config) if f.name.endswith("iterations")]
    if len(names) > 1:
        raise ValueError(f"method {method!r}: expected at most one '*iterations' setting, found {names}")
    return names[0] if names else None


def _with_iterations(suite_data: dict, method: str, iterations: Optional[int]) -> dict:
    """The suite's data with ``method`` trained for ``iterations`` (everywhere it is set; ``None``: as it is)."""
    name = _iteration_setting(method)
    data = json.loads(json.dumps(suite_data))
    if name is None or iterations is None:
        return data
    data.setdefault("settings", {}).setdefault(method, {})[name] = iterations
    for spec in data["families"].values():
        if name in spec.get("methods", {}).get(method, {}):
            spec["methods"][method][name] = iterations
    return data


def _cpu(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.process_time()
    result = fn(*args)
    return result, time.process_time() - start


def measure(suite_path: Path, tasks: int, n_demos: list[int], iterations: tuple[int, int], methods: list[str], progress: bool = True) -> dict:
    """CPU seconds of shortened preparations and of small units of every method and family of the suite."""
    import torch

    from mandril.bench import load_suite
    from mandril.bench import work
    from mandril.bench.cells import Preparation, Unit
    from mandril.bench.work import run_preparation, run_unit
    from mandril.methods import METHODS

    torch.set_num_threads(1)
    suite = load_suite(suite_path)
    data = suite.to_dict()
    seed = suite.seeds[0]
    preparations, cells, pools = [], [], {}
    for family, spec in suite.families.items():
        split = spec.splits[0]
        for method in suite.methods:
            if (methods and method not in methods) or not suite.runs_on(method, family):
                continue
            state = None
            if METHODS[method].needs_preparation:
                if family not in pools:  # built by each preparation job; measured once, with this process's cache emptied
                    work._pool.cache_clear()
                    _, pools[family] = _cpu(work.training_pool, suite, family)
                    if progress:
                        print(f"  built the training pool of {family}: {pools[family]:.1f} CPU s", flush=True)
                preparation = Preparation(method, family, seed, "")
                fixed = _iteration_setting(method) is None
                run_preparation(_with_iterations(data, method, 1), preparation)  # not measured: first imports, first calls
                for length in ((None,) if fixed else iterations):
                    result, cpu = _cpu(run_preparation, _with_iterations(data, method, length), preparation)
                    if result["error"]:
                        raise RuntimeError(f"preparing {method} on {family}: {result['error']}")
                    state = result["state"]
                    preparations.append({"family": family, "method": method, "iterations": length, "cpu_seconds": cpu})
                    if progress:
                        print(f"  prepared {method} on {family}, {'its whole preparation' if length is None else f'{length} iterations'}: {cpu:.1f} CPU s", flush=True)
            limits = suite.cells.get(method)
            counts = [n for n in n_demos if limits is None or limits.allows(n_demos=n)] or list(limits.n_demos[:1])
            run_unit(data, Unit(family, split, method, "", seed, counts[0], 1, METHODS[method].needs_preparation), state)  # not measured
            for n in counts:
                unit = Unit(family, split, method, "", seed, n, tasks, METHODS[method].needs_preparation)
                records, cpu = _cpu(run_unit, data, unit, state)
                errors = [r["error"] for r in records if r["error"]]
                if errors:
                    raise RuntimeError(f"{method} on {family}, n={n}: {errors[0]}")
                cells.append({"family": family, "method": method, "n_demos": n, "tasks": tasks, "cpu_seconds_per_cell": cpu / tasks})
                if progress:
                    print(f"  {method} on {family}, n={n}: {cpu / tasks:.2f} CPU s per cell", flush=True)
    return {"suite": str(suite_path.relative_to(ROOT)) if suite_path.is_relative_to(ROOT) else str(suite_path), "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__, "tasks_per_unit": tasks, "pools": pools, "preparations": preparations, "cells": cells}


def _per_cell(measured: list[dict], n: int) -> float:
    """Per-cell CPU at ``n`` demos: linear in log n between the measured counts, constant beyond them."""
    points = sorted((m["n_demos"], m["cpu_seconds_per_cell"]) for m in measured)
    if n <= points[0][0]:
        return points[0][1]
    for (n0, c0), (n1, c1) in zip(points, points[1:]):
        if n <= n1:
            w = (math.log(n) - math.log(n0)) / (math.log(n1) - math.log(n0))
            return c0 + w * (c1 - c0)
    return points[-1][1]


def estimate(suite_path: Path, measured: dict) -> dict:
    """CPU-hours of every cell and preparation of the suite from the measurements (see the module docstring)."""
    from mandril.bench import load_suite, units_of
    from mandril.bench.cells import preparations_of

    suite = load_suite(suite_path)
    measured_methods = {m["method"] for m in measured["cells"]}
    units = [u for u in units_of(suite) if u.method in measured_methods]
    missing = sorted(set(suite.methods) - measured_methods)
    by_method: dict[str, dict] = {}

    def row(method: str) -> dict:
        return by_method.setdefault(method, {"cells": 0, "cell_cpu_hours": 0.0, "preparations": 0, "preparation_cpu_hours": 0.0})

    for unit in units:
        points = [m for m in measured["cells"] if m["family"] == unit.family and m["method"] == unit.method]
        if not points:
            raise ValueError(f"no measurement of {unit.method} on {unit.family}: measure again with that method")
        entry = row(unit.method)
        entry["cells"] += unit.n_tasks
        entry["cell_cpu_hours"] += unit.n_tasks * _per_cell(points, unit.n_demos) / 3600
    longest = 0.0
    for preparation in preparations_of(units):
        mine = [m for m in measured["preparations"] if m["family"] == preparation.family and m["method"] == preparation.method]
        setting = _iteration_setting(preparation.method)
        if setting is None:  # a preparation of fixed length, measured whole
            if not mine:
                raise ValueError(f"no measurement of preparing {preparation.method} on {preparation.family}")
            cost = max(m["cpu_seconds"] for m in mine)
        else:
            points = sorted((m["iterations"], m["cpu_seconds"]) for m in mine if m["iterations"] is not None)
            if len(points) < 2:
                raise ValueError(f"no two measured lengths of preparing {preparation.method} on {preparation.family}")
            (i0, c0), (i1, c1) = points[0], points[-1]
            per_iteration = max(0.0, (c1 - c0) / (i1 - i0))
            full = suite.method_settings(preparation.method, preparation.family, preparation.seed).get(setting)
            if full is None:
                from mandril.methods import METHODS

                full = next(f.default for f in fields(METHODS[preparation.method].Config) if f.name == setting)
            cost = c0 + per_iteration * (full - i0)
        hours = (measured["pools"][preparation.family] + cost) / 3600
        entry = row(preparation.method)
        entry["preparations"] += 1
        entry["preparation_cpu_hours"] += hours
        longest = max(longest, hours)
    cells = sum(r["cell_cpu_hours"] for r in by_method.values())
    preparations = sum(r["preparation_cpu_hours"] for r in by_method.values())
    return {"suite": suite.name, "not_measured": missing, "cells": sum(u.n_tasks for u in units), "cell_cpu_hours": cells, "preparation_cpu_hours": preparations,
            "total_cpu_hours": cells + preparations, "longest_preparation_hours": longest, "by_method": by_method}


def main(argv: Optional[list[str]] = None) -> dict:
    """The command line (see the module docstring); returns what it writes to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default=str(ROOT / "benchmarks" / "suites" / "paper.toml"), help="suite file")
    parser.add_argument("--tasks", type=int, default=2, help="held-out tasks per measured unit")
    parser.add_argument("--n-demos", default="1,32", help="comma-separated demo counts measured")
    parser.add_argument("--iterations", default="5,45", help="the two shortened preparation lengths measured")
    parser.add_argument("--methods", default="", help="comma-separated methods to measure (default: every method of the suite)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cluster" / "estimate.json"), help="JSON file of the measurements and the sums")
    parser.add_argument("--recompute", action="store_true", help="do not measure: sum again from the measurements in --out")
    parser.add_argument("--cores", type=int, default=64, help="cluster cores, for the wall-time line")
    args = parser.parse_args(argv)
    from mandril.core.io import write_json

    suite_path, out = Path(args.suite).resolve(), Path(args.out)
    if args.recompute:
        measured = json.loads(out.read_text())["measured"]
    else:
        lengths = tuple(int(x) for x in args.iterations.split(","))
        if len(lengths) != 2 or not 0 < lengths[0] < lengths[1]:
            raise SystemExit(f"--iterations must be two increasing positive counts, got {args.iterations!r}")
        counts = [int(x) for x in args.n_demos.split(",")]
        print(f"measuring {suite_path.name}: units of {args.tasks} tasks at n = {counts}, preparations of {lengths} iterations", flush=True)
        measured = measure(suite_path, args.tasks, counts, lengths, [m for m in args.methods.split(",") if m])
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, {"measured": measured})  # kept even if the sums fail
    sums = estimate(suite_path, measured)
    write_json(out, {"measured": measured, "estimate": sums})
    print(f"{'method':18s} {'cells':>8s} {'cell CPU-h':>11s} {'preps':>6s} {'prep CPU-h':>11s}")
    for method, r in sums["by_method"].items():
        print(f"{method:18s} {r['cells']:8d} {r['cell_cpu_hours']:11.1f} {r['preparations']:6d} {r['preparation_cpu_hours']:11.1f}")
    print(f"{sums['suite']}: {sums['cells']} cells, {sums['cell_cpu_hours']:.0f} CPU-hours of cells + {sums['preparation_cpu_hours']:.0f} of preparations "
          f"= {sums['total_cpu_hours']:.0f} CPU-hours; on {args.cores} cores at least "
          f"{max(sums['total_cpu_hours'] / args.cores, sums['longest_preparation_hours']):.1f} h (the longest preparation alone: "
          f"{sums['longest_preparation_hours']:.1f} h); written to {out}")
    if sums["not_measured"]:
        print(f"not measured, so not counted: {', '.join(sums['not_measured'])}")
    return {"measured": measured, "estimate": sums}


if __name__ == "__main__":
    main()
