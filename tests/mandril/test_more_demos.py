"""Whether a method gets worse with more demos: paired differences per run and over runs, worked by hand."""

import numpy as np
import pytest

from mandril.bench.analysis import more_demos


def _record(method, seed, task, n, nevd, error=None, family="bandit", split="test"):
    return {"method": method, "family": family, "split": split, "seed": seed, "task": task, "n_demos": n,
            "normalized_evd": nevd, "error": error, "evd": nevd, "learned_return": 0.0, "demo_nll": 1.0, "success": None}


def test_a_method_worse_on_every_task_with_more_demos_is_flagged_and_the_difference_is_the_paired_mean():
    records = []
    for seed in (0, 1):
        for task in range(8):
            records += [_record("m", seed, task, 1, 0.1 * task), _record("m", seed, task, 4, 0.5), _record("m", seed, task, 16, 0.1 * task + 0.2 + 0.01 * seed)]
    every = more_demos(records)
    assert sorted({(r["n_first"], r["n_last"]) for r in every}) == [(1, 4), (1, 16)]  # every larger n against the fewest
    at_4 = {r["seed"]: r for r in every if r["n_last"] == 4}
    assert at_4[0]["difference"] == pytest.approx(0.5 - np.mean([0.1 * t for t in range(8)]))
    rows = {r["seed"]: r for r in every if r["n_last"] == 16}
    assert set(rows) == {0, 1, "all"}
    assert rows[0]["n_first"] == 1 and rows[0]["n_last"] == 16 and rows[0]["tasks"] == 8
    assert rows[0]["difference"] == pytest.approx(0.2) and rows[1]["difference"] == pytest.approx(0.21)
    assert rows["all"]["difference"] == pytest.approx(0.205)
    assert rows[0]["first"] == pytest.approx(np.mean([0.1 * t for t in range(8)])) and rows[0]["last"] == pytest.approx(rows[0]["first"] + 0.2)
    assert all(r["worse"] and r["low"] > 0 for r in rows.values())


def test_a_method_better_or_unchanged_with_more_demos_is_not_flagged():
    records = []
    for task in range(10):
        records += [_record("better", 0, task, 1, 0.5), _record("better", 0, task, 32, 0.5 - 0.01 * task)]
        records += [_record("same", 0, task, 1, 0.3), _record("same", 0, task, 32, 0.3)]
        records += [_record("noisy", 0, task, 1, 0.3), _record("noisy", 0, task, 32, 0.3 + (0.1 if task % 2 else -0.1))]
    rows = {r["method"]: r for r in more_demos(records) if r["seed"] == "all"}
    assert not any(r["worse"] for r in rows.values())
    assert rows["same"]["difference"] == 0 and rows["same"]["low"] == 0 == rows["same"]["high"]
    assert rows["better"]["high"] < 0
    assert rows["noisy"]["low"] < 0 < rows["noisy"]["high"]


def test_references_are_left_out_and_a_failed_cell_counts_as_the_zero_reward():
    records = []
    for task in range(6):
        records += [_record("zero_reward", 0, task, 1, 1.0), _record("zero_reward", 0, task, 8, 1.0)]
        records += [_record("m", 0, task, 1, 0.2), _record("m", 0, task, 8, None if task == 0 else 0.2, error="diverged" if task == 0 else None)]
    rows = more_demos(records)
    assert {r["method"] for r in rows} == {"m"}
    total = next(r for r in rows if r["seed"] == "all")
    assert total["difference"] == pytest.approx(0.8 / 6)  # the failed cell scores 1.0 (the zero reward), the rest 0.2 -> 0.2


def test_a_method_scored_at_one_number_of_demos_gets_no_row():
    assert more_demos([_record("m", 0, t, 4, 0.1) for t in range(5)]) == []


def test_the_report_section_flags_a_worse_n_and_names_its_run():
    from mandril.bench.report import _more_demos_section

    records = []
    for seed in (0, 1):
        for task in range(10):
            records += [_record("m", seed, task, 1, 0.3), _record("m", seed, task, 4, 0.2 - 0.001 * task),
                        _record("m", seed, task, 16, 0.3 + (0.1 + 0.002 * task if seed == 1 else 0.0))]
    lines = _more_demos_section(more_demos(records), {})
    text = "\n".join(lines)
    assert "| method | family | split | from n | n=4 | n=16 |" in text
    row = next(line for line in lines if line.startswith("| m | bandit | test | 1 |"))
    at_4, at_16 = row.split(" | ")[4:6]
    assert "**!**" not in at_4 and at_4.startswith("-0.10")
    assert "**!** (run 1, all runs)" in at_16
    assert "`m` on `bandit`/`test` run 1 (0.300 at n=1 -> 0.409 at n=16)" in text
