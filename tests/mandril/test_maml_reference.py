"""Reference bandit policies: Gittins indices (against published values and an independent
restart-in-state computation), the Gittins policy, constant tuning, the budget-matched total."""

from __future__ import annotations

import numpy as np
import pytest

from mandril.maml_rl.evaluation import budget_matched
from mandril.maml_rl.gittins import gittins_indices
from mandril.maml_rl.reference import bandit_reference_returns, tune_bandit_constant


def test_gittins_indices_match_published_values():
    # Gittins, Glazebrook and Weber (2011), Bernoulli arm, Beta(1, 1) prior, discount 0.9:
    # nu(1, 1) = 0.7029, nu(2, 1) = 0.8001, nu(1, 2) = 0.5001 (Beta(alpha, beta) = (s + 1, f + 1)).
    table = gittins_indices(0.9, 5)
    assert table[0, 0] == pytest.approx(0.7029, abs=1e-3)
    assert table[1, 0] == pytest.approx(0.8001, abs=1e-3)
    assert table[0, 1] == pytest.approx(0.5001, abs=1e-3)
    assert np.isnan(table[3, 2]) and np.isfinite(table[2, 2])  # s + f < 5 only


def _restart_in_state_index(gamma, s0, f0, depth):
    """The index of (s0, f0) as (1 - gamma) W(x) of Katehakis and Veinott's restart-in-x problem,
    by value iteration over the states reachable from x, with the same truncation (the arm's mean
    freezes at depth): an independent computation (no retirement rate, no grid)."""
    states = [(s, f) for d in range(s0 + f0, depth + 1) for s in range(s0, d - f0 + 1) for f in [d - s]]
    w = {state: 0.0 for state in states}
    mu = {(s, f): (s + 1) / (s + f + 2) for s, f in states}

    def cont(state, w):
        s, f = state
        if s + f == depth:
            return mu[state] / (1 - gamma)
        return mu[state] + gamma * (mu[state] * w[(s + 1, f)] + (1 - mu[state]) * w[(s, f + 1)])

    for _ in range(400):
        restart = cont((s0, f0), w)
        w = {state: max(cont(state, w), restart) for state in states}
    return (1 - gamma) * w[(s0, f0)]


def test_gittins_indices_agree_with_an_independent_restart_in_state_computation():
    gamma, depth = 0.7, 10
    table = gittins_indices(gamma, 4, depth=depth, grid=2001)
    for s in range(4):
        for f in range(4 - s):
            assert table[s, f] == pytest.approx(_restart_in_state_index(gamma, s, f, depth), abs=5e-4), (s, f)


def test_gittins_indices_are_an_exploration_bonus_over_the_posterior_mean():
    table = gittins_indices(0.95, 30)
    s, f = np.meshgrid(np.arange(30), np.arange(30), indexing="ij")
    valid = s + f < 30
    mean = (s + 1) / (s + f + 2)
    assert np.all(table[valid] > mean[valid]) and np.all(table[valid] < 1)
    assert np.all(np.diff(table, axis=0)[valid[1:] & valid[:-1]] > 0)  # more successes, higher index
    assert np.all(np.diff(table, axis=1)[valid[:, 1:] & valid[:, :-1]] < 0)  # more failures, lower index
    # no future to care about: the index is the posterior mean
    np.testing.assert_allclose(gittins_indices(1e-6, 6)[np.add.outer(np.arange(6), np.arange(6)) < 6],
                               mean[:6, :6][np.add.outer(np.arange(6), np.arange(6)) < 6], atol=2e-3)
    with pytest.raises(ValueError, match="gamma"):
        gittins_indices(1.0, 5)


def test_the_gittins_policy_finds_the_good_arm_and_beats_random():
    means = np.array([[0.1, 0.9, 0.2], [0.5, 0.45, 0.4]])
    out = bandit_reference_returns(means, 200, seed=0, repeats=50, gittins_gamma=0.98, strategies=("gittins", "random"))
    assert out["gittins"][0] > 0.85 * 200 and out["gittins"][0] > out["random"][0] + 60
    # Gaussian arms have no Gittins index here: the strategy is skipped
    assert "gittins" not in bandit_reference_returns(means, 5, seed=0, arm_distribution="gaussian", strategies=("gittins",))


def test_tuning_picks_the_best_constant_on_the_tasks_it_is_given():
    means = np.random.default_rng(0).uniform(size=(60, 5))
    best, scores = tune_bandit_constant("ucb1", (50.0, 0.2), means, 100, seed=3, repeats=4)
    assert best == 0.2 and scores[0.2] > scores[50.0] + 5
    direct = bandit_reference_returns(means, 100, seed=3, repeats=4, ucb_c=50.0, strategies=("ucb1",))["ucb1"].mean()
    assert scores[50.0] == pytest.approx(direct)
    best, scores = tune_bandit_constant("ucb1", (0.3, 0.3), means, 10, seed=3, repeats=2)
    assert len(scores) == 1 and best == 0.3
    with pytest.raises(ValueError, match="constant to tune"):
        tune_bandit_constant("thompson", (1.0,), means, 10, seed=0)


def test_budget_matched_totals_by_hand():
    # 20 of 100 pulls exploring at 0.5, 80 exploiting at 0.8
    np.testing.assert_allclose(budget_matched([0.5], [[]], [0.8], 20, 100), [74.0])
    # two inner steps: the second batch earned 0.6 per pull
    np.testing.assert_allclose(budget_matched([0.5, 0.1], [[0.6], [0.2]], [0.8, 0.3], 20, 100), [70.0, 2 + 4 + 18])
    # exploration is cut at the budget: nothing left to exploit
    np.testing.assert_allclose(budget_matched([0.5], [[]], [0.8], 100, 60), [30.0])


def test_ucb1_from_the_prior_is_not_round_robin_when_there_are_fewer_pulls_than_arms():
    # one good arm among ten, eight pulls: Auer's UCB1 pulls eight different arms (0.8 expected);
    # from the prior it moves on after a failure and stays once it has found the good arm
    means = np.zeros((1, 10))
    means[0, 3] = 1.0
    auer = bandit_reference_returns(means, 8, seed=0, repeats=400, ucb_c=0.1, strategies=("ucb1",))["ucb1"][0]
    prior = bandit_reference_returns(means, 8, seed=0, repeats=400, ucb_c=0.1, ucb_prior=True, strategies=("ucb1",))["ucb1"][0]
    assert auer == pytest.approx(0.8, abs=0.1)
    # found at pull j (uniform over 1..10 among the arms not yet tried) -> 8 - j + 1 pulls of it
    expected = sum((8 - j + 1) / 10 for j in range(1, 9))
    assert prior == pytest.approx(expected, abs=0.25) and prior > auer + 2
