"""The report's statistics: rliable's definitions cross-checked, the exact test, corrections, the verdict rule and its simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as scipy_stats

from mandril.eval.stats import (benjamini_hochberg, holm, interval, probability_of_improvement, sign_flip_p_value, sign_flip_p_values,
                                task_improvement)
from mandril.eval.verdicts import SimulationConfig, VerdictRule, call_verdicts, simulate_rule


def test_stratified_bootstrap_intervals_match_rliables_with_task_bootstrap():
    from rliable import library as rly
    from rliable import metrics as rliable_metrics

    rng = np.random.default_rng(0)
    scores = rng.lognormal(-2.0, 1.0, size=(3, 30))
    for name, ours_name, func in (("iqm", "iqm", rliable_metrics.aggregate_iqm), ("mean", "mean", rliable_metrics.aggregate_mean)):
        points, intervals = rly.get_interval_estimates({"m": scores}, lambda x, f=func: np.array([f(x)]), reps=4000, task_bootstrap=True,
                                                       random_state=np.random.RandomState(1))
        ours = interval(ours_name, [scores], reps=4000, seed=2)
        assert ours["point"] == pytest.approx(float(points["m"][0]), rel=1e-12), name
        width = intervals["m"][1, 0] - intervals["m"][0, 0]
        # two Monte Carlo estimates of the same percentile interval: the ends agree to a few percent of its width
        assert ours["low"] == pytest.approx(intervals["m"][0, 0], abs=0.08 * width), name
        assert ours["high"] == pytest.approx(intervals["m"][1, 0], abs=0.08 * width), name
        assert abs(ours["high"] - ours["low"] - width) < 0.1 * width


def test_probability_of_improvement_interval_without_task_bootstrap_matches_rliables_pair_bootstrap():
    from rliable import library as rly
    from rliable import metrics as rliable_metrics

    rng = np.random.default_rng(4)
    x, y = rng.normal(0.3, 1.0, size=(5, 6)), rng.normal(0.0, 1.0, size=(5, 6))
    points, intervals = rly.get_interval_estimates({"xy": (x, y)}, lambda a, b: np.array([rliable_metrics.probability_of_improvement(a, b)]),
                                                   reps=400, random_state=np.random.RandomState(0))
    ours = interval("poi", [x, y], reps=4000, seed=0, task_bootstrap=False)
    assert ours["point"] == pytest.approx(float(points["xy"][0]), rel=1e-12)
    assert ours["low"] == pytest.approx(intervals["xy"][0, 0], abs=0.04)
    assert ours["high"] == pytest.approx(intervals["xy"][1, 0], abs=0.04)
    # resampling the tasks too widens the interval (task-to-task variation belongs in it)
    both = interval("poi", [x, y], reps=4000, seed=0)
    assert both["high"] - both["low"] > ours["high"] - ours["low"]


def test_a_tolerance_makes_rounding_differences_ties():
    x = np.array([[0.1, 0.2, 0.3]])
    nudged = x + 1e-12
    assert probability_of_improvement(-x, -nudged) > 0.5  # rliable compares exactly
    assert probability_of_improvement(-x, -nudged, tolerance=1e-9) == 0.5
    np.testing.assert_array_equal(task_improvement(-x, -nudged, 1e-9), [0.5, 0.5, 0.5])
    assert sign_flip_p_value(-x, -nudged, 1e-9) == 1.0
    assert interval("poi", [-x, -nudged], tolerance=1e-9) == {"point": 0.5, "low": 0.5, "high": 0.5}


def test_the_sign_flip_p_value_is_exact():
    # one run: the two-sided sign test
    for better in (10, 14, 15, 17, 20):
        x = np.zeros((1, 20))
        y = np.where(np.arange(20) < better, 1.0, -1.0)[None]
        assert sign_flip_p_value(x, y) == pytest.approx(scipy_stats.binomtest(20 - better if better < 10 else better, 20).pvalue, rel=1e-12)
    # several runs of each: brute force over every sign pattern of the per-task statistics
    rng = np.random.default_rng(1)
    for runs_x, runs_y in ((2, 3), (3, 3), (1, 4)):
        x, y = rng.normal(size=(runs_x, 9)), rng.normal(0.4, 1, size=(runs_y, 9))
        d = task_improvement(x, y) - 0.5
        observed = abs(d.sum())
        brute = np.mean([abs((np.array(s) * d).sum()) >= observed - 1e-12 for s in itertools.product((-1, 1), repeat=9)])
        assert sign_flip_p_value(x, y) == pytest.approx(brute, rel=1e-12)
    # ties (d = 0) contribute nothing; identical methods give p = 1
    assert sign_flip_p_value(x, x) == 1.0
    np.testing.assert_allclose(sign_flip_p_values(np.array([[1, 0, 0], [1, 1, 1], [2, -1, 0]])), [1.0, 0.25, 1.0])
    with pytest.raises(ValueError, match="integer"):
        sign_flip_p_values(np.array([[0.5]]))


def test_holm_and_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(holm([0.5]), [0.5])
    np.testing.assert_allclose(benjamini_hochberg([0.9, 0.9]), [0.9, 0.9])


def test_verdicts_of_a_family_of_comparisons():
    rule = VerdictRule(alpha=0.05, correction="holm", min_tasks=5)
    verdicts, adjusted = call_verdicts(rule, [0.001, 0.001, 0.04, 0.5, 0.0], [0.9, 0.1, 0.8, 0.5, 1.0], [20, 20, 20, 20, 3])
    assert verdicts == ["win", "loss", "tie", "tie", "too few tasks"]  # 0.04 x 2 = 0.08 after Holm over the 4 counted
    np.testing.assert_allclose(adjusted[:4], [0.004, 0.004, 0.08, 0.5])
    assert np.isnan(adjusted[4])
    assert call_verdicts(rule, [0.04], [0.8], [20], corrected=False)[0] == ["win"]
    with pytest.raises(ValueError, match="correction"):
        VerdictRule(correction="bonferroni")


def test_the_simulated_rule_has_the_error_rates_the_theory_gives():
    rule = VerdictRule(alpha=0.05, correction="holm")
    # no run noise: "better on 70% of tasks" is a coin per task; the uncorrected exact sign test at 5% over 20 tasks
    # detects it when 15 or more (or 5 or fewer) of the 20 tasks say so
    noiseless = SimulationConfig(run_noise=0.0, effect_comparisons=4000, null_comparisons=4000, families=200)
    result = simulate_rule(rule, 1, 20, 1, noiseless)
    expected = scipy_stats.binom.sf(14, 20, 0.7)
    assert result["power_uncorrected"] == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / 4000))
    # the exact test holds its level: at most 5% false calls (a discrete test: a little under)
    assert result["false_call_rate_uncorrected"] <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 4000)
    # a correction over many comparisons costs power and false calls; without one, chance verdicts grow with K
    many = simulate_rule(rule, 3, 40, 200)
    none = simulate_rule(VerdictRule(correction="none"), 3, 40, 200)
    assert many["power"] < many["power_uncorrected"] and many["chance_verdicts"] < 0.2
    assert none["chance_verdicts"] == pytest.approx(200 * none["false_call_rate_uncorrected"], rel=0.1)
    assert simulate_rule(rule, 3, 40, 200) is many  # cached: a report pays for it once
