"""Tuning sweeps: every method's settings chosen on validation tasks, never on test tasks, with the same
freedom per number of demos for every method.

A sweep file (``benchmarks/tuning/*.toml``)::

    name = "quick"
    suite = "../suites/quick.toml"   # the suite whose methods are tuned (its families, pools, defaults)
    n_tasks = 20                     # validation tasks per family: train-split tasks no training pool reaches
    seeds = [0, 1]                   # runs; at least 2 where a tuned method is prepared (meta-trained, pre-trained)
    n_demos = [1, 4, 16]             # default: the suite's
    [grid.mandril]                   # settings chosen once for every n (e.g. what shapes a preparation)
    inner_lr = [0.01, 0.03]
    [per_n.mandril]                  # settings chosen separately for each number of demos
    adapt_steps = [1, 5, 20]
    adapt_lr_scale = [1.0, 0.3]
    [per_n.maxent_tabular]
    l2 = [0.001, 0.01, 0.1]

Every combination of ``grid`` and ``per_n`` values runs as a suite on the ``validation`` split
(:data:`~mandril.bench.suite.VALIDATION_SPLIT`) through the same harness as the benchmark, with one shared
folder of prepared methods, so settings that only change how a prepared method fits a new task reuse its
preparation. Every combination is scored at every ``n``, so choosing a ``per_n`` setting separately for
each ``n`` costs nothing more: ``per_n`` may hold any setting the method can change per number of demos
(:meth:`~mandril.methods.base.Method.per_n_settings`), and a sweep should give every method's fit settings
that freedom (the report prints how many settings each method tried). A failed cell is scored as the zero
reward on the same task, as in the benchmark. The score of a combination at ``n`` is the **mean**
normalized EVD over runs x tasks (a setting that fails badly on a few tasks is not chosen; the IQM would
hide it); per family the ``grid`` point with the lowest mean over ``n`` of its best ``per_n`` scores is
selected, with its best ``per_n`` values at each ``n`` (a ``by_n`` table in the suite's settings: with
``n`` demos the entry of the largest tuned ``n`` at most ``n`` applies).

The sweep writes ``selected.toml`` (tables ``[families.F.methods.M]``, which a suite includes with
``tuned = "..."``, and ``[families.F.tried]``: how many settings each method tried), ``tuning.csv`` (every
combination's scores) and ``tuning.md``. A killed sweep continues with ``resume``.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from mandril.bench.report import summarize_records
from mandril.bench.runners import run_suite
from mandril.bench.store import RunStore
from mandril.bench.suite import BY_N, MAX_TASKS, VALIDATION_SPLIT, Suite, check_name, load_suite, suite_from_dict
from mandril.core.config import build_dataclass, load_toml, toml_value
from mandril.core.io import atomic_write_text, write_csv

__all__ = ["Sweep", "load_sweep", "run_sweep", "tried_settings", "STAND_IN", "MAX_COMBINATIONS"]

#: Scores a combination's failed cells (as in the benchmark: the zero reward on the same task and demos).
STAND_IN = "zero_reward"
#: The most setting combinations a sweep may try, all methods together (each one runs the suite's
#: cells of that method on validation tasks; the committed sweeps try a few dozen).
MAX_COMBINATIONS = 1_000


@dataclass(frozen=True)
class Sweep:
    """A tuning sweep (see the module docstring).

    Attributes:
        name: the sweep's name.
        suite: path of the suite to tune, relative to the sweep file.
        n_tasks: validation tasks per family.
        seeds: runs.
        n_demos: demo counts (default: the suite's).
        families: the families to tune on (default: all of the suite's).
        grid: ``{method: {setting: [values]}}``: every combination is tried.
        per_n: ``{method: {setting: [values]}}``: chosen separately for each number of demos (composed
            into the method's ``by_n`` table).
    """

    name: str
    suite: str
    n_tasks: int = 20
    seeds: tuple[int, ...] = (0,)
    n_demos: tuple[int, ...] = ()
    families: tuple[str, ...] = ()
    grid: dict = field(default_factory=dict)
    per_n: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name, "name")  # it names the derived suites
        if not 1 <= self.n_tasks <= MAX_TASKS:
            raise ValueError(f"n_tasks must be between 1 and {MAX_TASKS}, got {self.n_tasks}")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {list(self.seeds)}")
        for section in ("grid", "per_n"):
            for method, table in getattr(self, section).items():
                if not isinstance(table, dict) or not table:
                    raise ValueError(f"[{section}.{method}] must be a table of settings, each a list of values")
                for setting, values in table.items():
                    if not isinstance(values, list) or not values:
                        raise ValueError(f"[{section}.{method}] {setting} must be a non-empty list of values, got {values!r}")
        counts = {method: math.prod(len(v) for v in self.grid.get(method, {}).values()) * math.prod(len(v) for v in self.per_n.get(method, {}).values())
                  for method in set(self.grid) | set(self.per_n)}
        if sum(counts.values()) > MAX_COMBINATIONS:
            raise ValueError(f"[grid] and [per_n] make {sum(counts.values()):,} combinations ({', '.join(f'{m}: {n:,}' for m, n in sorted(counts.items()))}), "
                             f"more than the {MAX_COMBINATIONS:,} a sweep may run (each is a run of the suite on validation tasks): fewer values")
        for method, table in self.per_n.items():
            clash = sorted(set(table) & set(self.grid.get(method, {})))
            if clash:
                raise ValueError(f"[per_n.{method}] and [grid.{method}] both set {clash}: a setting is chosen once for every n or per n, not both")


def load_sweep(path: Union[str, Path]) -> tuple[Sweep, Suite]:
    """Read a sweep file and the suite it tunes; every combination's settings are checked before any work."""
    from mandril.methods import METHODS

    path = Path(path)
    sweep = build_dataclass(Sweep, load_toml(path), str(path))
    suite = load_suite((path.parent / sweep.suite).resolve())
    unknown = sorted((set(sweep.grid) | set(sweep.per_n)) - set(suite.methods))
    if unknown:
        raise ValueError(f"{path}: methods {unknown} are not in the suite's methods {list(suite.methods)}")
    stray = [f for f in sweep.families if f not in suite.families]
    if stray:
        raise ValueError(f"{path}: families {stray} are not families of the suite")
    for method, table in sweep.per_n.items():
        allowed = METHODS[method].per_n_settings()
        fixed = sorted(set(table) - set(allowed))
        if fixed:
            raise ValueError(f"{path}: [per_n.{method}] {fixed} cannot change with the number of demos (they shape the preparation): "
                             f"tune them in [grid.{method}]; per n: {sorted(allowed)}")
    prepared = sorted(m for m in set(sweep.grid) | set(sweep.per_n) if METHODS[m].needs_preparation)
    if prepared and len(sweep.seeds) < 2:
        raise ValueError(f"{path}: seeds must hold at least 2 runs to tune prepared methods {prepared}: a setting that only works for one "
                         f"meta-trained model is not a property of the method")
    for method in sorted(set(sweep.grid) | set(sweep.per_n)):
        for point, variant in itertools.product(_points(sweep.grid.get(method, {})), _points(sweep.per_n.get(method, {}))):
            for family in _families(sweep, suite, method):
                try:
                    _derived(sweep, suite, method, point, variant, family)
                except (TypeError, ValueError) as error:
                    raise type(error)(f"{path}: [{method}] on {family} {point} {variant}: {error}") from None
    return sweep, suite


def _families(sweep: Sweep, suite: Suite, method: str) -> list[str]:
    """The families ``method`` is tuned on: the sweep's (default: the suite's) where the suite runs it."""
    return [f for f in (sweep.families or tuple(suite.families)) if suite.runs_on(method, f)]


def _points(table: dict) -> list[dict]:
    names = sorted(table)
    return [dict(zip(names, values)) for values in itertools.product(*(table[n] for n in names))] if names else [{}]


def _derived(sweep: Sweep, suite: Suite, method: str, point: dict, variant: dict, family: str) -> Suite:
    """The suite that scores ``method`` with ``point`` (and the per-n ``variant``) on ``family``'s validation tasks."""
    data = copy.deepcopy(suite.to_dict())
    families = (family,)
    data["name"] = f"{sweep.name}-{method}-{family}"
    data["methods"] = [method, STAND_IN] if method != STAND_IN else [method]  # the stand-in scores failed cells
    data["seeds"] = list(sweep.seeds)
    data["n_demos"] = list(sweep.n_demos or suite.n_demos)
    data["families"] = {f: {**data["families"][f], "splits": [VALIDATION_SPLIT], "n_tasks": sweep.n_tasks, "n_demos": [], "tried": {}} for f in families}
    for f in families:
        own = {k: v for k, v in data["families"][f]["methods"].get(method, {}).items() if k != BY_N}  # the values tried replace a tuned by_n
        data["families"][f]["methods"] = {method: {**own, **point, **variant}}
    data["settings"] = {method: {k: v for k, v in data["settings"][method].items() if k != BY_N}} if method in data["settings"] else {}
    data["cells"] = {}
    data.pop("tuned", None)
    return suite_from_dict(data, f"sweep {sweep.name} [{method}]")


def run_sweep(sweep: Sweep, suite: Suite, out: Union[str, Path], *, workers: int = 1, progress: bool = True) -> dict:
    """Run every combination not yet done in ``out`` and select the best per family (module docstring).

    Returns:
        ``{"rows": [every combination's score per family and n], "selected": {family: {method: settings}}}``.
    """
    out = Path(out)
    rows: list[dict] = []
    for method in sorted(set(sweep.grid) | set(sweep.per_n)):
        for point, variant in itertools.product(_points(sweep.grid.get(method, {})), _points(sweep.per_n.get(method, {}))):
            for family in _families(sweep, suite, method):
                derived = _derived(sweep, suite, method, point, variant, family)
                directory = out / "runs" / method / family / derived.digest()
                if progress:
                    print(f"{method} on {family}: {json.dumps(point)} {json.dumps(variant) if variant else ''}", flush=True)
                run_suite(derived, directory, resume=True, workers=workers, progress=progress, prepared_dir=out / "prepared")
                for row in summarize_records(RunStore(directory).records()):
                    if row["method"] != method:
                        continue
                    rows.append({"method": method, "point": json.dumps(point, sort_keys=True), "variant": json.dumps(variant, sort_keys=True),
                                 "family": row["family"], "n_demos": row["n_demos"], "nevd_mean": row["nevd_mean"], "nevd_iqm": row["nevd_iqm"],
                                 "nevd_low": row["nevd_low"], "nevd_high": row["nevd_high"], "failed": row["failed"]})
    selected = _select(rows)
    write_csv(out / "tuning.csv", rows)
    atomic_write_text(out / "selected.toml", _selected_toml(sweep, selected, tried_settings(rows)))
    atomic_write_text(out / "tuning.md", _markdown(sweep, rows, selected))
    return {"rows": rows, "selected": selected}


def _select(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """``{family: {method: settings}}``: per family the ``grid`` point with the lowest mean over n of its best
    ``per_n`` variant's mean normalized EVD, with that variant per n as a ``by_n`` table (module docstring)."""
    selected: dict[str, dict[str, dict]] = {}
    for family in sorted({r["family"] for r in rows}):
        for method in sorted({r["method"] for r in rows if r["family"] == family}):
            mine = [r for r in rows if r["family"] == family and r["method"] == method]
            ns = sorted({r["n_demos"] for r in mine})

            def best_variants(point: str) -> dict[int, dict]:
                return {n: min((r for r in mine if r["point"] == point and r["n_demos"] == n), key=lambda r: (r["nevd_mean"], r["failed"], r["variant"])) for n in ns}

            def point_score(point: str) -> tuple[float, int, str]:
                best = best_variants(point)
                return sum(r["nevd_mean"] for r in best.values()) / len(ns), sum(r["failed"] for r in best.values()), point

            chosen = min(sorted({r["point"] for r in mine}), key=point_score)
            settings = json.loads(chosen)
            per_n = {n: json.loads(r["variant"]) for n, r in best_variants(chosen).items()}
            if any(per_n.values()):
                settings[BY_N] = {str(n): v for n, v in per_n.items()}
            selected.setdefault(family, {})[method] = settings
    return selected


def tried_settings(rows: list[dict]) -> dict[str, dict[str, int]]:
    """``{family: {method: how many settings (grid points x per_n variants) were tried}}``."""
    tried: dict[str, dict[str, int]] = {}
    for r in rows:
        tried.setdefault(r["family"], {}).setdefault(r["method"], set()).add((r["point"], r["variant"]))  # type: ignore[arg-type]
    return {f: {m: len(v) for m, v in sorted(methods.items())} for f, methods in sorted(tried.items())}  # type: ignore[arg-type]


def _selected_toml(sweep: Sweep, selected: dict, tried: dict) -> str:
    lines = [f"# Settings selected by the tuning sweep {sweep.name!r} on validation tasks (train split, tasks no training",
             "# pool reaches); never on test tasks. Written by 'mandril tune'; a suite includes it with tuned = \"...\".", ""]
    for family, methods in selected.items():
        for method, settings in methods.items():
            lines.append(f"[families.{family}.methods.{method}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in sorted(settings.items())]
            lines.append("")
        lines.append(f"[families.{family}.tried]  # settings each method tried on this family")
        lines += [f"{method} = {count}" for method, count in tried.get(family, {}).items()]
        lines.append("")
    return "\n".join(lines)


def _markdown(sweep: Sweep, rows: list[dict], selected: dict) -> str:
    lines = [f"# Tuning sweep `{sweep.name}`", "",
             f"Validation tasks: {sweep.n_tasks} per family (train split, from task {1_000_000:,} on: no training pool reaches them); seeds "
             f"{list(sweep.seeds)}. Score: normalized EVD, mean over runs x tasks (failed cells scored as the zero reward), "
             f"per n; a grid point's score is the mean over n of its best per-n values; lower is better. IQM in the csv.", ""]
    for family in sorted({r["family"] for r in rows}):
        lines += [f"## {family}", ""]
        for method in sorted({r["method"] for r in rows if r["family"] == family}):
            mine = [r for r in rows if r["family"] == family and r["method"] == method]
            ns = sorted({r["n_demos"] for r in mine})
            tried = len({(r["point"], r["variant"]) for r in mine})
            lines += [f"`{method}` ({tried} settings tried; selected: `{json.dumps(selected[family][method], sort_keys=True)}`)", "",
                      "| settings | per n | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|---|" + "---|" * len(ns)]
            for point in sorted({r["point"] for r in mine}):
                for variant in sorted({r["variant"] for r in mine if r["point"] == point}):
                    by_n = {r["n_demos"]: r for r in mine if r["point"] == point and r["variant"] == variant}
                    cells = [f"{by_n[n]['nevd_mean']:.3f}" + (f" ({by_n[n]['failed']} failed)" if by_n[n]["failed"] else "") if n in by_n else "" for n in ns]
                    lines.append(f"| `{point}` | `{variant}` | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)
