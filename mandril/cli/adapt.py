"""``mandril adapt``: adapt a trained run to held-out tasks from their demos and score it.

    mandril adapt --run runs/mandril --split test_unseen --tasks 20 --demos 1
    mandril adapt --run runs/mandril --dataset heldout.npz --demos 4 --out scores.npz

Demos come from the evaluation protocol's one seeding function (:mod:`mandril.eval.protocol`), the
same the benchmark uses, so ``--seed`` here and a suite's demo seed give the same demos.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


from mandril.bench.suite import MAX_DEMOS, MAX_TASKS
from mandril.cli.options import HelpFormatter, int_between, non_negative_int, thread_count, torch_device

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``adapt``."""
    p = subparsers.add_parser(
        "adapt",
        help="adapt a trained run to held-out tasks and score it",
        description="Adapt the method trained in --run to held-out tasks from --demos expert demos each, and score the results "
        "against the true rewards: normalized EVD (0 = the expert, 1 = a uniform random policy) and raw EVD.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--run", required=True, help="run directory of 'mandril train'")
    p.add_argument("--dataset", help="held-out dataset (.npz from 'mandril-envs demos generate'); default: sample --tasks tasks of --split")
    p.add_argument("--split", default="test", help="held-out split to sample tasks from: test, or test_unseen for GridWorld (never train, the method's own pool)")
    p.add_argument("--tasks", type=int_between(1, MAX_TASKS, "a suite's bound on held-out tasks"), default=20, help="held-out tasks to sample")
    p.add_argument("--task-seed", type=non_negative_int, default=1, help="seed of the held-out task stream")
    p.add_argument("--demos", type=int_between(1, MAX_DEMOS, "a suite's bound on demos"), default=2, help="demos of each new task shown to the method")
    p.add_argument("--seed", type=non_negative_int, default=0, help="demo seed (the protocol's demo stream)")
    p.add_argument("--threads", type=thread_count, default=1, help="torch CPU threads")
    p.add_argument("--device", type=torch_device, default="cpu", help="where adaptation runs: cpu, or cuda (cuda:N) when a GPU is there")
    p.add_argument("--out", help="write the learned reward tables and scores to this .npz file (atomically)")
    p.set_defaults(func=_cmd_adapt)


def _cmd_adapt(args: argparse.Namespace) -> int:
    import torch

    from mandril.cli.problems import dataset_problems, sampled_problems, score_and_write
    from mandril.cli.train import load_trained, read_run
    from mandril.core.io import check_writable_file
    from mandril.eval import N_HELDOUT
    from mandril_envs.dataset import DemoDataset, check_collect_size
    from mandril_envs.env_settings import make_env
    from mandril_envs.sizes import check_fits

    # every option and the run's files are checked before any work (the method's weights are read last)
    if args.out is not None:
        if Path(args.out).suffix != ".npz":
            raise ValueError(f"--out must name a .npz file, got {args.out!r}")
        check_writable_file(args.out)
    run = read_run(Path(args.run))
    env = make_env(run["env_id"], run["env_kwargs"], f"{Path(args.run) / 'run.json'}: env_kwargs")
    base = env.unwrapped
    held_out = [s for s in base.splits if s != "train"]
    if not args.dataset and args.split not in held_out:
        raise ValueError(f"--split must be a held-out split of {run['env_id']}: one of {held_out}, got {args.split!r} (train is the method's own pool)")
    dataset = None
    if args.dataset:
        dataset = DemoDataset.load(args.dataset, env_id=run["env_id"])
        if dataset.split == "train":
            raise ValueError(f"--dataset {args.dataset!r} holds training tasks: adapt scores held-out tasks (test splits)")
        if args.demos > dataset.n_demos:
            raise ValueError(f"--demos {args.demos} asks for more demos than the dataset has per task ({dataset.n_demos})")
    n_tasks = dataset.n_tasks if dataset is not None else args.tasks
    check_collect_size(env, n_tasks, args.demos + N_HELDOUT, names=("--tasks", "--demos + held-out demos"))
    shape = base._model_shape(base.config, base.obs_type)
    if shape is not None:  # every task's model and reward input are kept until scoring
        check_fits(2 * n_tasks * shape.nbytes, f"--tasks {n_tasks} of {base.family} ({shape.describe()}): every task's model and reward input")
    torch.set_num_threads(args.threads)
    method, run = load_trained(Path(args.run))
    if method.input_kind not in base.reward_input_kinds:
        raise ValueError(f"{args.run}: the method reads {method.input_kind!r} inputs, which {run['env_id']} does not offer ({list(base.reward_input_kinds)})")
    if args.device != "cpu":
        method.to(args.device)
    if dataset is not None:
        problems, truths = dataset_problems(dataset, method.input_kind, args.demos, args.seed, env=env)
    else:
        problems, truths = sampled_problems(env, args.split, args.tasks, args.task_seed, args.demos, args.seed, method.input_kind)
    return score_and_write(run["method"], truths, method.fit_batch(problems), args.demos, args.out, method.settings())
