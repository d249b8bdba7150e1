"""Seconds per MAML-TRPO meta-iteration: this tree against a baseline revision, alternated in one run.

Each repeat runs the baseline and then this tree in fresh subprocesses (one torch thread each), in
alternation, so that both see the same machine load; each subprocess builds a ``Trainer`` from its own
copy of the config, runs ``--warmup`` meta-iterations untimed and then times ``--iters`` of them
(``Trainer.run_iteration``: sampling, baseline refits, the TRPO step; no validation or files).
The baseline is extracted with ``git archive`` into a temporary folder, so it runs its own
``mandril`` and ``mandril_envs``. Reported: per repeat the median seconds per iteration of each and
their ratio; over repeats the medians. With ``--profile`` each iteration is also split into the
sampler, the baseline refits and advantages, the conjugate gradient (with its Hessian-vector
products), the line search and the rest, by wrapping those functions.

Usage::

    python benchmarks/maml/speed.py                                    # bandit-k5-n100, baseline c4c5c8e
    python benchmarks/maml/speed.py --repeats 7 --profile --json out.json
    python benchmarks/maml/speed.py --set 'maml.inner_objective="reinforce"' --set 'trpo.hvp="finite_difference"'  # today's algorithm
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The implementation before the speed work (the commit the ``maml`` branch started from).
BASELINE = "c4c5c8e"

WORKER = r'''
import json, sys, time, collections, dataclasses
import torch
torch.set_num_threads(1)
import mandril.maml_rl.metalearner as ml
import mandril.maml_rl.sampler as sm
from mandril.maml_rl.config import load_config
from mandril.maml_rl.trainer import Trainer

config_path, warmup, iters, profile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
overrides = json.loads(sys.argv[5])
parts = collections.defaultdict(float)

def wrap(owner, name, key):
    inner = getattr(owner, name)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            parts[key] += time.perf_counter() - start
    setattr(owner, name, timed)

if profile:
    wrap(sm.MultiTaskSampler, "sample", "sampler")
    wrap(ml.MAMLTRPO, "prepare", "baseline_and_advantages")
    wrap(ml, "conjugate_gradient", "conjugate_gradient")
    wrap(ml, "line_search", "line_search")
config = load_config(config_path)
if overrides:
    from mandril.maml_rl.config import config_from_dict, config_to_dict
    data = config_to_dict(config)
    for dotted, value in overrides.items():
        node = data
        *path, last = dotted.split(".")
        for key in path:
            node = node[key]
        node[last] = value
    config = config_from_dict(data)
trainer = Trainer(dataclasses.replace(config, output_dir="/nonexistent-speed-run"))
for _ in range(warmup):
    trainer.run_iteration()
parts.clear()
times = []
for _ in range(iters):
    start = time.perf_counter()
    trainer.run_iteration()
    times.append(time.perf_counter() - start)
trainer.close()
total = sum(times)
print(json.dumps({"times": times, "parts": {k: v / iters for k, v in parts.items()},
                  "other": (total - sum(parts.values())) / iters if profile else None,
                  "accepted": [int(r["accepted"]) for r in trainer.rows[-iters:]]}))
'''


def extract(revision: str, into: Path) -> Path:
    """``git archive`` of ``revision`` 's ``mandril``, ``mandril_envs`` and ``benchmarks`` into ``into``."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "mandril", "mandril_envs", "benchmarks"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as archive:
        archive.extractall(into, filter="data")
    return into


def run_worker(root: Path, config: str, warmup: int, iters: int, profile: bool, overrides: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", WORKER, str(root / config), str(warmup), str(iters), "1" if profile else "0",
                          json.dumps(overrides)],
                         check=True, capture_output=True, text=True, env=env, cwd=root)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default="benchmarks/maml/bandit-k5-n100.toml", help="config, relative to each tree's root")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="override a config key for this tree only, e.g. maml.inner_objective='\"reinforce\"' (repeatable)")
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare against")
    parser.add_argument("--repeats", type=int, default=5, help="alternated baseline/new pairs")
    parser.add_argument("--baseline-iters", type=int, default=4, help="timed meta-iterations per baseline run")
    parser.add_argument("--iters", type=int, default=20, help="timed meta-iterations per run of this tree")
    parser.add_argument("--warmup", type=int, default=2, help="untimed meta-iterations before timing")
    parser.add_argument("--profile", action="store_true", help="split each iteration into its parts")
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        baseline_root = extract(args.baseline, Path(tmp))
        for r in range(args.repeats):
            old = run_worker(baseline_root, args.config, args.warmup, args.baseline_iters, args.profile, {})
            new = run_worker(ROOT, args.config, args.warmup, args.iters, args.profile, overrides)
            old_s, new_s = statistics.median(old["times"]), statistics.median(new["times"])
            rows.append({"baseline": old, "new": new, "baseline_s": old_s, "new_s": new_s, "ratio": new_s / old_s})
            print(f"repeat {r}: baseline {old_s:.3f} s/iteration, new {new_s:.4f} s/iteration, new/baseline {new_s / old_s:.4f} "
                  f"(speed-up x{old_s / new_s:.1f})", flush=True)
    med = {k: statistics.median(row[k] for row in rows) for k in ("baseline_s", "new_s", "ratio")}
    print(f"median over {args.repeats} repeats: baseline {med['baseline_s']:.3f} s, new {med['new_s']:.4f} s per meta-iteration; "
          f"new/baseline = {med['ratio']:.4f} (x{1 / med['ratio']:.1f} faster)")
    if args.profile:
        for which in ("baseline", "new"):
            keys = ["sampler", "baseline_and_advantages", "conjugate_gradient", "line_search"]
            parts = {k: statistics.median(row[which]["parts"].get(k, 0.0) for row in rows) for k in keys}
            parts["rest (surrogate gradient, old log-probs, bookkeeping)"] = statistics.median(row[which]["other"] for row in rows)
            total = med[f"{which}_s"]
            print(f"{which}: " + ", ".join(f"{k} {v * 1e3:.1f} ms ({100 * v / total:.0f}%)" for k, v in parts.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "medians": med, "repeats": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
