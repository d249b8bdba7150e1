"""``mandril bench run|report|publish|status``: the benchmark harness.

    mandril bench run benchmarks/suites/quick.toml --out reports/quick --workers 2
    mandril bench run benchmarks/suites/quick.toml --out reports/quick --resume     # after a kill
    mandril bench status reports/quick
    mandril bench report reports/quick
    mandril bench publish reports/quick benchmarks/results/quick   # report + records.jsonl.gz + suite
    mandril bench report benchmarks/results/quick                  # recomputes the published report exactly
    mandril bench run standard --replicate 1 --out reports/standard-r1   # other held-out tasks, other runs
    mandril bench compare benchmarks/results/standard reports/standard-r1  # do the robust verdicts hold?
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mandril.cli.options import HelpFormatter, positive_int, torch_device

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``bench`` with ``run``, ``report``, ``publish``, ``status`` and ``compare``."""
    bench = subparsers.add_parser(
        "bench",
        help="run a benchmark suite, report it, or show how far it got",
        description="The benchmark harness: a suite file (benchmarks/suites/*.toml) is a grid of cells (family, split, method, "
        "seed, task, number of demos), each scored against the true model and recorded as it finishes; a killed run resumes "
        "with --resume and ends with exactly the records of an uninterrupted one.",
    )
    commands = bench.add_subparsers(dest="bench_command", metavar="ACTION", required=True)
    run = commands.add_parser(
        "run",
        help="run (or resume) a suite, then write its report",
        description="Run every cell of SUITE not yet done in --out, with a progress bar over cells, then write report.md, "
        "summary.csv and plots. With --resume, a unit whose records file is empty, truncated or foreign is redone, a failed "
        "preparation retried, a damaged prepared state prepared again (one line each). Exits 0 when every cell of the run "
        "succeeded, 1 when some cells of the run failed, those of earlier runs in --out included (they are recorded, the rest "
        "ran; one line 'N cells failed: ...' on stderr), 2 on bad input (nothing is run).",
        formatter_class=HelpFormatter,
    )
    run.add_argument("suite", help="suite TOML file (e.g. benchmarks/suites/quick.toml), or the name of a committed suite shipped with the package (smoke, quick, standard, paper)")
    run.add_argument("--out", required=True, help="output directory (refused if it holds another suite, or this one without --resume)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out: skip finished cells and preparations")
    run.add_argument("--workers", type=positive_int, default=1, help="worker processes (each with one torch thread); 1 runs in this process")
    run.add_argument("--backend", choices=["local", "ray"], default="local", help="local process pool, or Ray tasks")
    run.add_argument("--ray-address", help="a Ray cluster to join (default with --backend ray: a local Ray instance)")
    run.add_argument("--device", type=torch_device, default="cpu", help="where batched fits and training run: cpu, or cuda (cuda:N) when a GPU is there")
    run.add_argument("--replicate", type=positive_int, metavar="R",
                     help="run replicate R of the suite instead: every family's held-out tasks from the stream task_seed + R, runs seeded "
                     "s + 1000 R (fresh preparations and demos), the rest unchanged; named SUITE-replicate-R ('mandril bench compare' checks its verdicts)")
    run.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    run.set_defaults(func=_cmd_run)
    report = commands.add_parser("report", help="(re)write the report of an output directory", formatter_class=HelpFormatter,
                                 description="Compute the statistics of DIR's records and write report.md, summary.csv, summary.json, comparisons.csv and plots/.")
    report.add_argument("dir", help="output directory of 'mandril bench run', or a folder written by 'mandril bench publish'")
    report.set_defaults(func=_cmd_report)
    publish = commands.add_parser("publish", help="copy a run's report with its records and suite to a folder", formatter_class=HelpFormatter,
                                  description="Write DEST/suite.json, DEST/records.jsonl.gz (every record of OUT, compressed), DEST/preparations.json "
                                  "and the report computed from them; 'mandril bench report DEST' rewrites "
                                  "the same report. DEST must be new, empty, or an earlier publication of the same suite.")
    publish.add_argument("out", help="output directory of 'mandril bench run'")
    publish.add_argument("dest", help="the folder to publish to")
    publish.set_defaults(func=_cmd_publish)
    status = commands.add_parser("status", help="cells done, failed and left, per method", formatter_class=HelpFormatter,
                                 description="Count the cells of DIR's suite that are done, failed and left, per method.")
    status.add_argument("dir", help="output directory of 'mandril bench run'")
    status.set_defaults(func=_cmd_status)
    compare = commands.add_parser("compare", help="check a run's robust verdicts on a replicate", formatter_class=HelpFormatter,
                                  description="Look up each robust win and loss of FIRST's comparisons.csv in SECOND's (a replicate: 'mandril bench run "
                                  "SUITE --replicate 1'): it agrees, becomes a tie, or flips. Prints the share that agree and every flip; exits 0.")
    compare.add_argument("first", help="a run's or published folder with comparisons.csv (e.g. benchmarks/results/standard)")
    compare.add_argument("second", help="its replicate's folder")
    compare.add_argument("--out", help="also write the comparison as markdown to this file")
    compare.set_defaults(func=_cmd_compare)


def _cmd_run(args: argparse.Namespace) -> int:
    from mandril.bench import load_suite, run_suite, write_report
    from mandril.bench.runners import check_backend
    from mandril.bench.suite import resolve_file
    from mandril.core.io import check_writable_dir

    check_backend(args.backend, args.ray_address)  # before anything is read or written (also done by run_suite)
    suite = load_suite(resolve_file(args.suite, "suites"))  # every setting of every method on every family is checked here
    if args.replicate:
        from mandril.bench.suite import replicate

        suite = replicate(suite, args.replicate)
    check_writable_dir(args.out)
    summary = run_suite(suite, args.out, resume=args.resume, workers=args.workers, backend=args.backend, ray_address=args.ray_address,
                        progress=not args.quiet, device=None if args.device == "cpu" else args.device)
    if not args.no_report and summary.done_before + summary.done_now > 0:
        write_report(args.out)
    if not args.quiet:
        print(f"{suite.name}: {summary.done_now} cells run in {summary.seconds:.0f} s ({summary.done_before} were done before), "
              f"{summary.failed} failed; report: {Path(args.out) / 'report.md'}")
        for failure in summary.failures[:10]:
            print(f"  failed: {failure}")
        if len(summary.failures) > 10:
            print(f"  ... and {len(summary.failures) - 10} more (see the records)")
    if summary.failed:
        print(f"{summary.failed} cells failed ({summary.failed_now} in this run): see 'mandril bench status {args.out}' and the "
              f"'error' of their records in {Path(args.out) / 'records'}", file=sys.stderr)
        return 1
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from mandril.bench import write_report

    result = write_report(args.dir)
    for line in result["problems"]:
        print(f"not counted: {line}", file=sys.stderr)
    incomplete = f"; incomplete: {result['missing']} cells missing" if result["missing"] else ""
    print(f"wrote {Path(args.dir) / 'report.md'} ({len(result['rows'])} rows, {len(result['comparisons'])} comparisons{incomplete})")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from mandril.bench import publish

    dest = publish(args.out, args.dest)
    print(f"published {args.out} to {dest} (report.md, summary.csv, comparisons.csv, plots/, records.jsonl.gz, suite.json)")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from mandril.bench import RunStore, units_of

    store = RunStore(args.dir)
    units = units_of(store.suite())
    scan = store.scan(units)
    for line in scan.problems(store.root):
        print(f"not counted: {line}", file=sys.stderr)
    table = store.status(units, scan)
    width = max(len(m) for m in table)
    print(f"{'method':{width}s}  {'cells':>7s} {'done':>7s} {'failed':>7s} {'left':>7s}")
    for method, row in table.items():
        print(f"{method:{width}s}  {row['cells']:7d} {row['done']:7d} {row['failed']:7d} {row['left']:7d}")
    if scan.missing:
        print(f"incomplete: {scan.missing} of {scan.cells} cells missing (run 'mandril bench run SUITE --out {args.dir} --resume')")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from mandril.bench.replication import compare_runs, replication_markdown
    from mandril.core.io import atomic_write_text

    result = compare_runs(args.first, args.second)
    text = replication_markdown(result, args.first, args.second)
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text.split("\n## Every verdict")[0].rstrip())
    return 0
