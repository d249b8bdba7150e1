"""``mandril tune SWEEP --out DIR``: choose every method's settings on validation tasks.

    mandril tune benchmarks/tuning/quick.toml --out reports/tune-quick --workers 2
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mandril.cli.options import HelpFormatter, positive_int

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``tune``."""
    p = subparsers.add_parser(
        "tune",
        help="tuning sweep: choose methods' settings on validation tasks (never test tasks)",
        description="Run every combination of a sweep file (benchmarks/tuning/*.toml) on validation tasks (train-split tasks no "
        "training pool reaches) through the benchmark harness, select the best settings per family, and write selected.toml "
        "(for a suite's tuned = ...), tuning.csv and tuning.md to --out. Rerunning continues a killed sweep.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("sweep", help="sweep TOML file, or the name of a committed sweep shipped with the package (quick)")
    p.add_argument("--out", required=True, help="output directory (one per sweep; a rerun continues it)")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_tune)


def _cmd_tune(args: argparse.Namespace) -> int:
    from mandril.bench.suite import resolve_file
    from mandril.bench.tune import load_sweep, run_sweep

    from mandril.core.io import check_writable_dir

    sweep, suite = load_sweep(resolve_file(args.sweep, "tuning"))
    check_writable_dir(args.out)
    result = run_sweep(sweep, suite, args.out, workers=args.workers, progress=not args.quiet)
    print(f"selected settings for {len(result['selected'])} families: {Path(args.out) / 'selected.toml'} (details in tuning.md)")
    return 0
