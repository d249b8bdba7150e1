"""The command-line page: the ``--help`` of every command and sub-command of ``mandril`` and ``mandril-envs``.

The parsers are walked (``build_parser()`` of :mod:`mandril.cli` and :mod:`mandril_envs.cli`, then every
sub-parser), so a new sub-command or option appears with no code here.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Iterator

from mandril_docs.pages import docs_dir, prune, write_if_changed

#: ``(program, module with build_parser())`` of each console script.
PROGRAMS = (("mandril", "mandril.cli"), ("mandril-envs", "mandril_envs.cli"))


def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``(command words, parser)`` of the parser and every sub-parser under it, depth first."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, words + (name,))


def generate(app: Any) -> None:
    """Write ``docs/cli/index.md``."""
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps its help at the terminal width: the same on every machine
    try:
        lines = _page()
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    folder = docs_dir(app) / "cli"
    path = folder / "index.md"
    write_if_changed(path, "\n".join(lines))
    prune(folder, {path})


def _page() -> list[str]:
    import importlib

    lines = ["# Command line", "", "Every command and its options, as `--help` prints them (generated from the parsers when the docs are built).", ""]
    for program, module in PROGRAMS:
        parser = importlib.import_module(module).build_parser()
        parser.prog = program
        for words, sub in walk(parser, (program,)):
            sub.prog = " ".join(words)
            lines += [f"{'#' * min(len(words) + 1, 4)} `{' '.join(words)}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return lines
