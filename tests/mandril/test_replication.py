"""Replicates of a suite (other held-out tasks, other runs) and the check of a run's robust verdicts on one."""

import csv
import json
from pathlib import Path

import pytest

from mandril.bench import load_suite
from mandril.bench.replication import compare_runs, replication_markdown
from mandril.bench.suite import REPLICATE_SEED_STRIDE, replicate
from mandril.cli import main

ROOT = Path(__file__).resolve().parents[2]
STANDARD = ROOT / "benchmarks" / "suites" / "standard.toml"


def test_a_replicate_draws_other_held_out_tasks_and_runs_and_keeps_everything_else():
    suite = load_suite(STANDARD)
    again = replicate(suite, 2)
    assert again.name == "standard-replicate-2"
    assert again.seeds == tuple(s + 2 * REPLICATE_SEED_STRIDE for s in suite.seeds)
    for name, spec in suite.families.items():
        other = again.families[name]
        assert other.task_seed == spec.task_seed + 2
        assert other.train == spec.train and other.n_tasks == spec.n_tasks and other.splits == spec.splits and other.methods == spec.methods
    assert again.settings == suite.settings and again.methods == suite.methods and again.n_demos == suite.n_demos
    assert {m: (c.n_demos, c.n_tasks, c.families) for m, c in again.cells.items()} == {m: (c.n_demos, c.n_tasks, c.families) for m, c in suite.cells.items()}
    for method in ("airl", "gail", "bc"):  # run in the first run only: the replicate's first run
        assert suite.cells[method].seeds == (suite.seeds[0],)
        assert again.cells[method].seeds == (suite.seeds[0] + 2 * REPLICATE_SEED_STRIDE,)
    assert again.digest() != suite.digest() != replicate(suite, 1).digest()
    assert replicate(suite, 2).digest() == again.digest()  # deterministic
    for method in suite.methods:  # the training pools and settings are the same: preparations differ only by their run seed
        for family in suite.families:
            if suite.runs_on(method, family):
                assert again.preparation_hash(method, family) == suite.preparation_hash(method, family)


@pytest.mark.parametrize("number", [0, -1, 1.5, True, "1"])
def test_a_bad_replicate_number_is_refused(number):
    with pytest.raises(ValueError, match="replicate must be an int >= 1"):
        replicate(load_suite(STANDARD), number)


FIELDS = ["family", "split", "n_demos", "method", "verdict", "robust"]


def _folder(path: Path, rows: list[tuple], task_seed: int, seeds: list[int]) -> Path:
    path.mkdir()
    with open(path / "comparisons.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        for family, n, method, verdict, robust in rows:
            writer.writerow({"family": family, "split": "test", "n_demos": n, "method": method, "verdict": verdict, "robust": robust})
    (path / "suite.json").write_text(json.dumps({"suite": {"families": {"bandit": {"task_seed": task_seed}, "grid": {"task_seed": task_seed}}, "seeds": seeds}}))
    return path


def test_robust_verdicts_are_checked_on_the_replicate(tmp_path):
    first = _folder(tmp_path / "a", [("bandit", 1, "x", "win", "yes"), ("bandit", 4, "x", "win", "yes"), ("bandit", 16, "x", "loss", "yes"),
                                      ("grid", 1, "y", "win", "no"), ("grid", 4, "y", "tie", ""), ("grid", 16, "y", "loss", "yes")], 1, [0, 1, 2])
    second = _folder(tmp_path / "b", [("bandit", 1, "x", "win", "yes"), ("bandit", 4, "x", "tie", ""), ("bandit", 16, "x", "win", "no"),
                                       ("grid", 1, "y", "loss", "yes"), ("grid", 4, "y", "tie", "")], 2, [1000, 1001, 1002])
    result = compare_runs(first, second)
    assert result["robust"] == 4 and result["agree"] == 1 and result["share"] == 0.25
    assert [(e["n_demos"], e["first"], e["second"]) for e in result["flips"]] == [("16", "loss", "win")]
    assert sorted((e["family"], e["second"]) for e in result["not_replicated"]) == [("bandit", "tie"), ("grid", "missing")]
    assert result["confusion"] == {("win", "win"): 1, ("win", "tie"): 1, ("loss", "win"): 1, ("win", "loss"): 1, ("tie", "tie"): 1, ("loss", "missing"): 1}
    assert result["shared_tasks"] == [] and result["shared_runs"] == []
    text = replication_markdown(result, "a", "b")
    assert "1 of 4 robust verdicts agree (25%); 1 flip" in text and "Not an independent" not in text
    same = compare_runs(first, first)
    assert same["share"] == 1.0 and same["shared_tasks"] == ["bandit", "grid"] and same["shared_runs"] == [0, 1, 2]
    assert "Not an independent replicate" in replication_markdown(same, "a", "a")


def test_the_compare_command_prints_the_share_and_writes_markdown(tmp_path, capsys):
    first = _folder(tmp_path / "a", [("bandit", 1, "x", "win", "yes")], 1, [0])
    second = _folder(tmp_path / "b", [("bandit", 1, "x", "win", "yes")], 2, [1000])
    assert main(["bench", "compare", str(first), str(second), "--out", str(tmp_path / "r.md")]) == 0
    assert "1 of 1 robust verdicts agree (100%); 0 flip" in capsys.readouterr().out
    assert (tmp_path / "r.md").read_text().startswith("# Replication of")


def test_the_compare_command_refuses_a_folder_without_comparisons_in_one_line(tmp_path, capsys):
    first = _folder(tmp_path / "a", [("bandit", 1, "x", "win", "yes")], 1, [0])
    (tmp_path / "empty").mkdir()
    assert main(["bench", "compare", str(first), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no comparisons.csv" in err[0]


def test_a_replicate_of_zero_is_refused_by_the_cli_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "run", "smoke", "--out", str(tmp_path / "r"), "--replicate", "0"])
    assert exit_info.value.code == 2 and not (tmp_path / "r").exists()
    assert "--replicate" in capsys.readouterr().err


def test_a_replicate_run_from_the_cli_scores_other_tasks_with_other_runs(tmp_path):
    from mandril.bench import RunStore

    out = tmp_path / "replicate"
    assert main(["bench", "run", "smoke", "--replicate", "1", "--out", str(out), "--quiet", "--no-report"]) == 0
    store = RunStore(out)
    suite, original = store.suite(), load_suite(ROOT / "benchmarks" / "suites" / "smoke.toml")
    assert suite.name == "smoke-replicate-1" and suite.digest() == replicate(original, 1).digest()
    records = store.records()
    assert {r["seed"] for r in records} == {s + REPLICATE_SEED_STRIDE for s in original.seeds}
    assert {r["suite"] for r in records} == {"smoke-replicate-1"} and not any(r["error"] for r in records)


def test_the_published_replication_is_what_compare_gives_and_what_the_readme_quotes():
    """benchmarks/results/standard/replication.md is ``mandril bench compare`` of the published run and its published
    replicate (independent: no held-out task stream or run in common), and benchmarks/README.md quotes its figures."""
    results = ROOT / "benchmarks" / "results"
    first, second = "benchmarks/results/standard", "benchmarks/results/standard-replicate-1"
    result = compare_runs(ROOT / first, ROOT / second)
    assert (results / "standard" / "replication.md").read_text() == replication_markdown(result, first, second)
    assert result["shared_tasks"] == [] and result["shared_runs"] == [] and result["flips"] == []
    assert (result["agree"], result["robust"]) == (120, 133) and result["share"] >= 0.9
    cheap = {"airl", "gail", "bc"}
    missed = [e for e in result["not_replicated"] if e["method"] in cheap]
    with open(results / "standard" / "comparisons.csv", newline="") as handle:
        robust = [r for r in csv.DictReader(handle) if r["robust"] == "yes"]
    robust_cheap = sum(r["method"] in cheap for r in robust)
    readme = " ".join((ROOT / "benchmarks" / "README.md").read_text().split())
    for figure in (f"{result['agree']} of the {result['robust']} robust verdicts agree", f"{len(missed)} of those {len(result['not_replicated'])}",
                   f"{robust_cheap - len(missed)} of their {robust_cheap} robust verdicts agree",
                   f"{len(robust) - robust_cheap - (len(result['not_replicated']) - len(missed))} of the other {len(robust) - robust_cheap}"):
        assert figure in readme, figure
