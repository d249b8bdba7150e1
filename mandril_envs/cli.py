"""``mandril-envs``: list the suite and write expert-demo datasets.

    mandril-envs list
    mandril-envs demos generate --env mandril_envs/GridWorld-v0 --tasks 100 --demos 20 --out gw.npz
    mandril-envs demos info gw.npz

(``python -m mandril_envs.demos generate ...`` is the same as ``mandril-envs demos generate ...``.)
Bad input (a malformed or out-of-range option, a file that is not a dataset, an absurd size)
prints one line naming the option and exits with status 2, before any work; nothing is written half.
Every option's help shows its default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import NoReturn, Optional, Sequence

import gymnasium as gym

from mandril_envs.registration import ENV_IDS
from mandril_envs.validation import check_choice, check_float, check_int, check_probability

__all__ = ["main", "build_parser", "run_command", "OneLineParser", "DefaultsHelpFormatter"]


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (``prog: error: message (see --help)``), exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that shows every option's default (``(default: X)``), except for required options and positionals."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" not in text and action.option_strings and not action.required and action.default is not argparse.SUPPRESS:
            text += " (default: %(default)s)"
        return text


def _check_output(option: str, value: str, force: bool = False, suffix: str = ".npz") -> Path:
    """``value`` as a path a new file can be written to, before any work: not a directory, no file where a
    folder must be, a folder a file can be created in, the ``suffix`` (a dataset is a ``.npz``), and no
    existing file unless ``force`` (an existing file is never replaced by accident; a FIFO or a device never)."""
    import tempfile

    path = Path(value)
    if path.is_dir():
        raise ValueError(f"{option} {value!r} is a directory; give a file path, e.g. {str(path / 'demos.npz')!r}")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise ValueError(f"{option} {value!r} lies under {str(ancestor)!r}, which is a file, not a folder")
    if path.suffix != suffix:
        raise ValueError(f"{option} {value!r} must end in {suffix} (a dataset file), e.g. {str(path.with_suffix(suffix))!r}")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise ValueError(f"{option} {value!r} exists and is not a regular file (a FIFO, a device, a dangling link): it is never replaced")
        if not force:
            raise ValueError(f"{option} {value!r} exists: pass --force to replace it, or choose another path")
    try:  # os.access says yes to root on read-only and virtual file systems: create and remove a file there
        handle, probe = tempfile.mkstemp(prefix=".mandril-envs-write-check.", dir=ancestor)
    except OSError as error:
        raise ValueError(f"{option} {value!r}: cannot create a file in {str(ancestor)!r} ({error.strerror or error})") from None
    os.close(handle)
    os.unlink(probe)
    return path


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
    from mandril_envs.base import TabularTaskEnv
    from mandril_envs.dataset import collect
    from mandril_envs.demos import ExpertSettings
    from mandril_envs.env_settings import check_env_id_config, check_env_settings

    # every option, named as typed, before any work
    check_int("--tasks", args.tasks, 1)
    check_int("--demos", args.demos, 1)
    check_int("--task-seed", args.task_seed, 0)
    check_int("--seed", args.seed, 0)
    check_float("--temperature", args.temperature, 0.0, strict_min=True)
    check_probability("--epsilon", args.epsilon)
    _check_output("--out", args.out, force=args.force)
    if args.env not in gym.registry:
        raise ValueError(f"--env {args.env!r} is not registered; known ids: {', '.join(ENV_IDS)}")
    expert = ExpertSettings(args.policy, args.temperature, args.epsilon)
    env = gym.make(args.env)
    if not isinstance(env.unwrapped, TabularTaskEnv):
        raise TypeError(f"--env {args.env!r} is not a mandril_envs env (its unwrapped env must be a TabularTaskEnv); known ids: {', '.join(ENV_IDS)}")
    check_choice("--split", args.split, env.unwrapped.splits)
    # the family's settings: no gym.make wrapper that corrupts demos (autoreset, an early TimeLimit), sizes, finite plans
    env = check_env_settings(args.env, args.env_kwargs, "--env-kwargs", expert=expert, split=args.split, datasets=((("--tasks", "--demos"), args.tasks, args.demos),), trusted_ids=(args.env,))
    check_env_id_config(args.env, env.unwrapped.family, env.unwrapped.config, "--env")
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
    """The ``mandril-envs`` parser (every option has help text that shows its default)."""
    parser = OneLineParser(
        prog="mandril-envs", description="The mandril_envs task suite: list envs, write expert-demo datasets.", formatter_class=DefaultsHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    listing = commands.add_parser("list", help="list the registered ids and their default kwargs", formatter_class=DefaultsHelpFormatter)
    listing.set_defaults(func=_cmd_list, command_prog=listing.prog)
    demos_parser = commands.add_parser("demos", help="expert-demo datasets: generate, info", formatter_class=DefaultsHelpFormatter)
    demos_parser.set_defaults(help_parser=demos_parser)
    demos = demos_parser.add_subparsers(dest="demos_command", metavar="ACTION")
    generate = demos.add_parser(
        "generate",
        help="sample tasks and write their expert demos to one .npz file",
        description="Sample --tasks tasks of --split, roll out --demos expert episodes of each through the env, "
        "and write them (with every task's parameters and the expert settings) to --out atomically.",
        formatter_class=DefaultsHelpFormatter,
    )
    generate.add_argument("--env", default="mandril_envs/GridWorld-v0", help="registered env id (see: mandril-envs list)")
    generate.add_argument("--env-kwargs", type=json_object, default={}, help="family config as a JSON object, e.g. '{\"size\": 16}'")
    generate.add_argument("--tasks", type=int, default=100, help="number of tasks N (>= 1)")
    generate.add_argument("--demos", type=int, default=20, help="demos per task M (>= 1)")
    generate.add_argument("--split", default="train", help="train, test (or test_unseen for GridWorld)")
    generate.add_argument("--policy", default="soft", choices=["soft", "optimal", "epsilon"], help="expert policy")
    generate.add_argument("--temperature", type=float, default=1.0, help="soft-expert temperature (> 0)")
    generate.add_argument("--epsilon", type=float, default=0.1, help="epsilon-expert exploration rate, in [0, 1]")
    generate.add_argument("--task-seed", type=int, default=0, help="seed of the task stream (>= 0)")
    generate.add_argument("--seed", type=int, default=0, help="seed of the demo rollouts (>= 0)")
    generate.add_argument("--out", required=True, help="output .npz path (required; written atomically; an existing file only with --force)")
    generate.add_argument("--force", action="store_true", help="replace an existing --out file")
    generate.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    generate.set_defaults(func=_cmd_generate, command_prog=generate.prog)
    info = demos.add_parser(
        "info",
        help="check a dataset file and summarise it",
        description="Load a dataset file with every check (format, meta data, tasks, and every transition and reward "
        "against its task's rebuilt model), then summarise it and say what was verified.",
        formatter_class=DefaultsHelpFormatter,
    )
    info.add_argument("path", help="dataset .npz file")
    info.set_defaults(func=_cmd_info, command_prog=info.prog)
    return parser


def run_command(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> int:
    """Parse ``argv`` and run the chosen command's ``func(args)``.

    Bad input (``ValueError``, ``TypeError``, ``KeyError``) and files that cannot be read or written
    (``OSError``: missing, a directory, a path under a file, no permission) print one line
    (``prog command: error: message``, newlines folded) and return 2; no command (or no action of a
    command group) prints that level's help and returns 2.
    """
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        getattr(args, "help_parser", parser).print_help()
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
        prog = getattr(args, "command_prog", None) or f"{parser.prog} {args.command}"
        print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input)."""
    return run_command(build_parser(), argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
