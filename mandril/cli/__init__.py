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
COMMAND_MODULES: tuple[str, ...] = ("mandril.cli.bench", "mandril.cli.tune", "mandril.cli.train", "mandril.cli.adapt", "mandril.maml_rl.cli")


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 the work failed (e.g. training diverged), 2 bad input)."""
    from mandril.bench.runners import WorkerLostError
    from mandril.methods import FitError

    # a worker killed mid-run (out of memory, say) leaves semaphores that multiprocessing's resource
    # tracker, a separate process started with this environment, warns about at exit: the error line says it all
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning:multiprocessing.resource_tracker")
    try:
        return run_command(build_parser(), argv)
    except (FitError, WorkerLostError) as error:  # training diverged (naming the method, the iteration and the rates), or a worker died
        print(f"mandril: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
