"""Hyperparameter sweeps for MAML-TRPO, scored on validation tasks (train split) only.

A sweep file (TOML) names a base config, the seeds, overrides shared by every variant and the
variants themselves (dotted keys into the config; a variant may name its own ``base``, ``budget`` and ``seeds``)::

    base = "benchmarks/maml/bandit-k5-n100.toml"
    seeds = [0, 1, 2]
    budget = 100                     # optional: also score m * pre + (budget - m) * post
    [common]
    "validation.n_tasks" = 100
    [[variant]]
    name = "max_kl 0.005"
    set = { "trpo.max_kl" = 0.005 }

Every (variant, seed) is trained in ``<out>/runs/<variant>/seed<k>`` (a fresh directory each time)
and validated every ``validation.every`` meta-iterations on train-split validation tasks
(:data:`mandril.maml_rl.config.VALIDATION_START` ...): the test split is never touched. Written:
``<out>/<sweep>.csv`` (one row per run) and ``<out>/<sweep>.md`` (per variant, the median over
seeds of the best and the last validation returns, and of the drop between them).

Usage: ``python benchmarks/maml/sweep.py benchmarks/maml/sweeps/stability.toml --out benchmarks/maml/results/sweeps``
"""

from __future__ import annotations

import argparse
import copy
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mandril.core.config import load_toml
from mandril.core.io import atomic_write_text, write_csv
from mandril.maml_rl.config import config_from_dict, config_to_dict, load_config
from mandril.maml_rl.trainer import Trainer, TrainingFailedError

FIELDS = ("variant", "seed", "m", "budget", "best_iteration", "best_val_post", "last_val_post", "last3_val_post", "drop",
          "best_val_budget", "last3_val_budget", "accepted", "failed", "seconds")


def _set(data: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def run_variant(base: dict, overrides: dict, seed: int, run_dir: Path, budget: int | None) -> dict:
    data = copy.deepcopy(base)
    for key, value in overrides.items():
        _set(data, key, value)
    data["seed"] = seed
    data["output_dir"] = str(run_dir)
    config = config_from_dict(data)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    start = time.perf_counter()
    trainer = Trainer(config)
    failed = ""
    try:
        trainer.train()
    except TrainingFailedError as error:
        failed = str(error)
    finally:
        trainer.close()
    rows = trainer.rows
    val = [(r["iteration"] + 1, r["val_pre_return"], r["val_post_return"]) for r in rows if math.isfinite(r["val_post_return"])]
    m, n = config.maml.fast_batch_size, budget or config.maml.fast_batch_size
    scale = config.maml.fast_batch_size if budget is None else n

    def budget_value(pre: float, post: float) -> float:
        return min(m, n) * pre + max(n - m, 0) * post

    out = {"variant": "", "seed": seed, "m": m, "budget": n, "accepted": sum(r["accepted"] for r in rows), "failed": failed,
           "seconds": round(time.perf_counter() - start, 1)}
    if val:
        best = max(range(len(val)), key=lambda i: val[i][2])
        last3 = val[-3:]
        out.update(
            best_iteration=val[best][0],
            best_val_post=scale * val[best][2],
            last_val_post=scale * val[-1][2],
            last3_val_post=scale * float(np.mean([v[2] for v in last3])),
            best_val_budget=budget_value(val[best][1], val[best][2]),
            last3_val_budget=float(np.mean([budget_value(v[1], v[2]) for v in last3])),
        )
        out["drop"] = out["best_val_post"] - out["last3_val_post"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a MAML-TRPO sweep file; score on train-split validation tasks only.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("sweep", help="the sweep TOML file")
    parser.add_argument("--out", default="benchmarks/maml/results/sweeps", help="where the CSV, the summary and the runs go")
    parser.add_argument("--only", action="append", default=None, help="run only the variants with these names (repeatable)")
    parser.add_argument("--keep-runs", action="store_true", help="keep each run's directory (metrics, checkpoints)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = load_toml(args.sweep)
    name = Path(args.sweep).stem
    def base_of(variant: dict) -> dict:
        base = config_to_dict(load_config(variant.get("base", spec["base"])))
        for key, value in spec.get("common", {}).items():
            _set(base, key, value)
        return base

    out = Path(args.out)
    csv_path = out / f"{name}.csv"
    earlier = []
    if args.only and csv_path.is_file():  # keep the other variants' earlier rows
        from mandril.core.io import read_csv

        earlier = [r for r in read_csv(csv_path, convert=str) if r["variant"] not in set(args.only)]
    rows: list[dict] = []
    for variant in spec["variant"]:
        if args.only and variant["name"] not in args.only:
            continue
        for seed in variant.get("seeds", spec.get("seeds", [0])):
            run_dir = out / "runs" / name / variant["name"].replace(" ", "_").replace("/", "-").replace(",", "") / f"seed{seed}"
            row = run_variant(base_of(variant), variant.get("set", {}), seed, run_dir, variant.get("budget", spec.get("budget")))
            row["variant"] = variant["name"]
            rows.append(row)
            print(", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
            write_csv(csv_path, earlier + rows, FIELDS)  # after every run: an interrupted sweep keeps what it did
            if not args.keep_runs:
                shutil.rmtree(run_dir, ignore_errors=True)
    rows = earlier + rows
    write_csv(csv_path, rows, FIELDS)
    atomic_write_text(out / f"{name}.md", summary(rows, spec))
    print(summary(rows, spec))
    return 0


def summary(rows: list[dict], spec: dict) -> str:
    def num(x):
        try:
            return float(x)
        except (TypeError, ValueError):
            return float("nan")

    lines = [f"Sweep {spec.get('title', '')} (base {spec['base']}, seeds {spec.get('seeds', [0])}): validation tasks of the "
             "train split only. Median over seeds; best = the best validation point, last3 = the mean of the last three "
             "validation points, drop = best - last3.", "",
             "| variant | m | n | best val post | last3 val post | drop | best val budget-matched | last3 val budget-matched | failed runs |",
             "|---|---|---|---|---|---|---|---|---|"]
    names = list(dict.fromkeys(r["variant"] for r in rows))
    for variant in names:
        mine = [r for r in rows if r["variant"] == variant]

        def med(key):
            values = [num(r.get(key)) for r in mine if math.isfinite(num(r.get(key)))]
            return f"{statistics.median(values):.1f}" if values else ""

        failed = sum(1 for r in mine if r.get("failed"))
        lines.append(f"| {variant} | {mine[0]['m']} | {mine[0]['budget']} | {med('best_val_post')} | {med('last3_val_post')} | {med('drop')} | "
                     f"{med('best_val_budget')} | {med('last3_val_budget')} | {failed}/{len(mine)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
