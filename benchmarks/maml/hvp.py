"""The two Hessian-vector products of the TRPO step, measured against each other on the same meta-batches.

``hvp = "exact"`` differentiates the KL gradient a second time (double backprop, which runs through
the derivative of the inner gradient: third derivatives of the inner loss); ``"finite_difference"``
takes ``(grad KL(theta + r v) - grad KL(theta - r v)) / 2r`` (second derivatives only), as the MAML
paper did. For each meta-batch (a config's training, a few meta-iterations in, so the parameters
are not the initial ones) this measures, alternating the two in one process:

* agreement: ``|Hv_fd - Hv_exact| / |Hv_exact|`` for random ``v`` and for the conjugate-gradient
  directions each produces (and the cosine between those directions);
* cost: seconds per TRPO step (``MAMLTRPO.step`` on the same rollouts from the same ``theta``,
  restored after each), medians over repeats, and their ratio.

Usage: ``python benchmarks/maml/hvp.py --config benchmarks/maml/bandit-k5-n100.toml [--objective reinforce]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mandril.maml_rl.config import load_config
from mandril.maml_rl.trainer import Trainer
from mandril.maml_rl.trpo import conjugate_gradient, flatten


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default="benchmarks/maml/bandit-k5-n100.toml", help="the run config")
    parser.add_argument("--batches", type=int, default=5, help="meta-batches to measure on")
    parser.add_argument("--warm", type=int, default=10, help="meta-iterations trained before measuring")
    parser.add_argument("--repeats", type=int, default=5, help="timed TRPO steps per mode and meta-batch")
    parser.add_argument("--objective", choices=("config", "reinforce", "lvc"), default="config",
                        help="the inner objective (with LVC the two products are different matrices, see the README)")
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = load_config(args.config)
    if args.objective != "config":
        config = dataclasses.replace(config, maml=dataclasses.replace(config.maml, inner_objective=args.objective))
    trainer = Trainer(dataclasses.replace(config, output_dir="/nonexistent-hvp-run"))
    for _ in range(args.warm):
        trainer.run_iteration()
    learner, m = trainer.learner, config.maml
    results = []
    for b in range(args.batches):
        tasks = trainer.sampler.sample_tasks(m.meta_batch_size, "train", seed=config.task_seed, start=(args.warm + b) * m.meta_batch_size)
        rollouts = learner.sample(trainer.sampler, tasks, m.fast_batch_size, seeds=[11 + b, 23 + b], generator=trainer.generator)
        old = learner._old_log_probs(rollouts)
        theta = {k: v.detach().clone() for k, v in learner.policy.params().items()}
        products, directions, seconds = {}, {}, {"exact": [], "finite_difference": []}
        gen = torch.Generator().manual_seed(b)
        probes = [torch.randn(flatten(theta).numel(), generator=gen, dtype=torch.float64) for _ in range(5)]
        leaves = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
        loss, _ = learner.surrogate(leaves, rollouts, old)
        grad = flatten(torch.autograd.grad(loss, list(leaves.values())))
        for mode in ("exact", "finite_difference"):
            learner.hvp = mode
            hvp = learner.kl_hvp(rollouts, old, theta)
            products[mode] = [hvp(v) for v in probes]
            directions[mode] = conjugate_gradient(hvp, grad, learner.cg_iters)[0]
        for _ in range(args.repeats):
            for mode in ("exact", "finite_difference"):
                learner.hvp = mode
                start = time.perf_counter()
                learner.step(rollouts)
                seconds[mode].append(time.perf_counter() - start)
                with torch.no_grad():
                    for name, param in learner.policy.named_parameters():
                        param.copy_(theta[name])
        exact_products, fd_products = products["exact"], products["finite_difference"]
        de, df = directions["exact"], directions["finite_difference"]
        row = {
            "batch": b,
            "hv_relative_difference": [float((f - e).norm() / e.norm()) for e, f in zip(exact_products, fd_products)],
            "direction_relative_difference": float((df - de).norm() / de.norm()),
            "direction_cosine": float(torch.dot(df, de) / (df.norm() * de.norm())),
            "step_s_exact": statistics.median(seconds["exact"]),
            "step_s_fd": statistics.median(seconds["finite_difference"]),
        }
        results.append(row)
        print(f"batch {b}: |Hv_fd - Hv_exact|/|Hv_exact| max {max(row['hv_relative_difference']):.1e}; CG directions differ by "
              f"{row['direction_relative_difference']:.1e} (cosine {row['direction_cosine']:.8f}); TRPO step exact "
              f"{row['step_s_exact'] * 1e3:.1f} ms, finite difference {row['step_s_fd'] * 1e3:.1f} ms", flush=True)
    trainer.close()
    exact_s = statistics.median(r["step_s_exact"] for r in results)
    fd_s = statistics.median(r["step_s_fd"] for r in results)
    print(f"median TRPO step: exact {exact_s * 1e3:.1f} ms, finite difference {fd_s * 1e3:.1f} ms, exact / finite difference = "
          f"{exact_s / fd_s:.2f}; max |Hv| relative difference {max(max(r['hv_relative_difference']) for r in results):.1e}")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": args.config, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
