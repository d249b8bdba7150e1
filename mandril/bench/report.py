"""The report of a suite's output directory: statistics, tables, plots, and where MandRIL wins, ties and loses.

Headline score: normalized EVD (0: the expert, 1: a uniform random policy), per family, split and number
of demos, as an interquartile mean and a mean, each with a 95% stratified bootstrap interval over runs x
tasks (:mod:`mandril.eval.stats`), and the share of failures (normalized EVD above 0.1) beside them, with
performance profiles. A failed cell (a diverged fit) is scored as the zero reward on the same task and
demos, not dropped, and counted.

MandRIL against each other method: ``P(MandRIL better)`` (rliable's probability of improvement) with its
interval and the verdict rule of :mod:`mandril.eval.verdicts` (an exact test per comparison, corrected
over all comparisons), whose false-call rate and power the report measures by simulation for its own
runs, tasks and number of comparisons; every verdict re-tested on two halves of the tasks and on each
run (:mod:`mandril.bench.analysis`). The statistics are in :mod:`mandril.bench.analysis`, the plots in
:mod:`mandril.bench.plots`.

Files: ``report.md``, ``summary.csv`` and ``summary.json`` (one row per family, split, n, method),
``comparisons.csv`` (MandRIL against each method), ``more_demos.csv`` (each method with every larger number of demos against the fewest), ``plots/<family>.png``, ``plots/<family>-profiles.png``
and ``plots/aggregate.png``. :func:`publish` copies a run's report with its records
(``records.jsonl.gz``), suite (with the settings each method tried when tuned) and preparation times to a folder, where
``mandril bench report`` recomputes exactly the same report.
"""

from __future__ import annotations

import datetime
import gzip
import json
import os
import platform
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from mandril.bench.analysis import (FAILURE_THRESHOLD, HALVES, HEADLINE_METHOD, REFERENCES, RULE, aggregate, best_others, compare_with,
                                    cell_scores, convergence, fill_failures, identical_methods, more_demos, score_matrix, summarize_records)
from mandril.bench.cells import units_of
from mandril.bench.plots import plot_curves, plot_profiles
from mandril.bench.store import PUBLISHED_RECORDS, SUITE_FILE, RecordScan, RunStore
from mandril.bench.suite import Suite
from mandril.core.io import atomic_write_bytes, atomic_write_text, write_csv, write_json
from mandril.eval.verdicts import simulate_rule

__all__ = ["write_report", "summarize_records", "compare_with", "publish", "HEADLINE_METHOD", "PUBLISHED_RECORDS",
           "PREPARATIONS_FILE", "REPRODUCE_PREFIX"]

#: Kept for callers of the earlier module: the fewest common tasks that get a verdict.
MIN_TASKS_FOR_VERDICT = RULE.min_tasks
#: A published folder's preparation times (a run's are in ``prepared/``).
PREPARATIONS_FILE = "preparations.json"
#: The one line of ``report.md`` that names the commit, the date, the machine and the versions.
REPRODUCE_PREFIX = "Written at git commit"


# --- the report --------------------------------------------------------------------------------------
def _versions() -> dict:
    import importlib.metadata as metadata

    out = {"python": platform.python_version()}
    for name in ("mandril", "torch", "numpy", "gymnasium", "imitation", "stable-baselines3", "rliable", "ray"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10, cwd=Path(__file__).resolve().parent)
        return result.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "") if result.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _cell(row: Optional[dict]) -> str:
    if row is None:
        return ""
    failed = f" ({row['failed']} failed)" if row["failed"] else ""
    return f"{row['nevd_iqm']:.3f} [{row['nevd_low']:.3f}, {row['nevd_high']:.3f}]{failed}"


def _tail_cell(row: Optional[dict]) -> str:
    if row is None:
        return ""
    return (f"{row['nevd_mean']:.3f} [{row['nevd_mean_low']:.3f}, {row['nevd_mean_high']:.3f}]; "
            f"{row['fail_share']:.0%} [{row['fail_low']:.0%}, {row['fail_high']:.0%}]")


def _preparation_seconds(store: RunStore) -> dict[str, float]:
    """A run's preparation times (``prepared/``), or a published folder's (``preparations.json``)."""
    if store.prepared_dir.is_dir():
        return store.preparation_seconds()
    path = store.root / PREPARATIONS_FILE
    if path.is_file():
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    return {}


def _no_records(store: RunStore) -> ValueError:
    return ValueError(f"{store.root} holds no records (no records/ folder with records, and no {PUBLISHED_RECORDS}): its report cannot be "
                      f"recomputed here; run the suite with 'mandril bench run', or publish a run's folder with 'mandril bench publish'")


def _records(store: RunStore) -> list[dict]:
    records = store.records()
    if not records:
        raise _no_records(store)
    return records


def write_report(out: Union[str, Path], seed: int = 0) -> dict:
    """Compute the statistics of ``out``'s records and write the report files; returns the summary.

    Raises:
        FileNotFoundError / ValueError: ``out`` is not a suite's output directory, or holds no records.
    """
    store = RunStore(out)
    folder = store.root / "records"
    if not (store.root / PUBLISHED_RECORDS).is_file() and not (folder.is_dir() and any(folder.iterdir())):
        raise _no_records(store)  # before reading the suite: an old folder's suite may no longer be one this code accepts
    suite = store.suite()
    scan = store.scan(units_of(suite))  # only valid records of the suite's units, each cell once
    records = scan.records
    if not records:
        raise ValueError(f"{store.root} holds no valid records yet: run 'mandril bench run' first" + "".join(f"; {line}" for line in scan.problems(store.root)[:3]))
    order = list(suite.methods)
    rows = summarize_records(records, seed, order)
    comparisons = compare_with(records, seed=seed, order=order)
    combined = aggregate(records, seed)
    identical = identical_methods(records, order)
    improvement = more_demos(records, seed)
    counted = [c for c in comparisons if c["verdict"] != "too few tasks"]
    simulation = None
    if counted:
        shapes = defaultdict(int)
        for c in counted:
            shapes[(c["runs"], c["tasks"])] += 1
        runs, tasks = max(shapes, key=lambda k: (shapes[k], k))
        simulation = simulate_rule(RULE, runs, tasks, len(counted))
    root = store.root
    write_csv(root / "summary.csv", rows)
    write_json(root / "summary.json", {"rows": rows, "aggregate": combined, "comparisons": comparisons, "identical": identical,
                                       "simulation": None if simulation is None else {k: v for k, v in simulation.items() if k not in ("rule", "config")}})
    if comparisons:
        write_csv(root / "comparisons.csv", comparisons)
    if improvement:
        write_csv(root / "more_demos.csv", improvement)
    labels_by_family = {family: {rep: f"{rep} (= {', '.join(sorted(m for m, r in same.items() if r == rep))})" for rep in set(same.values())}
                        for family, same in identical.items()}
    filled, _ = fill_failures(records)
    for family in suite.families:
        family_rows = [r for r in rows if r["family"] == family and not r["same_as"]]
        if not family_rows:
            continue
        labels = labels_by_family.get(family, {})
        title = f"{suite.name}: {family} ({suite.families[family].env_id})"
        plot_curves(family_rows, root / "plots" / f"{family}.png", title, "split", order, REFERENCES, HEADLINE_METHOD, labels)
        scores: dict[tuple, list[dict]] = defaultdict(list)
        for r in filled:
            if r["family"] == family and r["method"] not in identical.get(family, {}):
                scores[(r["split"], r["n_demos"], r["method"])].append(r)
        matrices = {key: score_matrix(members)[0] for key, members in scores.items()}
        plot_profiles({key: m[:, ~np.isnan(m).any(axis=0)] for key, m in matrices.items()}, root / "plots" / f"{family}-profiles.png",
                      f"{title}: performance profiles", order, REFERENCES, HEADLINE_METHOD, labels)
    plot_curves(combined, root / "plots" / "aggregate.png", f"{suite.name}: all families", None, order, REFERENCES, HEADLINE_METHOD)
    atomic_write_text(root / "report.md", _markdown(suite, store, scan, rows, comparisons, combined, identical, simulation, improvement))
    return {"rows": rows, "comparisons": comparisons, "aggregate": combined, "identical": identical, "simulation": simulation, "more_demos": improvement,
            "problems": scan.problems(root), "missing": scan.missing}


def _percent(x: float) -> str:
    return f"{100 * x:.2f}%" if x < 0.1 else f"{100 * x:.0f}%"


def _rule_section(comparisons: list[dict], simulation: Optional[dict]) -> list[str]:
    lines = ["## The verdict rule and its error rates", "",
             f"A comparison of MandRIL with another method is {RULE.describe()}. The exact test's null hypothesis: on every task, the two "
             f"methods' scores are exchangeable; its p-value is exact (no bootstrap resolution limit). The interval beside P(MandRIL better) is "
             f"the 95% percentile interval of the stratified bootstrap (tasks resampled jointly for both methods, runs within each task).", ""]
    if simulation is None:
        return lines + ["No comparison has enough common tasks for a verdict.", ""]
    s, config = simulation, simulation["config"]
    lines += [
        f"Measured by simulation (`mandril.eval.verdicts.simulate_rule`; model: {config.describe()}): with {s['runs']} run(s) x {s['tasks']} tasks "
        f"and {s['comparisons']} comparisons corrected together, this rule calls a difference by chance in {_percent(s['false_call_rate'])} of comparisons "
        f"and detects a method better on {config.share_better:.0%} of tasks with {_percent(s['power'])} power when it is the only real difference "
        f"({_percent(s['power_shared'])} when {config.real_share:.0%} of the comparisons are such differences); of these {s['comparisons']} comparisons, "
        f"chance alone would produce about {s['chance_verdicts']:.2f} verdicts (simulated, from {config.null_comparisons} null comparisons; when no method "
        f"differs, the exact test and the correction hold the chance of any false call among all {s['comparisons']} at or below {RULE.alpha:g} for any "
        f"score distribution" + (", the Benjamini-Hochberg procedure where the tests are independent or positively dependent" if RULE.correction == "bh" else "")
        + "). "
        f"Without the correction, one comparison on its own calls a difference by "
        f"chance in {_percent(s['false_call_rate_uncorrected'])} of cases and detects that method with {_percent(s['power_uncorrected'])} power "
        f"({s['comparisons']} uncorrected comparisons: about {s['false_call_rate_uncorrected'] * s['comparisons']:.1f} chance verdicts).",
        "", "A **tie** is \"not shown to differ\" at this power, not \"equal\".", ""]
    return lines


def _replication_section(comparisons: list[dict], seeds: list[int]) -> list[str]:
    called = [c for c in comparisons if c["verdict"] in ("win", "loss")]
    ties = [c for c in comparisons if c["verdict"] == "tie"]
    lines = ["## Replication", "",
             "Every verdict re-tested, with the same exact test but uncorrected (it re-tests a comparison already named), on the two halves of the "
             "tasks (even and odd task index, a fixed split) and on each run separately. A win or loss that does not hold on both halves is "
             "**fragile** and is not named in the headline.", "",
             "| subset | wins and losses reproduced | ties still ties | reversed (win <-> loss) |", "|---|---|---|---|"]

    def row(name: str, get) -> str:
        same = sum(1 for c in called if get(c) == c["verdict"])
        kept = sum(1 for c in ties if get(c) == "tie")
        flipped = sum(1 for c in called if {get(c), c["verdict"]} == {"win", "loss"})
        return f"| {name} | {same} of {len(called)} | {kept} of {len(ties)} | {flipped} |"

    for half in HALVES:
        lines.append(row(f"tasks of {half} index", lambda c, h=half: c[f"verdict_{h}"]))
    for seed in seeds:
        lines.append(row(f"run (seed) {seed}", lambda c, s=seed: dict(part.split(":", 1) for part in c["verdict_runs"].split(";") if part).get(str(s))))
    fragile = [c for c in called if c["robust"] == "no"]
    lines += ["", f"Robust wins and losses (hold on both halves): {len(called) - len(fragile)} of {len(called)}; fragile: "
              + (", ".join(f"{c['verdict']} against {c['method']} on {c['family']}/{c['split']} n={c['n_demos']} (halves: {c['verdict_even']}, {c['verdict_odd']})" for c in fragile) or "none") + "."]
    if len(seeds) == 1:
        lines.append("With one run, the per-run check is the full data again.")
    return lines + [""]


def _headline_section(suite: Suite, comparisons: list[dict], rows: list[dict]) -> list[str]:
    best = best_others(comparisons)
    if not best:
        return []
    iqm = {(r["family"], r["split"], r["n_demos"], r["method"]): r for r in rows}
    lines = ["## Headline: MandRIL against the method it is least likely to beat", "",
             "Per family, split and n, the other method with the lowest P(MandRIL better) (never chosen by IQM), with the verdict; only "
             "robust verdicts (they hold on both halves of the tasks) are named as wins or losses here.", "",
             "| family | split | n | MandRIL IQM | best other | its IQM | P(MandRIL better) [95%] | verdict |", "|---|---|---|---|---|---|---|---|"]
    for c in best:
        mine, theirs = iqm.get((c["family"], c["split"], c["n_demos"], HEADLINE_METHOD)), iqm.get((c["family"], c["split"], c["n_demos"], c["method"]))
        name = c["method"] + (f" (= {c['identical'].replace(';', ', ')})" if c["identical"] else "")
        verdict = c["verdict"] if c["verdict"] == "tie" or c["robust"] == "yes" else f"tie ({c['verdict']}, fragile)"
        lines.append(f"| {c['family']} | {c['split']} | {c['n_demos']} | {_fmt(mine and mine['nevd_iqm'])} | {name} | {_fmt(theirs and theirs['nevd_iqm'])} "
                     f"| {c['p_better']:.2f} [{c['p_low']:.2f}, {c['p_high']:.2f}] | {verdict} |")
    robust = [c for c in comparisons if c["robust"] == "yes"]
    for verdict, word in (("win", "Robust wins"), ("loss", "Robust losses")):
        named = [f"{c['method']} ({c['family']}/{c['split']}, n={c['n_demos']})" for c in robust if c["verdict"] == verdict]
        lines += ["", f"{word} of MandRIL against any method: " + (", ".join(named) if named else "none") + "."]
    return lines + [""]


#: The reference that knows the family's prior: the limit of what n demos allow (:mod:`mandril.methods.bayes`).
LIMIT_METHOD = "bayes"


def _limit_section(suite: Suite, records: list[dict], identical: dict) -> list[str]:
    """Each learning method's distance to the limit (``bayes``): the mean over their common cells (run, task) of
    its normalized EVD minus the limit's, per family, split and n (the gap left to close; the mean, not the
    IQM, so that failures count, scored as the zero reward like everywhere in the report)."""
    if LIMIT_METHOD not in suite.methods:
        return []
    scores = cell_scores(records)
    learners = [m for m in suite.methods if m not in REFERENCES]
    lines = ["## Gap to the limit", "",
             f"`{LIMIT_METHOD}` is the posterior mode of the reward under the family's true prior given the n demos (it sees the prior, never "
             "the task's reward): about the best that n demos allow (a posterior mode, not the decision that minimises EVD, so a method can "
             "beat it on some tasks). Each cell: the mean over the cells a method shares with the limit (runs x tasks; a method on a reduced "
             "grid, on its few tasks) of its normalized EVD minus the limit's (0: it uses all that the demos and the family's prior reveal; "
             "larger: the gap left to close); the limit's own mean in the fourth column.", "",
             "| family | split | n | limit | " + " | ".join(learners) + " |", "|---|---|---|---|" + "---|" * len(learners)]
    for family, spec in suite.families.items():
        for split in spec.splits:
            for n in suite.family_n_demos(family):
                limit = scores.get((family, split, n, LIMIT_METHOD))
                if not limit:
                    continue
                cells = []
                for method in learners:
                    mine = scores.get((family, split, n, method), {})
                    common = sorted(set(mine) & set(limit))
                    same = method in identical.get(family, {})
                    cells.append("" if same or not common else f"{sum(mine[k] - limit[k] for k in common) / len(common):+.3f}")
                lines.append(f"| {family} | {split} | {n} | {sum(limit.values()) / len(limit):.3f} | " + " | ".join(cells) + " |")
    return lines + [""]


def _more_demos_section(improvement: list[dict], identical: dict) -> list[str]:
    """Whether each learning method is worse with more demos than with the fewest, per family, split, run and n."""
    rows = [r for r in improvement if r["method"] not in identical.get(r["family"], {})]
    if not rows:
        return []
    worse = [r for r in rows if r["worse"]]
    ns = sorted({r["n_last"] for r in rows})
    lines = ["## More demos", "",
             "Each learning method's mean normalized EVD with n demos minus with the fewest (the first n), on the same tasks (negative: better "
             "with more demos), with the 95% bootstrap interval of the mean paired difference, over all runs. A method is **worse with more "
             "demos** where the whole interval lies above 0, over all runs or in any single run (marked **!**, followed by the runs where it is). "
             "Every row, per run too, is in `more_demos.csv`.", ""]
    if worse:
        lines += ["Worse with more demos beyond noise: " + "; ".join(
            f"`{r['method']}` on `{r['family']}`/`{r['split']}` " + ("over all runs" if r["seed"] == "all" else f"run {r['seed']}")
            + f" ({r['first']:.3f} at n={r['n_first']} -> {r['last']:.3f} at n={r['n_last']})" for r in worse) + ".", ""]
    else:
        lines += ["No method is worse with more demos beyond noise on any family, split, run or n.", ""]
    lines += ["| method | family | split | from n | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|---|---|---|" + "---|" * len(ns)]
    groups: dict[tuple, dict] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        groups[(r["method"], r["family"], r["split"], r["n_first"])][r["n_last"]][r["seed"]] = r

    def cell(by_run: dict) -> str:
        if not by_run:
            return ""
        total = by_run.get("all")
        text = "" if total is None else f"{total['difference']:+.3f} [{total['low']:+.3f}, {total['high']:+.3f}]"
        flagged = [str(k) for k, r in by_run.items() if r["worse"]]
        return text + (f" **!** ({', '.join('all runs' if k == 'all' else 'run ' + k for k in flagged)})" if flagged else "")

    for (method, family, split, first_n), by_n in groups.items():
        lines.append(f"| {method} | {family} | {split} | {first_n} | " + " | ".join(cell(by_n.get(n, {})) for n in ns) + " |")
    return lines + [""]


def _markdown(suite: Suite, store: RunStore, scan: RecordScan, rows: list[dict], comparisons: list[dict], combined: list[dict],
              identical: dict, simulation: Optional[dict], improvement: Sequence[dict] = ()) -> str:
    records = scan.records
    failed = sum(1 for r in records if r.get("error"))
    seeds = sorted({r["seed"] for r in records})
    lines = [f"# Benchmark `{suite.name}`", ""]
    if suite.description:
        lines += [suite.description.strip(), ""]
    lines += [
        "Scores: **normalized EVD** (0: as good as the expert; 1: as bad as a uniform random policy; lower is better). Intervals are 95% "
        "percentile intervals of the project's vectorised stratified bootstrap (`mandril.eval.stats.interval`), which implements rliable's "
        "definitions (IQM, probability of improvement; `StratifiedBootstrap` with `task_bootstrap=True`: tasks resampled, then runs within "
        "each task) and is cross-checked against rliable in the tests. Raw EVD, success and held-out demo NLL are in `summary.csv`. A failed "
        "cell (a diverged fit) is scored as the zero reward on the same task and counted.",
        "",
        f"Cells: {len(records)} of {scan.cells} done" + (f" (**incomplete**: {scan.missing} cells missing)" if scan.missing else "")
        + f"; {failed} failed. Runs (seeds) {seeds}; likelihood `{suite.likelihood}` for every MaxEnt-family method.",
        "",
    ]
    lines += [f"- not counted: `{line}`" for line in scan.problems(".")] + ([""] if scan.problems(".") else [])
    for method, limits in suite.cells.items():
        scope = [f"families {', '.join(limits.families)}" if limits.families else "", f"splits {', '.join(limits.splits)}" if limits.splits else "",
                 f"n = {', '.join(map(str, limits.n_demos))}" if limits.n_demos else "", f"the first {limits.n_tasks} tasks of each split" if limits.n_tasks else "",
                 f"seeds {list(limits.seeds)}" if limits.seeds else ""]
        lines.append(f"- `{method}` runs on a reduced grid: " + "; ".join(part for part in scope if part) + " (its comparisons rest on those cells alone).")
    if suite.cells:
        lines.append("")
    if identical:
        lines += ["Methods with identical results (the same normalized EVD on every cell of a family, within 1e-12) are shown and compared once:"]
        for family, same in identical.items():
            for rep in sorted(set(same.values())):
                lines.append(f"- `{family}`: `{rep}` = " + ", ".join(f"`{m}`" for m in sorted(m for m, r in same.items() if r == rep)))
        lines.append("")
    lines += _headline_section(suite, comparisons, rows)
    lines += _limit_section(suite, records, identical)
    lines += _more_demos_section(list(improvement), identical)
    lines += _rule_section(comparisons, simulation)
    if comparisons:
        counts = {v: sum(1 for c in comparisons if c["verdict"] == v) for v in ("win", "tie", "loss", "too few tasks")}
        fragile = sum(1 for c in comparisons if c["robust"] == "no")
        lines += ["## Where MandRIL wins, ties and loses", "",
                  f"Against each other method on the same cells, `P(MandRIL better)` on normalized EVD with its 95% interval and the verdict "
                  f"of the rule above: {counts['win']} wins, {counts['tie']} ties, {counts['loss']} losses ({fragile} of the wins and losses fragile, "
                  f"marked *), over families x splits x n x methods"
                  + (f"; {counts['too few tasks']} comparisons on fewer than {RULE.min_tasks} common tasks get no verdict (P shown)" if counts["too few tasks"] else "")
                  + ".", ""]
        for family in suite.families:
            for split in suite.families[family].splits:
                here = [c for c in comparisons if c["family"] == family and c["split"] == split]
                if not here:
                    continue
                parts = []
                for verdict in ("loss", "tie", "win", "too few tasks"):
                    named = [f"{c['method']}{'*' if c['robust'] == 'no' else ''} (n={c['n_demos']}, P={c['p_better']:.2f})" for c in here if c["verdict"] == verdict]
                    if named:
                        parts.append(f"**{ {'win': 'wins', 'tie': 'ties', 'loss': 'losses', 'too few tasks': 'too few tasks to call'}[verdict]}**: " + ", ".join(named))
                lines += [f"- `{family}` / `{split}`: " + "; ".join(parts)]
        lines.append("")
        lines += _replication_section(comparisons, seeds)
    lines += ["## Normalized EVD by family", "",
              f"Per family: the IQM [95% interval] by n; then the tails: the mean [95% interval] and the share of failures (runs x tasks with "
              f"normalized EVD above {FAILURE_THRESHOLD}) [95% interval]; and the performance profiles (the share of runs x tasks at or below each "
              f"threshold tau; the dotted line is tau = {FAILURE_THRESHOLD}).", ""]
    for family, spec in suite.families.items():
        same = identical.get(family, {})
        lines += [f"### {family} (`{spec.env_id}` {json.dumps(spec.env_kwargs)})", "", f"![{family}](plots/{family}.png)", "",
                  f"![{family} profiles](plots/{family}-profiles.png)", ""]
        for split in spec.splits:
            here = [r for r in rows if r["family"] == family and r["split"] == split and not r["same_as"]]
            if not here:
                continue
            ns = sorted({r["n_demos"] for r in here})
            for caption, render in (("IQM", _cell), ("mean; failures", _tail_cell)):
                lines += [f"`{split}`, {caption}:", "", "| method | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
                for method in suite.methods:
                    by_n = {r["n_demos"]: r for r in here if r["method"] == method}
                    if by_n:
                        name = f"**{method}**" if method == HEADLINE_METHOD else method
                        twins = sorted(m for m, r in same.items() if r == method)
                        name += f" (= {', '.join(twins)})" if twins else ""
                        lines.append(f"| {name} | " + " | ".join(render(by_n.get(n)) for n in ns) + " |")
                lines.append("")
    if combined:
        ns = sorted({r["n_demos"] for r in combined})
        lines += ["## All families together", "", "![aggregate](plots/aggregate.png)", "", "| method | families | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|---|" + "---|" * len(ns)]
        for method in suite.methods:
            by_n = {r["n_demos"]: r for r in combined if r["method"] == method}
            if by_n:
                families = sorted({f for r in by_n.values() for f in r["families"]})
                lines.append(f"| {method} | {len(families)} | " + " | ".join("" if n not in by_n else f"{by_n[n]['nevd_iqm']:.3f} [{by_n[n]['nevd_low']:.3f}, {by_n[n]['nevd_high']:.3f}]" for n in ns) + " |")
        lines.append("")
    lines += _care_section(suite, store, records)
    seconds: dict[str, float] = defaultdict(float)
    for r in records:
        seconds[r["method"]] += float(r.get("seconds") or 0.0)
    preparation = _preparation_seconds(store)
    lines += ["## Wall time", "", "| method | fitting (s, all cells) | preparation (s) |", "|---|---|---|"]
    for method in suite.methods:
        prepared = sum(v for k, v in preparation.items() if k.split("--")[0] == method)
        lines.append(f"| {method} | {seconds[method]:.1f} | {prepared:.1f} |")
    fitting, preparing = sum(seconds.values()), sum(preparation.values())
    lines += ["", f"In all: {fitting:.0f} s fitting and {preparing:.0f} s preparing, {(fitting + preparing) / 3600:.2f} worker-hours "
              "(each worker runs one torch thread, so about as many CPU-hours; scoring, demos and planning the experts are not counted)."]
    lines += ["", "## Settings", ""]
    for family in suite.families:
        lines += [f"`{family}`:", ""]
        for method in suite.methods:
            if not suite.runs_on(method, family):
                continue
            settings = suite.make_method(method, family, suite.seeds[0]).settings()
            settings.pop("seed", None)
            by_n = suite.by_n(method, family)
            per_n = f"; per number of demos (`by_n`, the entry of the largest key at most n applies): `{json.dumps(by_n, sort_keys=True)}`" if by_n else ""
            lines.append(f"- `{method}` ({suite.config_hash(method, family)}): `{json.dumps(settings, sort_keys=True)}`{per_n}")
        lines.append("")
    versions = _versions()
    lines += [
        "## Reproduce",
        "",
        f"Suite digest `{suite.digest()}`. The full suite is in `suite.json`; every cell's record in `records/` (a run's folder) or "
        f"`{PUBLISHED_RECORDS}` (a published folder), from which `mandril bench report DIR` recomputes this report.",
        "",
        f"{REPRODUCE_PREFIX} `{_commit()}` on {datetime.date.today().isoformat()}; machine {platform.machine()} {platform.system()}, "
        f"{os.cpu_count()} CPUs; versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
    ]
    return "\n".join(lines)


def _care_section(suite: Suite, store: RunStore, records: list[dict]) -> list[str]:
    """Convergence share and tuning budget per method and family."""
    converged = convergence(records)
    recorded = any(spec.tried for spec in suite.families.values())
    families = list(suite.families)
    learners = [m for m in suite.methods if m not in REFERENCES]
    lines = ["## Convergence and tuning", "",
             "Converged: fits whose record says `info.converged` (of the fits that report it; \"not reported\": the method does not say). "
             "Settings tried: how many settings (grid points x per-n values) the tuning sweep scored on the family's validation tasks"
             + (", from the suite's tuned settings (`[families.F.tried]` of the sweep's selected file); \"1 (not tuned)\": the method was not in the sweep."
                if recorded else "; **not recorded**: the suite names no tuning sweep's counts (`[families.F.tried]`), so the tuning budget is unknown here."), "",
             "| method | " + " | ".join(f"{f}: converged | {f}: settings tried" for f in families) + " |", "|---|" + "---|---|" * len(families)]
    for method in learners:
        cells = []
        for family in families:
            if not suite.runs_on(method, family):
                cells += ["", ""]
                continue
            pair = converged.get(method, {}).get(family)
            cells.append("not reported" if pair is None else f"{pair[0]} of {pair[1]}")
            if not recorded:
                cells.append("not recorded")
            else:
                count = suite.families[family].tried.get(method)
                cells.append("1 (not tuned)" if count is None else str(count))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + [""]


# --- publishing --------------------------------------------------------------------------------------
def publish(out: Union[str, Path], dest: Union[str, Path], seed: int = 0) -> Path:
    """Copy the run in ``out`` to ``dest`` as a self-contained published folder, and write its report there.

    ``dest`` gets ``suite.json``, the records (``records.jsonl.gz``: every record of ``out``, in the order
    :meth:`RunStore.records` reads them, gzip without a timestamp), the preparation times
    (``preparations.json``), then the report, computed
    from those files alone: ``mandril bench report DEST`` rewrites it identically (only the line starting
    with :data:`REPRODUCE_PREFIX`, naming the commit, the date and the versions, may differ).

    Raises:
        ValueError: ``out`` holds no records, ``dest`` is ``out``, or ``dest`` is a non-empty folder that is
            not a published folder of the same suite.
    """
    source, target = RunStore(out), RunStore(dest)
    suite_file = source.read_suite_file()
    if not (source.root / "records").is_dir():
        raise ValueError(f"{source.root} has no records/ folder: publish the output directory of 'mandril bench run'")
    records = _records(source)
    if target.root.resolve() == source.root.resolve():
        raise ValueError(f"the destination {str(target.root)!r} is the run's own folder: choose another")
    if target.root.exists():
        if not target.root.is_dir():
            raise ValueError(f"the destination {str(target.root)!r} is a file, not a folder")
        entries = [p.name for p in target.root.iterdir()]
        if entries:
            if not (target.root / PUBLISHED_RECORDS).is_file() or not (target.root / SUITE_FILE).is_file():
                raise ValueError(f"the destination {str(target.root)!r} is not empty and is not a published folder: choose an empty or new one")
            if target.read_suite_file().get("digest") != suite_file.get("digest"):
                raise ValueError(f"the destination {str(target.root)!r} holds another suite's published results: choose another folder")
    target.root.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(record, sort_keys=True, allow_nan=True) + "\n" for record in records)
    atomic_write_bytes(target.root / PUBLISHED_RECORDS, gzip.compress(text.encode("utf-8"), mtime=0))
    write_json(target.root / PREPARATIONS_FILE, _preparation_seconds(source))
    if (target.root / "plots").is_dir():
        shutil.rmtree(target.root / "plots")
    write_json(target.root / SUITE_FILE, suite_file)
    write_report(target.root, seed)
    return target.root
