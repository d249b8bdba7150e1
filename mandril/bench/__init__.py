"""The benchmark harness: a suite (TOML) -> a grid of resumable cells -> records -> statistics and a report.

    >>> from mandril.bench import load_suite, run_suite, write_report
    >>> summary = run_suite(load_suite("benchmarks/suites/smoke.toml"), "reports/smoke", workers=2)
    >>> write_report("reports/smoke")

See :mod:`mandril.bench.suite` (the file format), :mod:`mandril.bench.cells` (cells and units),
:mod:`mandril.bench.store` (the output directory), :mod:`mandril.bench.runners` (local workers, Ray),
:mod:`mandril.bench.analysis` (statistics and verdicts), :mod:`mandril.bench.plots` and :mod:`mandril.bench.report`
(the report, and publishing a run with its records).
"""

from mandril.bench.cells import Preparation, Unit, preparations_of, units_of
from mandril.bench.report import compare_with, publish, summarize_records, write_report
from mandril.bench.runners import BACKENDS, RunSummary, run_suite
from mandril.bench.store import RecordScan, RunStore
from mandril.bench.suite import Suite, load_suite, suite_from_dict

__all__ = [
    "BACKENDS",
    "Preparation",
    "RecordScan",
    "RunStore",
    "RunSummary",
    "Suite",
    "Unit",
    "compare_with",
    "load_suite",
    "preparations_of",
    "publish",
    "run_suite",
    "suite_from_dict",
    "summarize_records",
    "units_of",
    "write_report",
]
