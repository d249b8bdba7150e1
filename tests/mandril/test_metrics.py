"""Scores on hand-worked cases."""

import numpy as np
import pytest

from mandril.eval import expected_value_difference, score, summarize
from mandril.methods import MethodOutput
from mandril_envs import testing


@pytest.fixture
def switch_model():
    """2 states, action 0 stays, action 1 switches; r = [0, 1]; start in state 0; H = 2."""
    return testing.switch_model()


def test_scores_by_hand(switch_model):
    truth = score(switch_model, np.array([0.0, 1.0]), goal_state=1)
    assert truth.evd == 0 and truth.normalized_evd == 0 and truth.success == 1.0
    wrong = score(switch_model, np.array([1.0, 0.0]), goal_state=1)
    assert wrong.optimal_return == 1.0 and wrong.learned_return == 0.0 and wrong.random_return == 0.5
    assert wrong.evd == 1.0 and wrong.normalized_evd == 2.0 and wrong.success == 0.0
    assert expected_value_difference(switch_model, np.array([[0.0, 1.0], [1.0, 0.0]])) == 0.0  # switch, then stay


def test_demo_nll_by_hand(switch_model):
    # under r = 0 the soft policy is uniform: NLL log 2 per step
    states = np.array([[0, 1, 1]])
    actions = np.array([[1, 0]])
    assert score(switch_model, np.zeros(2), states, actions).demo_nll == pytest.approx(np.log(2))


def test_bad_learned_rewards(switch_model):
    with pytest.raises(ValueError, match=r"learned reward shape \(3,\)"):
        score(switch_model, np.zeros(3))
    with pytest.raises(ValueError, match="learned reward must be finite"):
        expected_value_difference(switch_model, np.array([0.0, np.nan]))


def test_summarize():
    summary = summarize(np.arange(100.0), seed=0)
    assert summary["mean"] == 49.5 and summary["ci_low"] < 49.5 < summary["ci_high"]
    assert summary["iqm"] == pytest.approx(49.5)
    assert summarize([1.0, 1.0, 1.0])["ci_low"] == 1.0
    with pytest.raises(ValueError):
        summarize([])


def test_policies_are_scored_as_they_are(switch_model):
    switch_then_stay = np.zeros((2, 2, 2))
    switch_then_stay[0, :, 1] = 1.0  # step 0: switch (from state 0 to 1)
    switch_then_stay[1, :, 0] = 1.0  # step 1: stay
    best = score(switch_model, switch_then_stay, goal_state=1)
    assert best.evd == 0 and best.learned_return == 1.0 and best.success == 1.0
    uniform = score(switch_model, np.full((2, 2, 2), 0.5))
    assert uniform.normalized_evd == pytest.approx(1.0) and uniform.learned_return == pytest.approx(0.5)
    # NLL of a policy: log 2 per step for the uniform one, 0 for a demo the deterministic policy takes
    states, actions = np.array([[0, 1, 1]]), np.array([[1, 0]])
    assert score(switch_model, np.full((2, 2, 2), 0.5), states, actions).demo_nll == pytest.approx(np.log(2))
    assert score(switch_model, switch_then_stay, states, actions).demo_nll == pytest.approx(0.0)


def test_float32_policies_are_accepted_and_bad_ones_named(switch_model):
    rows = np.full((2, 2, 2), 0.5, np.float32) + np.float32(1e-7)
    assert score(switch_model, rows).normalized_evd == pytest.approx(1.0, abs=1e-6)
    bad = np.full((2, 2, 2), 0.5)
    bad[1, 0] = [0.7, 0.7]
    with pytest.raises(ValueError, match=r"row \(t=1, s=0\) is off by 0.4"):
        score(switch_model, bad)
    with pytest.raises(ValueError, match=r"policy shape \(3, 2, 2\)"):
        score(switch_model, np.full((3, 2, 2), 0.5))


def test_an_output_with_a_reward_and_a_policy_is_scored_by_its_reward(switch_model):
    output = MethodOutput(reward=np.array([0.0, 1.0]), policy=np.full((2, 2, 2), 0.5))
    scores = score(switch_model, output)
    assert scores.evd == 0 and scores.policy_normalized_evd == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs a reward table or a policy table"):
        MethodOutput()


def test_statistics_match_rliables_definitions():
    from rliable import metrics as rliable_metrics

    from mandril.eval.stats import interval, iqm, probability_of_improvement

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(3, 20)), rng.normal(0.3, 1, size=(2, 20))
    assert iqm(x) == pytest.approx(rliable_metrics.aggregate_iqm(x), rel=1e-12)
    assert probability_of_improvement(x, y) == pytest.approx(rliable_metrics.probability_of_improvement(x, y), rel=1e-12)
    # hand-worked: one task, X's runs 1 and 3, Y's run 2: P(X > Y) = 1/2; a tie counts half
    assert probability_of_improvement(np.array([[1.0], [3.0]]), np.array([[2.0]])) == 0.5
    assert probability_of_improvement(np.array([[2.0]]), np.array([[2.0]])) == 0.5
    wide = interval("iqm", [x], seed=0)
    assert wide["low"] < wide["point"] < wide["high"]
    better = interval("poi", [y, x], seed=0)  # y has the higher mean
    assert better["point"] > 0.5 and better["low"] < better["point"] < better["high"]
    assert interval("mean", [np.ones((2, 5))])["low"] == 1.0
    with pytest.raises(ValueError, match="share the tasks"):
        interval("poi", [x, y[:, :3]])
