"""The ``bayes`` reference (issue 17): the families' reward priors, the posterior mode against an
independent brute-force posterior, exactness on GridWorld-v0, and that it never reads the true reward."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest

import mandril_envs
from mandril import methods
from mandril.bench import suite_from_dict
from mandril.bench.cells import Unit
from mandril.bench.work import run_unit
from mandril.eval import score
from mandril.methods import hide_reward
from mandril.methods.bayes import posterior_mode
from mandril_envs.demos import ExpertSettings, expert_policy, rollout
from mandril_envs.planning import soft_value_iteration
from mandril_envs.priors import BoxRewardPrior, DiscreteRewardPrior, GaussianRewardPrior


def demos_of(env: gym.Env, n: int, temperature: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    trajectories = rollout(env, expert_policy(env, ExpertSettings("soft", temperature)), n, seed=seed)
    return np.stack([t.states for t in trajectories]), np.stack([t.actions for t in trajectories])


def brute_log_likelihood(model, reward: np.ndarray, states: np.ndarray, actions: np.ndarray, temperature: float) -> float:
    """``sum log pi(a_t | s_t, t)`` by the numpy planner (independent of the torch kernels bayes optimises through)."""
    policy = soft_value_iteration(model, reward, temperature).policy
    return float(sum(np.log(policy[t, s[t], a[t]]) for s, a in zip(states, actions) for t in range(actions.shape[1])))


@pytest.mark.parametrize("env_id", mandril_envs.ENV_IDS)
def test_every_family_describes_a_prior_whose_support_holds_the_true_reward(env_id):
    env = gym.make(env_id)
    base = env.unwrapped
    for task in base.sample_tasks(3, "test", seed=2):
        base.set_task(task)
        prior = base.reward_prior()
        truth = base.model.reward_matrix
        assert tuple(prior.shape) == truth.shape and prior.mean_reward().shape == truth.shape
        if isinstance(prior, DiscreteRewardPrior):
            matches = [k for k, r in enumerate(prior.rewards) if np.array_equal(r, truth)]
            assert len(matches) == 1 and prior.probs[matches[0]] > 0
            assert list(prior.labels) == sorted(prior.labels)  # canonical order: by cell, not goal first
        elif isinstance(prior, BoxRewardPrior):
            assert prior.low <= truth.min() and truth.max() <= prior.high
        else:
            assert isinstance(prior, GaussianRewardPrior)
            basis = np.eye(prior.n_params) if prior.basis is None else prior.basis
            params = np.linalg.lstsq(basis, truth.ravel(), rcond=None)[0]
            np.testing.assert_allclose(prior.reward(params), truth, atol=1e-9)


def test_gaussian_posterior_mode_matches_a_brute_force_grid():
    env = gym.make("mandril_envs/TabularMDP-Linear-v0", n_states=3, n_actions=2, n_features=2, horizon=3)
    base = env.unwrapped
    base.set_task(base.sample_tasks(1, "test", seed=3)[0])
    temperature = 0.7
    states, actions = demos_of(env, 3, temperature, seed=1)
    prior = base.reward_prior()
    mode = posterior_mode(hide_reward(base.model), prior, states, actions, temperature)
    assert mode.converged

    def log_posterior(params: np.ndarray) -> float:
        z = (params - prior.mean) / prior.std
        return brute_log_likelihood(base.model, prior.reward(params), states, actions, temperature) - 0.5 * float(z @ z)

    axes = [np.linspace(m - 4 * s, m + 4 * s, 101) for m, s in zip(prior.mean, prior.std)]
    grid = np.array([log_posterior(np.array(p)) for p in itertools.product(*axes)]).reshape(101, 101)
    i, j = np.unravel_index(int(grid.argmax()), grid.shape)
    best = np.array([axes[0][i], axes[1][j]])
    found = np.linalg.lstsq(prior.basis, mode.reward, rcond=None)[0]
    assert log_posterior(found) >= grid.max() - 1e-9
    assert log_posterior(found) == pytest.approx(mode.log_posterior, abs=1e-7)
    spacing = np.array([a[1] - a[0] for a in axes])
    assert np.all(np.abs(found - best) <= spacing)


def test_box_posterior_mode_matches_a_brute_force_grid_and_is_centred():
    env = gym.make("mandril_envs/Bandit-v0", n_arms=3, horizon=4)
    base = env.unwrapped
    base.set_task(base.sample_tasks(1, "test", seed=4)[0])
    temperature = 0.3
    states, actions = demos_of(env, 2, temperature, seed=5)
    mode = posterior_mode(hide_reward(base.model), base.reward_prior(), states, actions, temperature)
    assert mode.converged and mode.reward.shape == (1, 3)
    # a bandit's soft policy is softmax(r / T) at every pull: the log-likelihood in closed form, on a grid of the box
    counts = np.bincount(actions.ravel(), minlength=3)
    axis = np.linspace(0.0, 1.0, 201)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3) / temperature
    top = grid.max(1, keepdims=True)
    log_lik = grid @ counts - counts.sum() * (top[:, 0] + np.log(np.exp(grid - top).sum(1)))
    found = brute_log_likelihood(base.model, mode.reward, states, actions, temperature)
    grid = log_lik
    assert found >= grid.max() - 1e-9 and mode.log_posterior == pytest.approx(found, abs=1e-7)
    assert mode.reward.min() >= 0 and mode.reward.max() <= 1
    assert mode.reward.min() == pytest.approx(1 - mode.reward.max(), abs=1e-12)  # the centred one of the modes r + c


def test_an_arm_never_pulled_sits_on_the_lower_bound_below_the_others():
    env = gym.make("mandril_envs/Bandit-v0", n_arms=3, horizon=5)
    base = env.unwrapped
    states = np.zeros((1, 6), np.int64)
    actions = np.array([[0, 0, 1, 0, 1]])
    mode = posterior_mode(hide_reward(base.model), base.reward_prior(), states, actions, 0.1)
    r = mode.reward[0]
    assert r[2] == pytest.approx(0.0, abs=1e-9) and r[0] == pytest.approx(1.0, abs=1e-9)  # the range exceeds the box: pinned
    # the free arm's probability is its frequency, 2/5: e^(r1/T) = (2/3) (e^(1/T) + e^0)
    assert mode.converged and r[1] == pytest.approx(0.1 * np.log(2 / 3 * (np.exp(10.0) + 1.0)), abs=1e-9)


def test_discrete_posterior_is_the_normalised_likelihood_over_possible_candidates():
    env = gym.make("mandril_envs/GridWorld-v0", size=5)
    base = env.unwrapped
    base.set_task(base.sample_tasks(1, "test", seed=6)[0])
    states, actions = demos_of(env, 1, 1.0, seed=0)
    prior = base.reward_prior()
    mode = posterior_mode(hide_reward(base.model), prior, states, actions)
    logs = np.array([np.log(p) + brute_log_likelihood(base.model, r, states, actions, 1.0) if p > 0 else -np.inf for r, p in zip(prior.rewards, prior.probs)])
    expected = np.exp(logs - logs.max()) / np.exp(logs - logs.max()).sum()
    np.testing.assert_allclose(mode.posterior, expected, atol=1e-12)
    np.testing.assert_array_equal(mode.reward, prior.rewards[int(np.argmax(logs))])


def test_bayes_is_exact_on_gridworld_from_one_demo():
    env = gym.make("mandril_envs/GridWorld-v0")
    base = env.unwrapped
    method = methods.make("bayes")
    for task in base.sample_tasks(10, "test", seed=1):
        base.set_task(task)
        states, actions = demos_of(env, 1, 1.0, seed=task.index)
        output = method.fit(hide_reward(base.model), base.reward_input("features"), states, actions, prior=base.reward_prior())
        assert score(base.model, output.reward).evd < 1e-12


def test_bayes_never_reads_the_true_reward():
    env = gym.make("mandril_envs/TabularMDP-v0", n_states=4, n_actions=3, horizon=4)
    base = env.unwrapped
    states, actions = demos_of(env, 4, 1.0, seed=2)
    method = methods.make("bayes")
    assert not method.reads_true_reward and method.reads_reward_prior and method.kind == "reference"
    inputs, prior = base.reward_input("features"), base.reward_prior()
    hidden = method.fit(hide_reward(base.model), inputs, states, actions, prior=prior).reward
    scrambled = method.fit(base.model.with_reward(np.random.default_rng(0).normal(size=base.model.reward_matrix.shape)), inputs, states, actions, prior=prior).reward
    true = method.fit(base.model, inputs, states, actions, prior=prior).reward
    np.testing.assert_array_equal(hidden, scrambled)
    np.testing.assert_array_equal(hidden, true)
    with pytest.raises(ValueError, match="needs the family's reward prior"):
        method.fit(hide_reward(base.model), inputs, states, actions)


def test_a_prior_of_another_shape_is_refused():
    base = gym.make("mandril_envs/Bandit-v0", n_arms=3).unwrapped
    with pytest.raises(ValueError, match=r"rewards of shape \(1, 4\)"):
        posterior_mode(hide_reward(base.model), BoxRewardPrior((1, 4), 0, 1), np.zeros((1, 11), np.int64), np.zeros((1, 10), np.int64))
    with pytest.raises(TypeError, match="reward prior"):
        posterior_mode(hide_reward(base.model), {"low": 0}, np.zeros((1, 11), np.int64), np.zeros((1, 10), np.int64))


SUITE = {
    "name": "bayes-test",
    "methods": ["bayes", "expert"],
    "n_demos": [1],
    "families": {
        "bandit": {"env_id": "mandril_envs/Bandit-v0", "n_tasks": 2, "expert": {"policy": "soft", "temperature": 0.3}},
        "grid": {"env_id": "mandril_envs/GridWorld-v0", "env_kwargs": {"size": 5}, "n_tasks": 3},
    },
}


def test_the_suite_gives_bayes_its_family_demonstrator_and_the_harness_its_prior():
    suite = suite_from_dict(SUITE)
    assert suite.make_method("bayes", "bandit", 0).config.expert_temperature == 0.3
    assert suite.make_method("bayes", "grid", 0).config.expert_temperature == 1.0
    unit = Unit("grid", "test", "bayes", suite.config_hash("bayes", "grid"), 0, 1, 3, False)
    records = run_unit(suite.to_dict(), unit)
    assert [r["error"] for r in records] == [None] * 3
    assert all(r["evd"] < 1e-12 for r in records)
    bad = {**SUITE, "families": {"bandit": {**SUITE["families"]["bandit"], "expert": {"policy": "optimal"}}}}
    with pytest.raises(ValueError, match="knows the likelihood of a soft demonstrator only"):
        suite_from_dict(bad)
