"""``mandril fit METHOD``: fit a single-task method to each task of a demo dataset and score it.

    mandril-envs demos generate --env mandril_envs/GridWorld-v0 --split test --tasks 20 --demos 12 --out gw.npz
    mandril fit maxent_linear --dataset gw.npz --demos 4 --out fits.npz
    mandril fit airl --dataset gw.npz --demos 4 --tasks 3 --total-timesteps 8192

Each task's first ``--demos`` demos are shown to the method, the rest held out for the demo NLL; the
learned reward (or policy) is scored against the task's true reward, which the dataset can rebuild:
normalized EVD (0 = the expert, 1 = a uniform random policy) and raw EVD. Methods that learn from training
tasks first (MandRIL, pre-train + fine-tune, the demo-conditioned network) are trained with ``mandril train``
and scored with ``mandril adapt``. A method's settings default to what the family offers (e.g. the neural
``maxent`` reads a GridWorld's map with a conv net, and the features with an MLP of the same widths on a
family without a map).
"""

from __future__ import annotations

import argparse
from typing import Any

from mandril.cli.options import HelpFormatter, add_config_options, given_config, non_negative_int, positive_int, reward_model_help, thread_count

__all__ = ["register", "fittable"]


def fittable() -> list[str]:
    """The registered methods ``fit`` runs: single-task learners (no preparation, no access to the true reward)."""
    from mandril.methods import METHODS

    return [name for name, cls in METHODS.items() if not cls.needs_preparation and not cls.reads_true_reward and cls.kind != "reference"]


def register(subparsers: Any) -> None:
    """Add ``fit METHOD`` for every single-task method."""
    from mandril.methods import METHODS
    fit = subparsers.add_parser(
        "fit",
        help="fit a single-task method (MaxEnt, AIRL, GAIL, BC) to each task of a dataset and score it (mandril fit METHOD --help)",
        description="Fit a single-task method to the demos of each task of a dataset (.npz from 'mandril-envs demos generate') and "
        "score what it learned against the true reward. Methods that learn from training tasks: 'mandril train', then 'mandril adapt'.",
    )
    methods = fit.add_subparsers(dest="method", metavar="METHOD", required=True)
    for name in fittable():
        cls = METHODS[name]
        p = methods.add_parser(
            name,
            help=(cls.__doc__ or name).strip().splitlines()[0],
            description=f"{(cls.__doc__ or name).strip().splitlines()[0]} {reward_model_help()}",
            formatter_class=HelpFormatter,
        )
        p.add_argument("--dataset", required=True, help="demo dataset (.npz from 'mandril-envs demos generate'); its tasks are fitted one by one")
        p.add_argument("--demos", type=positive_int, default=4, help="demos of each task shown to the method (the first ones; the rest are held out)")
        p.add_argument("--tasks", type=positive_int, help="fit only the first TASKS tasks of the dataset (default: all)")
        p.add_argument("--seed", type=non_negative_int, default=0, help="seeds what the fits draw (initialisation, rollouts)")
        p.add_argument("--threads", type=thread_count, default=1, help="torch CPU threads (1 is fastest on small shared machines)")
        p.add_argument("--out", help="write the learned rewards or policies and the scores to this .npz file (atomically)")
        add_config_options(p, cls.Config)
        p.set_defaults(func=_cmd_fit)


def _cmd_fit(args: argparse.Namespace) -> int:
    import torch

    from mandril.cli.problems import dataset_problems, score_and_write
    from mandril.core.io import check_writable_file
    from mandril.methods import METHODS, make
    from mandril.methods.family_defaults import family_defaults
    from mandril_envs.dataset import DemoDataset

    if args.out is not None:
        if not str(args.out).endswith(".npz"):
            raise ValueError(f"--out must name a .npz file, got {args.out!r}")
        check_writable_file(args.out)
    dataset = DemoDataset.load(args.dataset)
    if args.tasks is not None and args.tasks > dataset.n_tasks:
        raise ValueError(f"--tasks {args.tasks} asks for more tasks than the dataset holds ({dataset.n_tasks})")
    if args.demos > dataset.n_demos:
        raise ValueError(f"--demos {args.demos} asks for more demos than the dataset has per task ({dataset.n_demos})")
    given = given_config(args)
    settings = {**family_defaults(METHODS[args.method], dataset.make_env(0).unwrapped.reward_input_kinds, given), **given}
    method = make(args.method, **settings)  # every setting is checked before any work
    torch.set_num_threads(args.threads)
    problems, truths = dataset_problems(dataset, method.input_kind, args.demos, args.seed, args.tasks)
    outputs = method.fit_batch(problems)
    return score_and_write(args.method, truths, outputs, args.demos, args.out, method.settings())
