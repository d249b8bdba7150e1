"""The ``mandril`` command line: one module per command group.

Each module listed in :data:`COMMAND_MODULES` exposes ``register(subparsers)``, which adds its
sub-command(s) with ``set_defaults(func=...)``; ``func(args)`` returns an exit code. Bad input
(``ValueError``/``TypeError``/``KeyError``/``OSError``) prints one line and exits 2; work that fails
(a diverging training run) prints one line and exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from mandril_envs.cli import OneLineParser, run_command

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

#: Modules that add sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES: tuple[str, ...] = ("mandril.cli.bench", "mandril.cli.tune", "mandril.cli.train", "mandril.cli.adapt", "mandril.cli.fit", "mandril.maml_rl.cli")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered sub-command."""
    parser = OneLineParser(  # usage errors of every sub-command are one line (its sub-parsers inherit the class)
        prog="mandril",
        description="Learning rewards from few demonstrations: train MandRIL and its baselines, adapt them to held-out tasks, "
        "run and report the benchmark, and MAML-TRPO. Every sub-command has --help.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


#: The extra that brings each optional top-level module (``pip install "mandril[EXTRA]"``).
EXTRA_OF: dict[str, str] = {"torch": "algo", "tqdm": "algo", "matplotlib": "algo", "imitation": "imitation", "stable_baselines3": "imitation",
                            "ray": "ray", "minari": "minari"}


def missing_extra_message(error: ModuleNotFoundError) -> Optional[str]:
    """One line naming the extra to install for a missing optional module (``None`` for any other module)."""
    root = (error.name or "").split(".")[0]
    extra = EXTRA_OF.get(root)
    if extra is None:
        return None
    first = " (install torch==2.13.0 first, so pip takes the CPU build: pip install torch==2.13.0)" if extra in ("algo", "imitation") else ""
    return f"this needs {root}, which is not installed: pip install 'mandril[{extra}]'{first}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 the work failed (e.g. training diverged), 2 bad input
    or a missing optional dependency, named with the extra that brings it)."""
    # a worker killed mid-run (out of memory, say) leaves semaphores that multiprocessing's resource
    # tracker, a separate process started with this environment, warns about at exit: the error line says it all
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning:multiprocessing.resource_tracker")
    try:
        from mandril.bench.runners import WorkerLostError
        from mandril.methods import FitError

        try:
            return run_command(build_parser(), argv)
        except (FitError, WorkerLostError) as error:  # training diverged (naming the method, the iteration and the rates), or a worker died
            print(f"mandril: error: {error}", file=sys.stderr)
            return 1
    except ModuleNotFoundError as error:
        message = missing_extra_message(error)
        if message is None:
            raise
        print(f"mandril: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
