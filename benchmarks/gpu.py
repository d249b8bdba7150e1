"""The GPU run: the planning kernel and the quick suite's batched cells on a CUDA device, against the CPU in the same run.

    .venv/bin/python benchmarks/gpu.py            # on a machine with CUDA: under 10 minutes on one GPU
    .venv/bin/python benchmarks/gpu.py --quick    # small sizes; without CUDA, a CPU-only run (what CI executes, < 1 minute)
    .venv/bin/python benchmarks/gpu.py --help

1. **Kernel.** ``--tasks`` tasks (default 1024) of an ``N x N`` GridWorld (``--size``, default 32; horizon
   ``2N``) in one :class:`~mandril.planning.TaskBatch`: ``log Z`` and its gradient ``E[mu]`` (the soft backup
   and the visitation pass: what every evaluation of a MaxEnt fit does), on the CPU and on the device
   alternately, medians of ``--repeats``. Reports tasks per second on each side and the ratio, and checks
   that the two sides agree: ``log Z`` to ``KERNEL_TOLERANCE`` relative, ``E[mu]`` (which sums to ``H``)
   to ``KERNEL_TOLERANCE * H``.
2. **Cells.** Units of the quick suite (``benchmarks/suites/quick.toml``), one per batched method and
   family kind, through the harness's own :func:`mandril.bench.work.run_unit`, once with ``device="cpu"``
   and once with the device (``Method.to(device)``: what ``mandril bench run --device cuda`` does), from
   the same prepared state (prepared once, on the CPU). Everything is float64 on both sides; the only
   difference is the order of floating-point reductions (about 1e-16 relative per operation). What a
   fit makes of that differs by kind, and so does the check:

   * converged convex fits (tabular and linear MaxEnt, pre-train + fine-tune on a linear model), a few
     gradient steps (MandRIL's adaptation) or none (the demo-conditioned model): every score of every
     record within ``CELL_TOLERANCE = 1e-6`` (absolute). On the CPU the same rounding difference (a
     batched fit against the fit alone, ``benchmarks/batched_fits.py``) moves their reward tables by
     at most about 1e-10, so 1e-6 on scores of order 1 to 10 leaves four orders of magnitude;
   * neural fits that stop after a fixed number of L-BFGS steps without converging (neural MaxEnt and
     pre-train + fine-tune's fine-tuning of the conv model): the last-bit differences grow along the
     non-convex path, so single tasks are not comparable digit by digit. Measured on the CPU (quick
     suite, GridWorld test tasks, n = 4, batched against one at a time): reward tables up to 0.44
     apart, per-task normalized EVD up to 0.010 and demo NLL up to 0.005, but the unit's means within
     2e-4 and 2e-5. The check: the unit's mean normalized EVD and mean demo NLL within
     ``NEURAL_MEAN_TOLERANCE = 0.01`` (50 times the measured difference of the means, below any
     difference the report calls a difference), same errors on both sides; per-task differences printed.

Figures go to ``--out`` (default ``benchmarks/results/gpu/``; ``benchmarks/results/gpu/quick/`` with ``--quick``):
``gpu.json`` and ``gpu.md``. With no CUDA
device the "device" side is the CPU again (same code path; the two sides must then agree bit for bit),
and the files say so. ``--quick`` shrinks everything (16 tasks of 8x8 for the kernel; 3 tasks per unit,
5 fitting steps, 3 preparation iterations and a 16-task training pool for the cells).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

KERNEL_TOLERANCE = 1e-9
CELL_TOLERANCE = 1e-6
NEURAL_MEAN_TOLERANCE = 0.01

#: Methods whose fit is a fixed number of L-BFGS steps on a neural reward model (with a conv or MLP
#: model): compared by the unit's means (see the module docstring).
NEURAL_FITS = ("maxent", "pretrain_finetune")

#: The scores compared between the two sides (every float a record holds about the learned reward).
SCORES = ("evd", "normalized_evd", "optimal_return", "learned_return", "random_return", "demo_nll", "success", "policy_evd", "policy_normalized_evd")

#: The units run in the cells part: (method, family, split, n_demos). One per batched method on the
#: families it runs on in the quick suite: the conv fits of the grids (neural MaxEnt, pre-train +
#: fine-tune's fine-tuning, MandRIL's adaptation, the demo-conditioned model) and the linear and
#: tabular fits of the random MDPs and the bandit.
CELLS: tuple[tuple[str, str, str, int], ...] = (
    ("maxent", "gridworld", "test", 4),
    ("maxent", "gridworld_intent", "test_unseen", 16),
    ("pretrain_finetune", "gridworld", "test", 4),
    ("mandril", "gridworld", "test", 4),
    ("demo_conditioned", "gridworld", "test", 4),
    ("maxent_linear", "tabular_mdp_linear", "test", 4),
    ("maxent_tabular", "tabular_mdp", "test", 16),
    ("maxent_linear", "bandit", "test", 8),
)
QUICK_CELLS = (("maxent", "gridworld", "test", 4), ("mandril", "gridworld", "test", 4), ("maxent_linear", "tabular_mdp_linear", "test", 4))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (the CPU-only run CI executes)")
    parser.add_argument("--device", default=None, help="the device to compare with the CPU (default: cuda if torch sees one, else cpu)")
    parser.add_argument("--tasks", type=int, default=None, help="kernel: number of tasks (default 1024; 16 with --quick)")
    parser.add_argument("--size", type=int, default=None, help="kernel: GridWorld side N (default 32; 8 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="kernel: timed repeats per side (default 3; 2 with --quick)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of the CPU side of the kernel (default 0: torch's default, all cores)")
    parser.add_argument("--suite", default=str(ROOT / "benchmarks" / "suites" / "quick.toml"), help="suite whose cells are run")
    parser.add_argument("--no-cells", action="store_true", help="only the kernel part")
    parser.add_argument("--out", default=None, help="folder of gpu.json and gpu.md (default benchmarks/results/gpu, with --quick benchmarks/results/gpu/quick)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = str(ROOT / "benchmarks" / "results" / "gpu" / ("quick" if args.quick else ""))
    args.tasks = args.tasks if args.tasks is not None else (16 if args.quick else 1024)
    args.size = args.size if args.size is not None else (8 if args.quick else 32)
    args.repeats = args.repeats if args.repeats is not None else (2 if args.quick else 3)
    for name in ("tasks", "size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.threads < 0:
        parser.error(f"--threads must be >= 0, got {args.threads}")
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(args.device)
    except (RuntimeError, TypeError) as error:
        parser.error(f"--device must be like 'cpu', 'cuda' or 'cuda:1', got {args.device!r}: {error}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device!r}: torch sees no CUDA device here; leave --device out for the CPU-only run")
    return args


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- 1. the kernel ---------------------------------------------------------------------------------
def gridworld_models(size: int, n_tasks: int, seed: int = 0) -> list:
    """``n_tasks`` training tasks of a ``size x size`` GridWorld, horizon ``2 size``."""
    import gymnasium as gym

    import mandril_envs  # noqa: F401  (registers the ids)

    env = gym.make("mandril_envs/GridWorld-v0", size=size, horizon=2 * size).unwrapped
    models = []
    for task in env.sample_tasks(n_tasks, "train", seed=seed):
        env.set_task(task)
        models.append(env.model)
    return models


def _loss_and_gradient(batch: Any, reward: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log Z (B,), E[mu] (B, S))`` at ``reward``: one soft backup and one visitation pass."""
    from mandril.planning import log_partition

    leaf = reward.detach().requires_grad_(True)
    log_z = log_partition(batch, leaf)
    (mu,) = torch.autograd.grad(log_z.sum(), [leaf])
    return log_z.detach(), mu


def kernel_case(models: list, device: torch.device, repeats: int, threads: int, seed: int = 0) -> dict:
    """Time :func:`_loss_and_gradient` on the CPU and on ``device`` (alternately) and compare the two."""
    from mandril.planning import TaskBatch

    if threads:
        torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    rng = np.random.default_rng(seed)
    reward = torch.as_tensor(rng.normal(size=(len(models), models[0].state_dim)))
    batches = {side: TaskBatch.from_models(models, torch.float64, where) for side, where in (("cpu", cpu), ("device", device))}
    rewards = {"cpu": reward, "device": reward.to(device)}
    results, times = {}, {"cpu": [], "device": []}
    for side in ("cpu", "device"):  # warm-up (CUDA context, kernels) and the values compared
        results[side] = _loss_and_gradient(batches[side], rewards[side])
    for _ in range(repeats):
        for side, where in (("cpu", cpu), ("device", device)):
            _sync(where)
            start = time.perf_counter()
            _loss_and_gradient(batches[side], rewards[side])
            _sync(where)
            times[side].append(time.perf_counter() - start)
    horizon = models[0].horizon
    log_z_cpu, mu_cpu = results["cpu"]
    log_z_dev, mu_dev = (t.cpu() for t in results["device"])
    log_z_diff = float(((log_z_cpu - log_z_dev).abs() / log_z_cpu.abs().clamp_min(1.0)).max())
    mu_diff = float((mu_cpu - mu_dev).abs().max())
    cpu_s, dev_s = statistics.median(times["cpu"]), statistics.median(times["device"])
    return {
        "tasks": len(models),
        "grid": f"{int(round(models[0].state_dim ** 0.5))}x{int(round(models[0].state_dim ** 0.5))}",
        "states": models[0].state_dim,
        "actions": models[0].action_dim,
        "horizon": horizon,
        "cpu_threads": torch.get_num_threads(),
        "cpu_seconds": cpu_s,
        "device_seconds": dev_s,
        "cpu_tasks_per_second": len(models) / cpu_s,
        "device_tasks_per_second": len(models) / dev_s,
        "speedup": cpu_s / dev_s,
        "log_z_max_rel_diff": log_z_diff,
        "mu_max_abs_diff": mu_diff,
        "agree": log_z_diff <= KERNEL_TOLERANCE and mu_diff <= KERNEL_TOLERANCE * horizon,
    }


# --- 2. the cells ----------------------------------------------------------------------------------
def shrink_suite(data: dict) -> dict:
    """The ``--quick`` suite: 3 tasks per unit, a 16-task training pool, 3 preparation iterations, 5 fitting steps."""
    data = copy.deepcopy(data)
    quick = {
        "mandril": {"iterations": 3}, "demo_conditioned": {"iterations": 3},
        "pretrain_finetune": {"pretrain_iterations": 3, "max_steps": 5}, "maxent": {"max_steps": 5},
        "maxent_linear": {"max_steps": 5}, "maxent_tabular": {"max_steps": 5},
    }
    for spec in data["families"].values():
        spec["n_tasks"] = min(spec["n_tasks"], 3)
        spec["train"]["n_tasks"] = min(spec["train"]["n_tasks"], 16)
        for method, values in quick.items():
            spec["methods"][method] = {**spec["methods"].get(method, {}), **values}
    return data


def _find_unit(suite: Any, method: str, family: str, split: str, n_demos: int) -> Any:
    from mandril.bench.cells import units_of

    for unit in units_of(suite):
        if (unit.method, unit.family, unit.split, unit.n_demos) == (method, family, split, n_demos):
            return unit
    raise ValueError(f"the suite has no unit {method} on {family}/{split} with n = {n_demos}")


def compare_records(cpu: list[dict], device: list[dict], neural: bool = False) -> tuple[float, list[str]]:
    """The largest absolute difference of any score between the two sides' records, and what disagrees.

    Every score of every record must agree to ``CELL_TOLERANCE``; with ``neural``, the unit's mean
    normalized EVD and mean demo NLL to ``NEURAL_MEAN_TOLERANCE`` instead (the errors must match either way).
    """
    worst, problems = 0.0, []
    if neural and len(cpu) == len(device):
        same = [(a, b) for a, b in zip(cpu, device) if a["task"] == b["task"] and a["error"] is None and b["error"] is None]
        problems = [f"task {a['task']}: error {a['error']!r} on the CPU, {b['error']!r} on the device"
                    for a, b in zip(cpu, device) if a["task"] != b["task"] or (a["error"] is None) != (b["error"] is None)]
        for key in ("normalized_evd", "demo_nll"):
            pairs = [(float(a[key]), float(b[key])) for a, b in same if a[key] is not None and b[key] is not None]
            if not pairs:
                continue
            worst = max(worst, max(abs(x - y) for x, y in pairs))
            gap = abs(statistics.fmean(x for x, _ in pairs) - statistics.fmean(y for _, y in pairs))
            if not gap <= NEURAL_MEAN_TOLERANCE:
                problems.append(f"mean {key} differs by {gap:.2e} > {NEURAL_MEAN_TOLERANCE:g} over {len(pairs)} tasks")
        return worst, problems
    if len(cpu) != len(device):
        return float("inf"), [f"{len(cpu)} records on the CPU, {len(device)} on the device"]
    for a, b in zip(cpu, device):
        if a["task"] != b["task"] or (a["error"] is None) != (b["error"] is None):
            problems.append(f"task {a['task']}: error {a['error']!r} on the CPU, {b['error']!r} on the device")
            continue
        for key in SCORES:
            x, y = a.get(key), b.get(key)
            if x is None and y is None:
                continue
            if x is None or y is None:
                problems.append(f"task {a['task']} {key}: {x} on the CPU, {y} on the device")
                continue
            diff = abs(float(x) - float(y))
            worst = max(worst, diff)
            if not diff <= CELL_TOLERANCE:
                problems.append(f"task {a['task']} {key}: {x!r} on the CPU, {y!r} on the device (|diff| {diff:.2e} > {CELL_TOLERANCE:g})")
    return worst, problems


def cells_case(suite_path: str, device: torch.device, quick: bool, log: Any = print) -> list[dict]:
    """Run :data:`CELLS` (``QUICK_CELLS``) on the CPU and on ``device``; one row per unit."""
    from mandril.bench import load_suite
    from mandril.bench.work import run_preparation, run_unit, suite_of

    data = load_suite(suite_path).to_dict()
    if quick:
        data = shrink_suite(data)
    suite = suite_of(data)
    states: dict[str, dict] = {}
    rows = []
    first = (QUICK_CELLS if quick else CELLS)[0]
    if first[0] in suite.methods and first[1] in suite.families:  # warm-up: imports and per-process caches, timed on neither side
        run_unit(data, _find_unit(suite, *first), None, None, "cpu")
    for method, family, split, n_demos in QUICK_CELLS if quick else CELLS:
        if method not in suite.methods or family not in suite.families:
            continue
        unit = _find_unit(suite, method, family, split, n_demos)
        state, prepared_s = None, 0.0
        if unit.needs_preparation:
            key = unit.preparation.id
            if key not in states:
                start = time.perf_counter()
                prepared = run_preparation(data, unit.preparation)
                if prepared["error"] is not None:
                    raise RuntimeError(f"preparing {key} failed: {prepared['error']}")
                states[key] = prepared["state"]
                prepared_s = time.perf_counter() - start
            state = states[key]
        timing, records = {}, {}
        for side, where in (("cpu", "cpu"), ("device", str(device))):
            start = time.perf_counter()
            records[side] = run_unit(data, unit, state, None, where)
            timing[side] = time.perf_counter() - start
        neural = method in NEURAL_FITS and suite.families[family].reward_model is not None and suite.families[family].reward_model.kind in ("conv", "mlp")
        worst, problems = compare_records(records["cpu"], records["device"], neural)
        errors = sorted({r["error"] for r in records["cpu"] + records["device"] if r["error"] is not None})
        row = {
            "unit": unit.id, "method": method, "family": family, "split": split, "n_demos": n_demos, "tasks": unit.n_tasks,
            "preparation_seconds_cpu": prepared_s, "cpu_seconds": timing["cpu"], "device_seconds": timing["device"],
            "speedup": timing["cpu"] / timing["device"], "check": "unit means" if neural else "every score", "max_abs_diff": worst,
            "agree": not problems and not errors,
            "problems": problems[:10], "errors": errors[:5],
        }
        log(f"  {unit.id}: cpu {timing['cpu']:.2f} s, {device} {timing['device']:.2f} s, max |diff| {worst:.1e}, {'agree' if row['agree'] else 'DISAGREE'}")
        rows.append(row)
    return rows


# --- output ----------------------------------------------------------------------------------------
def environment(device: torch.device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(), "processor": platform.processor() or None,
            "device": str(device), "cuda_available": torch.cuda.is_available(), "device_name": None}
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def markdown(report: dict) -> str:
    env, kernel, cells = report["environment"], report["kernel"], report["cells"]
    lines = [f"# GPU run{' (--quick)' if report['quick'] else ''}", ""]
    if env["device"] == "cpu":
        lines += ["**No CUDA device here: the \"device\" side is the CPU again** (the same code path; the two sides must agree bit for bit).", ""]
    lines += [f"torch {env['torch']}, Python {env['python']}, {env['machine']}; device `{env['device']}`" + (f" ({env['device_name']}, CUDA {env.get('cuda')})" if env["device_name"] else "") + ".", ""]
    lines += [
        "## Planning kernel", "",
        f"`log Z` and its gradient `E[mu]` (soft backup + visitation) of {kernel['tasks']} tasks of {kernel['grid']} GridWorld "
        f"(S = {kernel['states']}, A = {kernel['actions']}, H = {kernel['horizon']}) in one batch, float64; CPU with {kernel['cpu_threads']} thread(s); "
        f"median of {report['repeats']}.", "",
        "| side | seconds per call | tasks per second |", "|---|---|---|",
        f"| CPU | {kernel['cpu_seconds']:.3f} | {kernel['cpu_tasks_per_second']:.1f} |",
        f"| {env['device']} | {kernel['device_seconds']:.3f} | {kernel['device_tasks_per_second']:.1f} |", "",
        f"Speed-up {kernel['speedup']:.1f}x; max relative |diff| of log Z {kernel['log_z_max_rel_diff']:.1e}, max |diff| of E[mu] {kernel['mu_max_abs_diff']:.1e} "
        f"(tolerance {KERNEL_TOLERANCE:g}, x H for E[mu]): {'agree' if kernel['agree'] else 'DISAGREE'}.", "",
    ]
    if cells is not None:
        lines += [
            "## Cells", "",
            f"Units of `{report['suite']}` through the harness's `run_unit`, once on the CPU (one thread, as the suite runs) and once on `{env['device']}`, "
            f"from the same prepared state. Check \"every score\": every score of every task within {CELL_TOLERANCE:g}; \"unit means\" (neural fits at a fixed "
            f"L-BFGS budget, whose last-bit differences grow along the path): the unit's mean normalized EVD and demo NLL within {NEURAL_MEAN_TOLERANCE:g}, "
            "the largest per-task difference shown. Wall seconds of the whole unit (demos, fits, scoring).", "",
            "| unit | tasks | CPU (s) | device (s) | speed-up | check | max abs diff (per task) | agree |", "|---|---|---|---|---|---|---|---|",
        ]
        for row in cells:
            lines.append(f"| {row['unit']} | {row['tasks']} | {row['cpu_seconds']:.2f} | {row['device_seconds']:.2f} | {row['speedup']:.2f}x | {row['check']} | "
                         f"{row['max_abs_diff']:.1e} | {'yes' if row['agree'] else 'NO'} |")
        for row in cells:
            for problem in row["problems"] + row["errors"]:
                lines.append(f"- {row['unit']}: {problem}")
        lines.append("")
    lines += [f"All agree: **{report['all_agree']}**. Total {report['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    from mandril.core.io import check_writable_dir, write_json, atomic_write_text

    out = check_writable_dir(args.out)
    device = torch.device(args.device)
    if device.type != "cuda":
        print(f"no CUDA device {'asked for' if torch.cuda.is_available() else 'here'}: comparing the CPU with itself on {device} (the CPU-only run)")
    start = time.perf_counter()
    print(f"kernel: {args.tasks} tasks of {args.size}x{args.size} GridWorld, CPU against {device}", flush=True)
    kernel = kernel_case(gridworld_models(args.size, args.tasks), device, args.repeats, args.threads)
    print(f"  CPU {kernel['cpu_tasks_per_second']:.1f} tasks/s, {device} {kernel['device_tasks_per_second']:.1f} tasks/s ({kernel['speedup']:.1f}x); "
          f"{'agree' if kernel['agree'] else 'DISAGREE'}", flush=True)
    cells = None
    if not args.no_cells:
        print(f"cells of {Path(args.suite).name}, CPU against {device}", flush=True)
        cells = cells_case(args.suite, device, args.quick)
    report = {
        "quick": args.quick, "suite": Path(args.suite).name, "repeats": args.repeats, "environment": environment(device),
        "kernel_tolerance": KERNEL_TOLERANCE, "cell_tolerance": CELL_TOLERANCE, "neural_mean_tolerance": NEURAL_MEAN_TOLERANCE,
        "kernel": kernel, "cells": cells,
        "all_agree": bool(kernel["agree"] and all(row["agree"] for row in cells or [])), "seconds": time.perf_counter() - start,
    }
    write_json(out / "gpu.json", report)
    atomic_write_text(out / "gpu.md", markdown(report))
    print(f"wrote {out / 'gpu.json'} and {out / 'gpu.md'}; all agree: {report['all_agree']}")
    return report


if __name__ == "__main__":
    result = main()
    sys.exit(0 if result["all_agree"] else 1)
