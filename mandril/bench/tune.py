"""Tuning sweeps: every method's settings chosen on validation tasks, never on test tasks.

A sweep file (``benchmarks/tuning/*.toml``)::

    name = "quick"
    suite = "../suites/quick.toml"   # the suite whose methods are tuned (its families, pools, defaults)
    n_tasks = 20                     # validation tasks per family: train-split tasks no training pool reaches
    seeds = [0]
    n_demos = [1, 4, 16]             # default: the suite's
    [grid.maxent_tabular]            # every combination is tried
    l2 = [0.001, 0.01, 0.1]
    [grid.mandril]
    inner_lr = [0.01, 0.03]
    [per_n.mandril]                  # MandRIL's adaptation, chosen separately for each number of demos
    adapt_steps = [1, 5, 20]
    lr_scale = [1.0, 0.3]

Each combination runs as a suite on the ``validation`` split (:data:`~mandril.bench.suite.VALIDATION_SPLIT`)
through the same harness as the benchmark, with one shared folder of prepared methods, so settings that
only change how a prepared method fits a new task reuse its preparation. The score of a combination on
a family is the mean over ``n`` of the IQM of normalized EVD; the best one per family is selected (and,
for ``per_n`` settings, the best per ``n``). The sweep writes ``selected.toml`` (tables
``[families.F.methods.M]``, which a suite includes with ``tuned = "..."``), ``tuning.csv`` (every
combination's scores) and ``tuning.md``. A killed sweep continues with ``resume``.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from mandril.bench.report import summarize_records
from mandril.bench.runners import run_suite
from mandril.bench.store import RunStore
from mandril.bench.suite import MAX_TASKS, VALIDATION_SPLIT, Suite, load_suite, suite_from_dict
from mandril.core.config import build_dataclass, load_toml
from mandril.core.io import atomic_write_text, write_csv

__all__ = ["Sweep", "load_sweep", "run_sweep", "MAX_COMBINATIONS"]

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
        per_n: ``{method: {setting: [values]}}``: chosen per number of demos (MandRIL's
            ``adapt_steps`` and ``lr_scale``, composed into its ``adapt_by_n``).
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
            if method != "mandril" or not set(table) <= {"adapt_steps", "lr_scale"}:
                raise ValueError(f"[per_n.{method}]: only MandRIL's adaptation (adapt_steps, lr_scale) is chosen per n, got {sorted(table)}")


def load_sweep(path: Union[str, Path]) -> tuple[Sweep, Suite]:
    """Read a sweep file and the suite it tunes; every combination's settings are checked before any work."""
    path = Path(path)
    sweep = build_dataclass(Sweep, load_toml(path), str(path))
    suite = load_suite((path.parent / sweep.suite).resolve())
    unknown = sorted((set(sweep.grid) | set(sweep.per_n)) - set(suite.methods))
    if unknown:
        raise ValueError(f"{path}: methods {unknown} are not in the suite's methods {list(suite.methods)}")
    stray = [f for f in sweep.families if f not in suite.families]
    if stray:
        raise ValueError(f"{path}: families {stray} are not families of the suite")
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


def _variant_settings(variant: dict) -> dict:
    if not variant:
        return {}
    return {"adapt_by_n": {"1": {"steps": int(variant.get("adapt_steps", 1)), "lr_scale": float(variant.get("lr_scale", 1.0))}}}


def _derived(sweep: Sweep, suite: Suite, method: str, point: dict, variant: dict, family: str) -> Suite:
    """The suite that scores ``method`` with ``point`` (and the per-n ``variant``) on ``family``'s validation tasks."""
    data = copy.deepcopy(suite.to_dict())
    families = (family,)
    data["name"] = f"{sweep.name}-{method}-{family}"
    data["methods"] = [method]
    data["seeds"] = list(sweep.seeds)
    data["n_demos"] = list(sweep.n_demos or suite.n_demos)
    data["families"] = {f: {**data["families"][f], "splits": [VALIDATION_SPLIT], "n_tasks": sweep.n_tasks, "n_demos": []} for f in families}
    for f in families:
        data["families"][f]["methods"] = {method: {**data["families"][f]["methods"].get(method, {}), **point, **_variant_settings(variant)}}
    data["settings"] = {method: data["settings"].get(method, {})} if method in data["settings"] else {}
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
                    rows.append({"method": method, "point": json.dumps(point, sort_keys=True), "variant": json.dumps(variant, sort_keys=True),
                                 "family": row["family"], "n_demos": row["n_demos"], "nevd_iqm": row["nevd_iqm"], "nevd_low": row["nevd_low"],
                                 "nevd_high": row["nevd_high"], "failed": row["failed"]})
    selected = _select(rows)
    write_csv(out / "tuning.csv", rows)
    atomic_write_text(out / "selected.toml", _selected_toml(sweep, selected))
    atomic_write_text(out / "tuning.md", _markdown(sweep, rows, selected))
    return {"rows": rows, "selected": selected}


def _select(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """``{family: {method: settings}}``: per family the point with the lowest mean IQM over n; per n the best variant."""
    selected: dict[str, dict[str, dict]] = {}
    for family in sorted({r["family"] for r in rows}):
        for method in sorted({r["method"] for r in rows if r["family"] == family}):
            mine = [r for r in rows if r["family"] == family and r["method"] == method]
            ns = sorted({r["n_demos"] for r in mine})

            def best_variants(point: str) -> dict[int, dict]:
                return {n: min((r for r in mine if r["point"] == point and r["n_demos"] == n), key=lambda r: (r["failed"], r["nevd_iqm"])) for n in ns}

            def point_score(point: str) -> tuple[int, float]:
                best = best_variants(point)
                return sum(r["failed"] for r in best.values()), sum(r["nevd_iqm"] for r in best.values()) / len(ns)

            points = sorted({r["point"] for r in mine})
            chosen = min(points, key=point_score)
            settings = json.loads(chosen)
            per_n = {n: json.loads(r["variant"]) for n, r in best_variants(chosen).items()}
            if any(per_n.values()):
                settings["adapt_by_n"] = {str(n): {"steps": int(v.get("adapt_steps", 1)), "lr_scale": float(v.get("lr_scale", 1.0))} for n, v in per_n.items()}
            selected.setdefault(family, {})[method] = settings
    return selected


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _selected_toml(sweep: Sweep, selected: dict) -> str:
    lines = [f"# Settings selected by the tuning sweep {sweep.name!r} on validation tasks (train split, tasks no training",
             "# pool reaches); never on test tasks. Written by 'mandril tune'; a suite includes it with tuned = \"...\".", ""]
    for family, methods in selected.items():
        for method, settings in methods.items():
            lines.append(f"[families.{family}.methods.{method}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in sorted(settings.items())]
            lines.append("")
    return "\n".join(lines)


def _markdown(sweep: Sweep, rows: list[dict], selected: dict) -> str:
    lines = [f"# Tuning sweep `{sweep.name}`", "",
             f"Validation tasks: {sweep.n_tasks} per family (train split, from task {1_000_000:,} on: no training pool reaches them); seeds "
             f"{list(sweep.seeds)}. Score: normalized EVD, IQM over tasks and seeds, averaged over n; lower is better.", ""]
    for family in sorted({r["family"] for r in rows}):
        lines += [f"## {family}", ""]
        for method in sorted({r["method"] for r in rows if r["family"] == family}):
            mine = [r for r in rows if r["family"] == family and r["method"] == method]
            ns = sorted({r["n_demos"] for r in mine})
            lines += [f"`{method}` (selected: `{json.dumps(selected[family][method], sort_keys=True)}`)", "",
                      "| settings | per n | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|---|" + "---|" * len(ns)]
            for point in sorted({r["point"] for r in mine}):
                for variant in sorted({r["variant"] for r in mine if r["point"] == point}):
                    by_n = {r["n_demos"]: r for r in mine if r["point"] == point and r["variant"] == variant}
                    cells = [f"{by_n[n]['nevd_iqm']:.3f}" + (f" ({by_n[n]['failed']} failed)" if by_n[n]["failed"] else "") if n in by_n else "" for n in ns]
                    lines.append(f"| `{point}` | `{variant}` | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)
