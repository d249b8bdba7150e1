"""The fitter's precision rule against the fitter without it, on a suite's MaxEnt-family cells.

    .venv/bin/python benchmarks/precision_rule.py --before <commit>       # the quick suite's tabular and linear cells
    .venv/bin/python benchmarks/precision_rule.py --before <commit> --methods maxent --n-demos 1,32

For each MaxEnt-family method, family, split and number of demos of the suite, the unit's tasks are
fitted (batched, as the harness does) twice: by ``mandril/methods/fitting.py`` as it was at commit
``--before`` and as it is now. Prints, per cell, whether every task took the same steps and got the
same reward table to the last bit, and the statuses now; a fit the rule stopped differs, and is listed.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_fitting_at(commit: str):
    """``mandril.methods.fitting`` as it was at ``commit`` (a module of its own)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:mandril/methods/fitting.py"], check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "fitting_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("fitting_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fitting_before"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="commit whose fitting.py is the reference")
    parser.add_argument("--suite", default=str(ROOT / "benchmarks" / "suites" / "quick.toml"))
    parser.add_argument("--methods", default="maxent_tabular,maxent_linear")
    parser.add_argument("--n-demos", default="", help="comma-separated demo counts (default: the suite's)")
    parser.add_argument("--splits", default="", help="comma-separated splits (default: the suite's)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from mandril.bench import load_suite
    from mandril.bench.cells import Unit
    from mandril.bench.work import unit_problems
    from mandril.methods import maxent

    before, now = load_fitting_at(args.before).fit_rewards, maxent.fit_rewards
    suite = load_suite(args.suite)
    totals = collections.Counter()
    for family, spec in suite.families.items():
        counts = [int(x) for x in args.n_demos.split(",")] if args.n_demos else suite.family_n_demos(family)
        splits = args.splits.split(",") if args.splits else spec.splits
        for method_name in args.methods.split(","):
            if method_name not in suite.methods or not suite.runs_on(method_name, family):
                continue
            for split in splits:
                for n in counts:
                    unit = Unit(family, split, method_name, "", suite.seeds[0], n, spec.n_tasks, False)
                    method = suite.make_method(method_name, family, suite.seeds[0], n)  # with its per-n settings, as the harness
                    problems, _ = unit_problems(suite, unit, method)
                    outputs = {}
                    for name, fit in (("before", before), ("now", now)):
                        maxent.fit_rewards = fit
                        outputs[name] = method.fit_batch(problems)
                    maxent.fit_rewards = now
                    same, statuses, moved = 0, collections.Counter(), []
                    for index, (a, b) in enumerate(zip(outputs["before"], outputs["now"])):
                        if not (hasattr(a, "reward") and hasattr(b, "reward")):
                            statuses["error"] += 1
                            same += type(a) is type(b)
                            continue
                        statuses[b.info["status"]] += 1
                        if a.info["steps"] == b.info["steps"] and np.array_equal(a.reward, b.reward):
                            same += 1
                        else:
                            moved.append(f"task {index}: steps {a.info['steps']} -> {b.info['steps']} ({b.info['status']}, |g| {b.info['grad_norm']:.1e}), "
                                         f"max |reward diff| {float(np.abs(a.reward - b.reward).max()):.1e}")
                    totals.update(statuses)
                    totals["identical"] += same
                    totals["fits"] += len(problems)
                    print(f"{family:20s} {split:6s} n={n:<3d} {method_name:15s} {same}/{len(problems)} identical; now {dict(statuses)}", flush=True)
                    for line in moved:
                        print("    " + line)
    print(f"all: {totals['identical']}/{totals['fits']} fits identical (steps and reward bits); statuses now: "
          + ", ".join(f"{k} {v}" for k, v in totals.items() if k not in ("identical", "fits")))


if __name__ == "__main__":
    main()
