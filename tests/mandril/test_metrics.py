"""Scores on hand-worked cases."""

import numpy as np
import pytest

from mandril.metrics import expected_value_difference, score, summarize
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
