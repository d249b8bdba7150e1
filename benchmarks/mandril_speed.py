"""Time one MandRIL meta-iteration (sampling + inner step + meta-gradient + Adam), in one process.

    .venv/bin/python benchmarks/mandril_speed.py            # meta-batch 16, 8x8 GridWorld, conv 32-32
    .venv/bin/python benchmarks/mandril_speed.py --help

Prints the median over --repeats iterations (after --warmup) of: drawing the meta-batch from a
task pool, the second-order meta-gradient, the first-order one, and pre-training (no inner step),
so the cost of each part is visible.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from mandril.data import DatasetSource
from mandril.methods.meta_trainer import MandRIL, MandRILConfig
from mandril.rewards import RewardModelSpec, build_reward_model
from mandril_envs.dataset import collect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8, help="grid size N")
    parser.add_argument("--meta-batch-size", type=int, default=16)
    parser.add_argument("--hidden", default="32,32", help="conv channels")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = collect("mandril_envs/GridWorld-v0", 200, 12, env_kwargs={"size": args.size})
    source = DatasetSource(dataset, "map")
    spec = RewardModelSpec("conv", tuple(int(h) for h in args.hidden.split(",")))
    rng = np.random.default_rng(0)
    print(f"MandRIL meta-iteration, GridWorld {args.size}x{args.size} (H={dataset.horizon}), meta-batch {args.meta_batch_size}, "
          f"conv {spec.hidden}, K=2, K'=10; {platform.processor() or platform.machine()}, {args.threads} torch thread(s), torch {torch.__version__}")
    sample_times = []
    for _ in range(args.warmup + args.repeats):
        start = time.perf_counter()
        source.sample(args.meta_batch_size, 2, 10, rng)
        sample_times.append(time.perf_counter() - start)
    print(f"  {'draw the meta-batch from the pool:':50s}{1000 * statistics.median(sample_times[args.warmup:]):7.1f} ms")
    for label, overrides in (("second-order meta-gradient + Adam", {}), ("first-order meta-gradient + Adam", {"first_order": True}), ("pre-training step (no inner step)", {"inner_steps": 0})):
        config = MandRILConfig(meta_batch_size=args.meta_batch_size, n_train_demos=2, n_test_demos=10, **overrides)
        trainer = MandRIL(build_reward_model(spec, source.inputs[0], args.size**2, 0), config)
        times = [trainer.meta_step(source)["seconds"] for _ in range(args.warmup + args.repeats)]
        print(f"  {label + ' (incl. draw):':50s}{1000 * statistics.median(times[args.warmup:]):7.1f} ms")


if __name__ == "__main__":
    main()
