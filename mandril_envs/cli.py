"""``mandril-envs``: list the suite and write expert-demo datasets.

    mandril-envs list
    mandril-envs demos generate --env mandril_envs/GridWorld-v0 --tasks 100 --demos 20 --out gw.npz
    mandril-envs demos info gw.npz

(``python -m mandril_envs.demos generate ...`` is the same as ``mandril-envs demos generate ...``.)
Bad input prints one line and exits with status 2; nothing is written half.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Optional, Sequence

import gymnasium as gym

from mandril_envs.registration import ENV_IDS

__all__ = ["main", "build_parser"]


def json_object(text: str) -> dict:
    """argparse type: a JSON object (for ``--env-kwargs``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"size\": 16}'")
    return value


def _cmd_list(args: argparse.Namespace) -> int:
    for env_id in ENV_IDS:
        spec = gym.spec(env_id)
        print(f"{env_id:36s} {json.dumps(spec.kwargs)}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from mandril_envs.dataset import check_collect_size, collect
    from mandril_envs.demos import ExpertSettings

    if args.env not in gym.registry:
        raise ValueError(f"--env {args.env!r} is not registered; known ids: {', '.join(ENV_IDS)}")
    expert = ExpertSettings(args.policy, args.temperature, args.epsilon)
    check_collect_size(gym.make(args.env, **args.env_kwargs), args.tasks, args.demos, names=("--tasks", "--demos"))
    start = time.perf_counter()
    dataset = collect(
        args.env,
        args.tasks,
        args.demos,
        split=args.split,
        task_seed=args.task_seed,
        demo_seed=args.seed,
        expert=expert,
        env_kwargs=args.env_kwargs,
        progress=not args.quiet,
    )
    elapsed = time.perf_counter() - start
    path = dataset.save(args.out)
    if not args.quiet:
        print(
            f"wrote {path}: {dataset.n_tasks} tasks x {dataset.n_demos} demos x {dataset.horizon} steps "
            f"({args.split}, {expert.policy} expert) in {elapsed:.2f} s"
        )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from mandril_envs.dataset import DemoDataset

    dataset = DemoDataset.load(args.path, verify=False)
    verified = dataset.verify(str(args.path))  # before anything is printed: a refused file prints one line
    returns = dataset.rewards.sum(axis=2)
    print(f"{args.path}: {dataset.env_id} ({dataset.family}), split {dataset.split!r}")
    print(f"  {dataset.n_tasks} tasks x {dataset.n_demos} demos x {dataset.horizon} steps; expert {dataset.expert}")
    print(f"  demo return: mean {returns.mean():.3f}, std {returns.std():.3f}, min {returns.min():.3f}, max {returns.max():.3f}")
    print(f"  task seed {dataset.task_seed}, demo seed {dataset.demo_seed}")
    print("  verified against every task's rebuilt true model:")
    for line in verified:
        print(f"    {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``mandril-envs`` parser."""
    parser = argparse.ArgumentParser(prog="mandril-envs", description="The mandril_envs task suite: list envs, write expert-demo datasets.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    listing = commands.add_parser("list", help="list the registered ids and their default kwargs")
    listing.set_defaults(func=_cmd_list)
    demos = commands.add_parser("demos", help="expert-demo datasets").add_subparsers(dest="demos_command", metavar="ACTION")
    generate = demos.add_parser(
        "generate",
        help="sample tasks and write their expert demos to one .npz file",
        description="Sample --tasks tasks of --split, roll out --demos expert episodes of each through the env, "
        "and write them (with every task's parameters and the expert settings) to --out atomically.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    generate.add_argument("--env", default="mandril_envs/GridWorld-v0", help="registered env id")
    generate.add_argument("--env-kwargs", type=json_object, default={}, help="family config as a JSON object, e.g. '{\"size\": 16}'")
    generate.add_argument("--tasks", type=int, default=100, help="number of tasks N")
    generate.add_argument("--demos", type=int, default=20, help="demos per task M")
    generate.add_argument("--split", default="train", help="train, test (or test_unseen for GridWorld)")
    generate.add_argument("--policy", default="soft", choices=["soft", "optimal", "epsilon"], help="expert policy")
    generate.add_argument("--temperature", type=float, default=1.0, help="soft-expert temperature")
    generate.add_argument("--epsilon", type=float, default=0.1, help="epsilon-expert exploration rate")
    generate.add_argument("--task-seed", type=int, default=0, help="seed of the task stream")
    generate.add_argument("--seed", type=int, default=0, help="seed of the demo rollouts")
    generate.add_argument("--out", required=True, help="output .npz path")
    generate.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    generate.set_defaults(func=_cmd_generate)
    info = demos.add_parser("info", help="check a dataset file and summarise it")
    info.add_argument("path", help="dataset .npz")
    info.set_defaults(func=_cmd_info)
    return parser


def run_command(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> int:
    """Parse ``argv`` and run the chosen command's ``func(args)``.

    Bad input (``ValueError``, ``TypeError``, ``KeyError``) and files that cannot be read or written
    (``OSError``: missing, a directory, a path under a file, no permission) print one line and
    return 2; no command prints the help and returns 2.
    """
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, KeyError, OSError) as error:
        if isinstance(error, KeyError) and error.args:
            message = error.args[0]
        elif isinstance(error, OSError) and error.filename is not None:
            message = f"{error.strerror or error}: {error.filename!r}"
        else:
            message = error
        print(f"{parser.prog} {args.command}: error: {message}", file=sys.stderr)
        return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input)."""
    return run_command(build_parser(), argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
