"""``mandril maml-rl train|test|plot``: meta-train MAML-TRPO, evaluate it on held-out tasks, redraw a curve.

Examples::

    mandril maml-rl train --config benchmarks/maml/bandit-k5-n100.toml
    mandril maml-rl train --config benchmarks/maml/bandit-k5-n100.toml --resume
    mandril maml-rl test --config benchmarks/maml/bandit-k5-n100.toml --output benchmarks/maml/results/bandit-k5-n100.json

Exit codes: 0 done; 1 training failed (diverged or stalled: one line naming the meta-iteration and
the inner rate); 2 bad input (one line naming the argument and what is allowed), checked before
any costly work.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

from mandril.cli.options import int_at_least, int_between, thread_count
from mandril.maml_rl.config import MAX_TASKS

__all__ = ["register"]


class _HelpFormatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` after every option that has a default worth showing (not None, False or empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" not in text and action.default not in (None, False, "", argparse.SUPPRESS) and action.option_strings:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors (unknown arguments included) are one line on stderr and exit code 2."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _finite_nonzero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite non-zero number, got {text!r}") from None
    if not math.isfinite(value) or value == 0:
        raise argparse.ArgumentTypeError(f"must be a finite non-zero number, got {text!r}")
    return value


def _reference(text: str) -> tuple[str, float]:
    label, sep, value = text.rpartition("=")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not sep or not label or not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be LABEL=VALUE with a finite VALUE, got {text!r}")
    return label, number


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="TOML", help="the run's TOML config (see benchmarks/maml/*.toml)")
    parser.add_argument("--output-dir", default=None, metavar="DIR",
                        help="run directory (default: the config's output_dir, else runs/maml/<name>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=thread_count, default=1, metavar="N",
                        help="torch intra-op threads (the tensors are tiny: more threads only contend)")


def _setup(args: argparse.Namespace) -> Any:
    import torch

    from mandril.maml_rl.config import load_config

    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    if args.output_dir is not None:
        config = dataclasses.replace(config, output_dir=args.output_dir)
    return config


def _train(args: argparse.Namespace) -> int:
    from mandril.maml_rl.trainer import Trainer, TrainingFailedError

    config = _setup(args)
    trainer = Trainer(config, progress=not args.no_progress, resume=args.resume)  # refuses an existing run unless --resume
    try:
        rows = trainer.train(args.num_batches)
    except TrainingFailedError as error:
        print(f"mandril maml-rl: error: {error}", file=sys.stderr)
        return 1
    finally:
        trainer.close()
    last = rows[-10:]
    if last:
        n = config.maml.fast_batch_size
        pre = sum(r["pre_return"] for r in last) / len(last) * n
        post = sum(r["post_return"] for r in last) / len(last) * n
        print(f"{config.name}: {trainer.iteration} meta-iterations, {trainer.elapsed:.0f} s, {trainer.env_steps} env steps; "
              f"last {len(last)} batches: pre {pre:.2f}, post {post:.2f} (totals over the {n} adaptation episodes)")
    print(f"wrote {trainer.metrics_path}, {trainer.checkpoint_path}, {trainer.run_dir / 'curve.png'}")
    return 0


def _test(args: argparse.Namespace) -> int:
    from mandril.core.io import atomic_write_text, write_json
    from mandril.maml_rl.evaluation import evaluate, format_table
    from mandril.maml_rl.trainer import load_checkpoint

    if args.init and args.checkpoint:
        raise ValueError("--init and --checkpoint exclude each other: --init evaluates the initial parameters")
    config = _setup(args)
    output = Path(args.output) if args.output else config.run_dir / "test_results.json"
    for path in (output, output.with_suffix(".md")):
        if path.is_dir():
            raise ValueError(f"--output {str(output)!r}: {str(path)!r} is a directory; give a file name ending in .json")
    if args.init:
        state = {"policy": _initial_policy_state(config), "iteration": 0}
        checkpoint = Path("<initial parameters>")
    else:
        checkpoint = Path(args.checkpoint) if args.checkpoint else config.run_dir / "checkpoint.pt"
        state = load_checkpoint(checkpoint)  # a damaged, truncated or foreign file is refused here, naming it
    results = evaluate(config, state["policy"], n_tasks=args.n_tasks, progress=not args.no_progress,
                       iteration=int(state["iteration"]), checkpoint=str(checkpoint), references=not args.no_references)
    write_json(output, results)
    table = format_table(results)
    atomic_write_text(output.with_suffix(".md"), table)
    print(table, end="")
    print(f"wrote {output} and {output.with_suffix('.md')}")
    return 0


def _initial_policy_state(config: Any) -> dict:
    import torch

    from mandril.maml_rl.builders import build_policy, build_sampler

    sampler = build_sampler(config)
    try:
        return build_policy(config, sampler, torch.Generator().manual_seed(config.seed)).state_dict()
    finally:
        sampler.close()


def _plot(args: argparse.Namespace) -> int:
    from mandril.maml_rl.plotting import plot_curve

    if not Path(args.metrics).is_file():
        raise FileNotFoundError(f"--metrics {args.metrics!r}: no such file (give a run's metrics.csv)")
    if Path(args.out).is_dir():
        raise ValueError(f"--out {args.out!r} is a directory; give a file name ending in .png")
    refs = dict(args.reference or [])
    path = plot_curve(args.metrics, args.out, scale=args.scale, title=args.title, references=refs, window=args.window)
    print(f"wrote {path}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``maml-rl`` with ``train``, ``test`` and ``plot`` to the ``mandril`` CLI."""
    parser = subparsers.add_parser("maml-rl", help="MAML for RL with a TRPO outer loop (bandits, tabular MDPs)",
                                   description="MAML for RL with a TRPO outer loop (Finn et al. 2017) on the bandit and "
                                               "tabular-MDP task families: meta-train, test on held-out tasks, plot.")
    sub = parser.add_subparsers(dest="maml_command", metavar="SUBCOMMAND", required=True, parser_class=_Parser)

    train = sub.add_parser(
        "train", help="meta-train; writes metrics.csv, checkpoint.pt, best.pt, curve.png", formatter_class=_HelpFormatter,
        description="Meta-train a policy with MAML-TRPO as the config says. Writes metrics.csv (one row per meta-iteration), "
                    "checkpoint.pt (every checkpoint_every iterations and at the end), best.pt (best validation return, on "
                    "train-split tasks training never uses), config.json and curve.png into the run directory. A directory "
                    "that already holds a run is refused unless --resume continues it. Exit 1 if training diverges or "
                    "stalls (a non-finite loss, or every TRPO step rejected), 2 on bad input.")
    _common(train)
    train.add_argument("--resume", action="store_true", help="continue the run in the run directory from its checkpoint.pt")
    train.add_argument("--num-batches", type=int_at_least(1), default=None, metavar="N",
                       help="train until N meta-iterations are done (default: the config's maml.num_batches)")
    train.set_defaults(func=_train)

    test = sub.add_parser(
        "test", help="adapt on held-out tasks; writes returns before/after adaptation with 95%% CIs", formatter_class=_HelpFormatter,
        description="Adapt the meta-trained policy on held-out (split='test') tasks and score it: exact expected returns "
                    "before and after adaptation, the budget-matched total, and reference bandit/MDP policies on the same "
                    "tasks, each with a 95% bootstrap interval over tasks. Writes a JSON file and a Markdown table next to it.")
    _common(test)
    test.add_argument("--checkpoint", default=None, metavar="PT", help="checkpoint to test (default: <run dir>/checkpoint.pt)")
    test.add_argument("--output", default=None, metavar="JSON",
                      help="results JSON (default: <run dir>/test_results.json); a .md table is written next to it")
    test.add_argument("--n-tasks", type=int_between(1, MAX_TASKS, "the suites' bound on held-out tasks"), default=None, metavar="N", help="held-out tasks (default: the config's test.n_tasks)")
    test.add_argument("--init", action="store_true",
                      help="evaluate the initial parameters (as training starts, before any meta-update): the ablation")
    test.add_argument("--no-references", action="store_true",
                      help="skip the reference policies (they do not depend on the checkpoint; the bandit ones tune constants first)")
    test.set_defaults(func=_test)

    plot = sub.add_parser("plot", help="redraw the learning curve from a metrics.csv", formatter_class=_HelpFormatter,
                          description="Redraw a run's learning curve (pre- and post-adaptation return per meta-iteration, "
                                      "validation points, best.pt) from its metrics.csv.")
    plot.add_argument("--metrics", required=True, metavar="CSV", help="a run's metrics.csv")
    plot.add_argument("--out", required=True, metavar="PNG", help="the PNG file to write")
    plot.add_argument("--scale", type=_finite_nonzero, default=1.0, help="multiply the returns (e.g. by n for totals over n episodes)")
    plot.add_argument("--title", default="", help="figure title (default: none)")
    plot.add_argument("--window", type=int_at_least(1), default=10, help="moving-average window, in meta-iterations")
    plot.add_argument("--reference", action="append", type=_reference, metavar="LABEL=VALUE",
                      help="a horizontal reference line (repeatable), already scaled")
    plot.set_defaults(func=_plot)
