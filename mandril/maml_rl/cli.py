"""``mandril maml-rl train|test|plot``: meta-train MAML-TRPO, evaluate it on held-out tasks, redraw a curve.

Examples::

    mandril maml-rl train --config benchmarks/maml/bandit-k5-n100.toml
    mandril maml-rl train --config benchmarks/maml/bandit-k5-n100.toml --resume
    mandril maml-rl test --config benchmarks/maml/bandit-k5-n100.toml --output benchmarks/maml/results/bandit-k5-n100.json
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the run's TOML config")
    parser.add_argument("--output-dir", default=None, help="run directory (default: the config's output_dir or runs/maml/<name>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: the tensors are tiny, and more threads only contend)")


def _setup(args: argparse.Namespace) -> Any:
    import torch

    from mandril.maml_rl.config import load_config

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    if args.output_dir is not None:
        config = dataclasses.replace(config, output_dir=args.output_dir)
    return config


def _train(args: argparse.Namespace) -> int:
    from mandril.maml_rl.trainer import Trainer

    config = _setup(args)
    if args.num_batches is not None and args.num_batches < 1:
        raise ValueError(f"--num-batches must be >= 1, got {args.num_batches}")
    trainer = Trainer(config, progress=not args.no_progress, resume=args.resume)
    try:
        rows = trainer.train(args.num_batches)
    finally:
        trainer.close()
    last = rows[-10:]
    if last:
        n = config.maml.fast_batch_size
        pre = sum(r["pre_return"] for r in last) / len(last) * n
        post = sum(r["post_return"] for r in last) / len(last) * n
        print(f"{config.name}: {trainer.iteration} meta-iterations, {trainer.elapsed:.0f} s, {trainer.env_steps} env steps; "
              f"last {len(last)} batches: pre {pre:.2f}, post {post:.2f} (totals over n = {n})")
    print(f"wrote {trainer.metrics_path}, {trainer.checkpoint_path}, {trainer.run_dir / 'curve.png'}")
    return 0


def _test(args: argparse.Namespace) -> int:
    from mandril.maml_rl.evaluation import evaluate, format_table
    from mandril.core.io import atomic_write_text, write_json
    from mandril.maml_rl.trainer import load_checkpoint

    config = _setup(args)
    if args.init:
        if args.checkpoint:
            raise ValueError("--init and --checkpoint exclude each other: --init evaluates the initial parameters")
        state = {"policy": _initial_policy_state(config), "iteration": 0}
        checkpoint = Path("<initial parameters>")
    else:
        checkpoint = Path(args.checkpoint) if args.checkpoint else config.run_dir / "checkpoint.pt"
        state = load_checkpoint(checkpoint)
    if args.n_tasks is not None and args.n_tasks < 1:
        raise ValueError(f"--n-tasks must be >= 1, got {args.n_tasks}")
    results = evaluate(config, state["policy"], n_tasks=args.n_tasks, progress=not args.no_progress,
                       iteration=int(state["iteration"]), checkpoint=str(checkpoint))
    output = Path(args.output) if args.output else config.run_dir / "test_results.json"
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
        raise FileNotFoundError(f"metrics file {args.metrics!r} does not exist")
    refs = {}
    for item in args.reference or []:
        label, sep, value = item.rpartition("=")
        if not sep or not label:
            raise ValueError(f"--reference must be LABEL=VALUE, got {item!r}")
        refs[label] = float(value)
    path = plot_curve(args.metrics, args.out, scale=args.scale, title=args.title, references=refs, window=args.window)
    print(f"wrote {path}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``maml-rl`` with ``train``, ``test`` and ``plot`` to the ``mandril`` CLI."""
    parser = subparsers.add_parser("maml-rl", help="MAML for RL with a TRPO outer loop (bandits, tabular MDPs)",
                                   description="MAML for RL with a TRPO outer loop.")
    sub = parser.add_subparsers(dest="maml_command", metavar="SUBCOMMAND", required=True)

    train = sub.add_parser("train", help="meta-train; writes metrics.csv, checkpoint.pt, curve.png")
    _common(train)
    train.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint.pt")
    train.add_argument("--num-batches", type=int, default=None, help="override maml.num_batches")
    train.set_defaults(func=_train)

    test = sub.add_parser("test", help="adapt on held-out tasks; writes returns before/after adaptation with 95%% CIs")
    _common(test)
    test.add_argument("--checkpoint", default=None, help="checkpoint (default: <run dir>/checkpoint.pt)")
    test.add_argument("--output", default=None, help="results JSON (default: <run dir>/test_results.json); a .md table is written next to it")
    test.add_argument("--n-tasks", type=int, default=None, help="override test.n_tasks")
    test.add_argument("--init", action="store_true",
                      help="evaluate the initial parameters (as training starts, before any meta-update): the ablation")
    test.set_defaults(func=_test)

    plot = sub.add_parser("plot", help="redraw the learning curve from a metrics.csv")
    plot.add_argument("--metrics", required=True)
    plot.add_argument("--out", required=True)
    plot.add_argument("--scale", type=float, default=1.0, help="multiply returns (e.g. by n)")
    plot.add_argument("--title", default="")
    plot.add_argument("--window", type=int, default=10)
    plot.add_argument("--reference", action="append", help="LABEL=VALUE horizontal line (repeatable)")
    plot.set_defaults(func=_plot)
