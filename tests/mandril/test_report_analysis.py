"""The report's analysis of records: identical methods, verdicts with their replication, the best other method, tails, convergence."""

from __future__ import annotations

import numpy as np
import pytest

from mandril.bench.analysis import best_others, compare_with, convergence, identical_methods, summarize_records
from mandril.eval.verdicts import VerdictRule


def records(method, values, family="f", split="test", n=1, seeds=(0,), info=None):
    """Records of ``method`` with normalized EVD ``values`` (runs x tasks, or tasks for one run)."""
    values = np.atleast_2d(values)
    return [{"family": family, "split": split, "n_demos": n, "method": method, "seed": s, "task": t, "normalized_evd": float(v), "evd": float(v),
             "error": None, "info": info or {}} for s, row in zip(seeds, values) for t, v in enumerate(row)]


BASE = np.random.default_rng(0).uniform(0.2, 0.8, 40)


def by_method(rows):
    return {(r["family"], r["method"], r["n_demos"]): r for r in rows}


def test_identical_methods_are_shown_and_compared_once_and_a_twin_of_mandril_is_a_tie():
    data = (records("mandril", BASE) + records("a", BASE + 0.1) + records("b", BASE + 0.1 + 1e-13) + records("c", BASE + 0.1 + 1e-6)
            + records("twin", BASE) + records("a", BASE, family="g") + records("b", BASE + 0.05, family="g") + records("mandril", BASE, family="g"))
    same = identical_methods(data, order=["mandril", "a", "b", "c", "twin"])
    assert same == {"f": {"b": "a"}}  # c differs by 1e-6; the twin of mandril is compared, not hidden; g's a and b differ
    rows = by_method(compare_with(data, order=["mandril", "a", "b", "c", "twin"]))
    assert ("f", "b", 1) not in rows and rows[("f", "a", 1)]["identical"] == "b"
    assert rows[("f", "twin", 1)]["verdict"] == "tie" and rows[("f", "twin", 1)]["p_value"] == 1.0 and rows[("f", "twin", 1)]["p_better"] == 0.5
    assert rows[("f", "a", 1)]["verdict"] == "win" and rows[("f", "c", 1)]["verdict"] == "win"
    summary = {(r["family"], r["method"]): r for r in summarize_records(data, order=["mandril", "a", "b"])}
    assert summary[("f", "b")]["same_as"] == "a" and summary[("f", "a")]["same_as"] == "" and summary[("g", "b")]["same_as"] == ""


def test_a_verdict_that_holds_on_one_half_of_the_tasks_only_is_fragile():
    # 40 tasks: MandRIL better on every even task (20 of 20), and on 10 of the 20 odd ones: 30 of 40 overall
    odd_better = np.zeros(40, bool)
    odd_better[1::4] = True
    other = np.where((np.arange(40) % 2 == 0) | odd_better, BASE + 0.1, BASE - 0.1)
    # and a method MandRIL beats on every task
    rows = by_method(compare_with(records("mandril", BASE) + records("half", other) + records("all", BASE + 0.1)))
    half, everywhere = rows[("f", "half", 1)], rows[("f", "all", 1)]
    assert half["p_better"] == 0.75 and half["verdict"] == "win"
    assert (half["verdict_even"], half["verdict_odd"], half["robust"]) == ("win", "tie", "no")
    assert (everywhere["verdict_even"], everywhere["verdict_odd"], everywhere["robust"]) == ("win", "win", "yes")
    assert half["verdict_runs"] == "0:win" and half["runs"] == 1 and half["tasks"] == 40


def test_verdicts_are_corrected_over_all_comparisons_and_retested_per_run():
    rng = np.random.default_rng(1)
    # 2 runs x 12 tasks, each task at one level in both runs; MandRIL better on 11 of 12 tasks: every pair of runs
    # agrees, so the exact test is the sign test, p = 2 (1 + 12) / 2^12
    mine = np.tile(rng.uniform(0.2, 0.8, 12), (2, 1))
    better_on = np.arange(12) < 11
    other = np.where(better_on, mine + 0.1, mine - 0.1)
    data = records("mandril", mine, seeds=(0, 1)) + records("x", other, seeds=(0, 1))
    alone = by_method(compare_with(data))[("f", "x", 1)]
    assert alone["p_value"] == pytest.approx(2 * 13 / 4096)
    assert alone["verdict"] == "win" and alone["verdict_runs"] == "0:win;1:win"
    # the same comparison among 20 null ones (methods equal to MandRIL but for tiny noise on 1 task each)
    nulls = []
    for k in range(20):
        bumped = mine.copy()
        bumped[:, k % 12] += 0.01 * (k + 1)  # distinct, or identical ones would be compared once
        nulls += records(f"null{k:02d}", bumped, seeds=(0, 1))
    corrected = by_method(compare_with(data + nulls, rule=VerdictRule(correction="holm")))
    assert corrected[("f", "x", 1)]["p_value"] == alone["p_value"]
    assert corrected[("f", "x", 1)]["p_adjusted"] == pytest.approx(min(1.0, 21 * alone["p_value"]))
    assert corrected[("f", "x", 1)]["verdict"] == "tie"


def test_the_best_other_method_is_chosen_by_p_better_not_by_a_tied_iqm():
    # every method at 0 on most tasks (the IQM ties at 0), but "rare" fails where MandRIL does not on 8 tasks, "often" on 2 only
    zeros = np.zeros(40)
    rare, often = zeros.copy(), zeros.copy()
    rare[:2] = 1.0
    often[:8] = 1.0
    data = records("mandril", zeros) + records("often", often) + records("rare", rare)
    summary = {r["method"]: r for r in summarize_records(data)}
    assert summary["often"]["nevd_iqm"] == summary["rare"]["nevd_iqm"] == summary["mandril"]["nevd_iqm"] == 0.0
    best = best_others(compare_with(data))
    assert [b["method"] for b in best] == ["rare"] and best[0]["p_better"] == pytest.approx(0.5 + 2 / 80)


def test_tails_beside_the_iqm():
    values = np.array([0.0] * 16 + [0.05, 0.2, 0.5, 3.0])
    row = summarize_records(records("m", values))[0]
    assert row["nevd_iqm"] == pytest.approx(np.sort(values)[5:15].mean())
    assert row["nevd_mean"] == pytest.approx(values.mean()) and row["nevd_mean_low"] < row["nevd_mean"] < row["nevd_mean_high"]
    assert row["fail_share"] == pytest.approx(3 / 20) and row["fail_low"] < 0.15 < row["fail_high"]


def test_convergence_share_counts_the_fits_that_report_it():
    data = (records("m", BASE[:3], info={"converged": True}) + records("m", BASE[:2], info={"converged": False}, family="g")
            + records("m", BASE[:1], family="h") + records("r", BASE[:4]))
    data[1]["info"] = {"converged": False}
    assert convergence(data) == {"m": {"f": (2, 3), "g": (0, 2), "h": None}, "r": {"f": None}}
