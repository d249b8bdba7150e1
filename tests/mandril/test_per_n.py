"""Equal care per number of demos: every method's fit settings may be chosen per n (a suite's ``by_n``
tables), the same way for every method; the demo-conditioned network is trained on every n it is scored at."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from mandril.bench import RunStore, load_suite
from mandril.bench.runners import run_suite
from mandril.bench.suite import by_n_entry, suite_from_dict

SMOKE = Path(__file__).resolve().parents[2] / "benchmarks" / "suites" / "smoke.toml"


@pytest.fixture(scope="module")
def smoke_data() -> dict:
    return load_suite(SMOKE).to_dict()


def _with(data: dict, family: str, method: str, **settings) -> dict:
    data = copy.deepcopy(data)
    data["families"][family]["methods"][method] = {**data["families"][family]["methods"].get(method, {}), **settings}
    return data


def test_the_entry_of_the_largest_key_at_most_n_applies():
    by_n = {"4": {"l2": 0.1}, "16": {"l2": 1.0, "max_steps": 5}}
    assert [by_n_entry(by_n, n) for n in (1, 3, 4, 15, 16, 32)] == [{}, {}, {"l2": 0.1}, {"l2": 0.1}, {"l2": 1.0, "max_steps": 5}, {"l2": 1.0, "max_steps": 5}]


def test_a_suite_resolves_by_n_per_unit_and_hashes_each_n_apart(smoke_data):
    suite = suite_from_dict(_with(smoke_data, "gridworld", "maxent_tabular", l2=0.01, by_n={"4": {"l2": 3.0}}))
    assert suite.method_settings("maxent_tabular", "gridworld", 0)["l2"] == 0.01
    assert suite.method_settings("maxent_tabular", "gridworld", 0, 1)["l2"] == 0.01
    assert suite.method_settings("maxent_tabular", "gridworld", 0, 4)["l2"] == 3.0
    assert "by_n" not in suite.method_settings("maxent_tabular", "gridworld", 0, 4)
    assert suite.config_hash("maxent_tabular", "gridworld", 1) != suite.config_hash("maxent_tabular", "gridworld", 4)
    # the same for MandRIL's adaptation, with one preparation for every n
    suite = suite_from_dict(_with(smoke_data, "gridworld", "mandril", by_n={"4": {"adapt_steps": 3, "adapt_lr_scale": 0.5}}))
    assert suite.make_method("mandril", "gridworld", 0, 4).config.adapt_steps == 3
    assert suite.make_method("mandril", "gridworld", 0, 1).config.adapt_steps == 1
    plain = suite_from_dict(smoke_data)
    assert suite.preparation_hash("mandril", "gridworld") == plain.preparation_hash("mandril", "gridworld")


def test_the_harness_fits_each_n_with_its_own_settings(tmp_path, smoke_data):
    def run(name: str, **settings) -> dict:
        data = _with(smoke_data, "tabular_mdp_linear", "maxent_tabular", **settings)
        data["methods"] = ["maxent_tabular"]
        data["families"] = {"tabular_mdp_linear": {**data["families"]["tabular_mdp_linear"], "n_tasks": 2}}
        data["settings"] = {"maxent_tabular": data["settings"]["maxent_tabular"]}
        data["cells"] = {}
        suite = suite_from_dict(data)
        run_suite(suite, tmp_path / name, progress=False)
        return {(r["n_demos"], r["task"]): r for r in RunStore(tmp_path / name).records()}, suite

    mixed, suite = run("mixed", l2=0.01, by_n={"4": {"l2": 5.0}})
    small, _ = run("small", l2=0.01)
    large, _ = run("large", l2=5.0)
    for (n, task), record in mixed.items():
        same = (small if n == 1 else large)[n, task]
        assert record["config_hash"] == same["config_hash"] == suite.config_hash("maxent_tabular", "tabular_mdp_linear", n)
        assert record["info"]["loss"] == same["info"]["loss"] and record["normalized_evd"] == same["normalized_evd"]
    assert small[4, 0]["info"]["loss"] != large[4, 0]["info"]["loss"]


@pytest.mark.parametrize(
    "family, method, settings, message",
    [
        ("gridworld", "mandril", {"by_n": {"4": {"inner_lr": 0.1}}}, r"cannot change with the number of demos: allowed \['adapt_lr_scale', 'adapt_steps'\]"),
        ("gridworld", "pretrain_finetune", {"by_n": {"4": {"pretrain_iterations": 5}}}, "cannot change with the number of demos"),
        ("gridworld", "maxent_tabular", {"by_n": {"four": {"l2": 0.1}}}, "keys must be numbers of demos >= 1"),
        ("gridworld", "maxent_tabular", {"by_n": {"04": {"l2": 0.1}}}, "keys must be numbers of demos >= 1"),
        ("gridworld", "maxent_tabular", {"by_n": {"4": {"l2": -1.0}}}, "l2 must be a finite number >= 0"),
        ("gridworld", "maxent_tabular", {"by_n": {"4": {"seed": 3}}}, "cannot change with the number of demos"),
        ("gridworld", "maxent_tabular", {"by_n": []}, "must be a non-empty table"),
    ],
)
def test_bad_by_n_tables_are_refused_when_the_suite_is_read(smoke_data, family, method, settings, message):
    with pytest.raises((ValueError, TypeError), match=message):
        suite_from_dict(_with(smoke_data, family, method, **settings))


def test_the_demo_conditioned_network_must_be_trained_on_every_n_it_is_scored_at(smoke_data):
    data = copy.deepcopy(smoke_data)
    data["settings"]["demo_conditioned"]["n_demos_choices"] = [1, 2]
    with pytest.raises(ValueError, match=r"demo_conditioned is scored with n = \[4\] demos but trained only on n_demos_choices = \[1, 2\]"):
        suite_from_dict(data)
    data["settings"]["demo_conditioned"]["n_demos_choices"] = [1, 4, 9]  # 9 + 2 held-out demos > the pool's 10
    with pytest.raises(ValueError, match=r"draws 11 demos per training task \(9 \+ 2\), but the training pool has 10"):
        suite_from_dict(data)


def test_a_pool_too_small_for_a_trainer_is_refused_up_front(smoke_data):
    data = copy.deepcopy(smoke_data)
    data["settings"]["mandril"]["n_test_demos"] = 20
    with pytest.raises(ValueError, match=r"method 'mandril' on family 'gridworld': mandril draws 21 demos per training task"):
        suite_from_dict(data)


def test_committed_suites_train_the_demo_conditioned_network_on_every_n():
    for path in sorted((SMOKE.parent).glob("*.toml")):
        suite = load_suite(path)
        if "demo_conditioned" in suite.methods:
            for family in suite.families:
                if suite.runs_on("demo_conditioned", family):
                    choices = set(suite.make_method("demo_conditioned", family, 0).config.n_demos_choices)
                    assert set(suite.family_n_demos(family)) <= choices, (path.name, family)
