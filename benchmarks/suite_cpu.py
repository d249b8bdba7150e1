"""A whole suite run at a git revision against this checkout, side by side, in CPU seconds.

    .venv/bin/python benchmarks/suite_cpu.py --against e267119                  # the quick suite, 2 workers each
    .venv/bin/python benchmarks/suite_cpu.py --against e267119 --suite benchmarks/suites/smoke.toml --out /tmp/cpu

Both runs start at the same moment, each as ``mandril bench run SUITE --workers W`` in its own process
(the revision's from a ``git worktree`` of it, with its own committed suite file and tuned settings; this
checkout's from here), so they share the machine's load. Each run's CPU is the user + system time of its
driver and every process it waited for (its pool workers): ``os.wait4``'s resource usage. Prints both, the
ratio, the cells each recorded, and writes them to ``OUT/cpu.json``.

The two runs need not run the same cells: a suite file changes between revisions (methods added, budgets
re-chosen). ``cpu.json`` also sums the fitting seconds the workers recorded for the cells both runs have
(``shared_cells``: the same work, preparations aside); the per-method time is in each run's report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mandril_envs.cli import OneLineParser

ROOT = Path(__file__).resolve().parents[1]


def start(command: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """``command`` in ``cwd``, its output to ``log``, with this checkout's or the worktree's package first on the path."""
    env = {**os.environ, "PYTHONPATH": str(cwd), "OMP_NUM_THREADS": "1"}
    with log.open("w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)


def wait_cpu(processes: dict[str, subprocess.Popen]) -> dict[str, tuple[int, float, float]]:
    """``{name: (return code, CPU seconds, time.perf_counter() when it ended)}`` of each process, its CPU
    including the children it reaped; processes are collected as they end, whichever ends first."""
    names = {process.pid: name for name, process in processes.items()}
    ended: dict[str, tuple[int, float, float]] = {}
    while len(ended) < len(processes):
        pid, status, usage = os.wait4(-1, 0)
        if pid in names:
            process = processes[names[pid]]
            process.returncode = os.waitstatus_to_exitcode(status)
            ended[names[pid]] = (process.returncode, usage.ru_utime + usage.ru_stime, time.perf_counter())
    return ended


def records(out: Path) -> int:
    """Records (cells) a run's folder holds."""
    folder = out / "records"
    return sum(len(path.read_text().splitlines()) for path in folder.glob("*.jsonl")) if folder.is_dir() else 0


def cell_seconds(out: Path) -> dict[tuple, float]:
    """Each cell a run recorded, keyed by ``(family, split, method, n, run, task)``: the fitting seconds its
    worker measured (wall time in a one-thread worker; a preparation's time is not in any cell)."""
    seconds: dict[tuple, float] = {}
    for path in sorted((out / "records").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            seconds[(r["family"], r["split"], r["method"], r["n_demos"], r["seed"], r["task"])] = float(r["seconds"] or 0.0)
    return seconds


def shared_cells(revision: Path, checkout: Path) -> dict:
    """The cells both runs recorded and the fitting seconds each spent on them: what the same work cost
    when the two suites differ (methods added, more cells of a method)."""
    before, after = cell_seconds(revision), cell_seconds(checkout)
    common = sorted(set(before) & set(after))
    spent = {"revision": round(sum(before[k] for k in common), 1), "checkout": round(sum(after[k] for k in common), 1)}
    return {"cells": len(common), "fit_seconds": spent, "ratio_fit": round(spent["checkout"] / max(spent["revision"], 1e-9), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="git revision to run beside this checkout (e.g. e267119)")
    parser.add_argument("--suite", default="benchmarks/suites/quick.toml", help="suite file, relative to each side's root (default: benchmarks/suites/quick.toml: each side runs its own)")
    parser.add_argument("--workers", type=int, default=2, help="workers per run (default: 2, as make bench)")
    parser.add_argument("--out", type=Path, default=Path("reports/suite-cpu"), help="folder for both runs and cpu.json (must not exist)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.out.exists():
        parser.error(f"--out {args.out} exists: choose a new folder (both runs start from scratch)")
    revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{args.against}^{{commit}}"], capture_output=True, text=True)
    if revision.returncode != 0:
        parser.error(f"--against {args.against!r} is not a commit of this repository")
    args.out.mkdir(parents=True)
    out = args.out.resolve()
    worktree = out / "worktree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), revision.stdout.strip()], check=True, capture_output=True)
    try:
        sides = {"revision": worktree, "checkout": ROOT}
        processes = {}
        for name, cwd in sides.items():
            command = [sys.executable, "-m", "mandril.cli", "bench", "run", args.suite, "--out", str(out / name), "--workers", str(args.workers), "--quiet"]
            processes[name] = start(command, cwd, out / f"{name}.log")
        began = time.perf_counter()
        results = {name: {"returncode": code, "cpu_seconds": round(cpu, 1), "wall_seconds": round(ended - began, 1), "cells": records(out / name)}
                   for name, (code, cpu, ended) in wait_cpu(processes).items()}
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], capture_output=True)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    summary = {"suite": args.suite, "workers": args.workers, "revision": args.against, "checkout": head, "runs": results,
               "ratio_cpu": round(results["checkout"]["cpu_seconds"] / max(results["revision"]["cpu_seconds"], 1e-9), 3),
               "shared_cells": shared_cells(out / "revision", out / "checkout")}
    (out / "cpu.json").write_text(json.dumps(summary, indent=2) + "\n")
    for name, label in (("revision", args.against), ("checkout", head)):
        r = results[name]
        print(f"{label}: {r['cpu_seconds']:.0f} CPU s, {r['wall_seconds']:.0f} s wall, {r['cells']} cells, return code {r['returncode']}")
    print(f"{head} / {args.against}: {summary['ratio_cpu']:.2f} of the CPU")
    shared = summary["shared_cells"]
    print(f"the {shared['cells']} cells both ran: fitting {shared['fit_seconds']['revision']:.0f} s ({args.against}) and "
          f"{shared['fit_seconds']['checkout']:.0f} s ({head}) as the workers timed them: {shared['ratio_fit']:.2f}")
    return 0 if all(r["returncode"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
