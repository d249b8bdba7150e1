"""The numpy planner on hand-worked cases (imitation cross-checks live in tests/interop)."""

import math

import gymnasium as gym
import numpy as np
import pytest

import mandril_envs  # noqa: F401
from mandril_envs import planning, testing
from mandril_envs.model import TabularModel

E = math.e


@pytest.fixture
def switch_model():
    """2 states, action 0 stays, action 1 switches; r = [0, 1]; start in state 0; H = 2."""
    return testing.switch_model()


def test_value_iteration_by_hand(switch_model):
    plan = planning.value_iteration(switch_model)
    np.testing.assert_array_equal(plan.values, [[1.0, 2.0], [0.0, 1.0]])
    np.testing.assert_array_equal(plan.q_values[0], [[0.0, 1.0], [2.0, 1.0]])
    np.testing.assert_array_equal(plan.policy[0], [[0, 1], [1, 0]])  # switch from 0, stay in 1
    np.testing.assert_array_equal(plan.policy[1], [[1, 0], [1, 0]])  # last step: tie -> lowest action
    assert planning.expected_return(switch_model, plan.policy) == 1.0


def test_soft_value_iteration_by_hand(switch_model):
    plan = planning.soft_value_iteration(switch_model)
    log2 = math.log(2)
    np.testing.assert_allclose(plan.values[1], [log2, 1 + log2], atol=1e-15)
    np.testing.assert_allclose(plan.values[0], [log2 + math.log(1 + E), 1 + log2 + math.log(1 + E)], atol=1e-14)
    np.testing.assert_allclose(plan.policy[0, 0], [1 / (1 + E), E / (1 + E)], atol=1e-15)
    np.testing.assert_allclose(plan.policy[1], 0.5, atol=1e-15)
    visitation = planning.state_visitation(switch_model, plan.policy)
    np.testing.assert_allclose(visitation, [[1.0, 0.0], [1 / (1 + E), E / (1 + E)]], atol=1e-15)
    assert planning.expected_return(switch_model, plan.policy) == pytest.approx(E / (1 + E), abs=1e-15)
    np.testing.assert_allclose(planning.policy_evaluation(switch_model, plan.policy)[0, 0], E / (1 + E), atol=1e-15)


def test_temperature(switch_model):
    tau = 0.5
    plan = planning.soft_value_iteration(switch_model, temperature=tau)
    np.testing.assert_allclose(plan.values[1], [tau * math.log(2), 1 + tau * math.log(2)], atol=1e-15)
    cold = planning.soft_value_iteration(switch_model, temperature=1e-3)
    np.testing.assert_allclose(cold.policy[0], planning.value_iteration(switch_model).policy[0], atol=1e-12)


def test_state_action_reward_by_hand():
    """One state, two actions paying 0 and 1 for 3 steps: soft V = 3 log(1 + e) ... per step."""
    model = TabularModel(np.zeros((1, 2, 1), int), np.ones((1, 2, 1)), np.array([[0.0, 1.0]]), np.ones(1), 3)
    plan = planning.soft_value_iteration(model)
    np.testing.assert_allclose(plan.values[:, 0], [3 * math.log(1 + E), 2 * math.log(1 + E), math.log(1 + E)], atol=1e-14)
    occupancy = planning.state_action_visitation(model, plan.policy)
    np.testing.assert_allclose(occupancy.sum(axis=0)[0], [3 / (1 + E), 3 * E / (1 + E)], atol=1e-14)


def test_stochastic_dynamics_against_monte_carlo():
    env = gym.make("mandril_envs/GridWorld-v0", slip=0.3)
    model = env.unwrapped.model
    policy = planning.soft_value_iteration(model).policy
    exact = planning.expected_return(model, policy)
    from mandril_envs.demos import rollout

    returns = np.array([t.rewards.sum() for t in rollout(env, policy, 2000, seed=0)])
    assert abs(returns.mean() - exact) < 5 * returns.std() / math.sqrt(len(returns))


def test_visitation_rows_sum_to_one_on_every_family():
    for env_id in mandril_envs.ENV_IDS:
        model = gym.make(env_id).unwrapped.model
        visitation = planning.state_visitation(model, planning.soft_value_iteration(model).policy)
        assert visitation.shape == (model.horizon, model.state_dim)
        np.testing.assert_allclose(visitation.sum(axis=1), 1.0, atol=1e-12)


def test_large_rewards_are_stable():
    model = gym.make("mandril_envs/GridWorld-v0", horizon=200).unwrapped.model
    reward = np.where(np.arange(model.state_dim) % 2 == 0, 100.0, -100.0)
    plan = planning.soft_value_iteration(model, reward)
    assert np.isfinite(plan.values).all() and np.isfinite(plan.policy).all()


def test_planner_input_errors(switch_model):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        planning.soft_value_iteration(switch_model, temperature=0.0)
    with pytest.raises(ValueError, match="reward must be finite"):
        planning.soft_value_iteration(switch_model, np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match=r"reward shape \(3,\)"):
        planning.value_iteration(switch_model, np.zeros(3))
    with pytest.raises(ValueError, match=r"policy shape"):
        planning.state_visitation(switch_model, np.ones((1, 2, 2)) / 2)
    with pytest.raises(ValueError, match="probability distributions"):
        planning.state_visitation(switch_model, np.ones((2, 2, 2)))


def _float32_softmax(logits: np.ndarray) -> np.ndarray:
    """What SB3/imitation/torch hand over: a softmax computed in float32 (rows off by ~1e-7)."""
    logits = logits.astype(np.float32)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("env_id", ["mandril_envs/GridWorld-v0", "mandril_envs/Bandit-K50-v0", "mandril_envs/TabularMDP-v0"])
def test_float32_policies_are_accepted_and_renormalised(env_id):
    model = gym.make(env_id).unwrapped.model
    plan = planning.soft_value_iteration(model)
    policy32 = _float32_softmax(plan.q_values)
    deviation = np.abs(policy32.astype(np.float64).sum(axis=2) - 1).max()
    assert 1e-8 < deviation <= planning.policy_tolerance(model.action_dim)  # the case the old 1e-8 check refused
    checked = planning.check_policy(model, policy32)
    assert checked.dtype == np.float64 and np.abs(checked.sum(axis=2) - 1).max() < 1e-14
    assert policy32.dtype == np.float32  # the caller's array is not touched
    exact = planning.expected_return(model, plan.policy)
    assert planning.expected_return(model, policy32) == pytest.approx(exact, rel=1e-5, abs=1e-5)
    planning.policy_evaluation(model, policy32)
    planning.state_visitation(model, policy32)


def test_float64_policies_are_left_bit_for_bit(switch_model):
    policy = planning.soft_value_iteration(switch_model).policy
    np.testing.assert_array_equal(planning.check_policy(switch_model, policy), policy)


def test_rollout_takes_float32_policies():
    from mandril_envs.demos import rollout

    env = gym.make("mandril_envs/GridWorld-v0")
    policy32 = _float32_softmax(planning.soft_value_iteration(env.unwrapped.model).q_values)
    assert len(rollout(env, policy32, 2, seed=0)) == 2
    with pytest.raises(ValueError, match=r"largest deviation is \|sum - 1\| = 0.5 at \(t=3, s=7\)"):
        bad = policy32.astype(np.float64)
        bad[3, 7] *= 1.5
        rollout(env, bad, 1)


def test_policy_refusals_say_by_how_much_and_where(switch_model):
    policy = planning.soft_value_iteration(switch_model).policy.copy()
    policy[1, 0] += 1e-3  # a row off by 2e-3
    with pytest.raises(ValueError, match=r"largest deviation is \|sum - 1\| = 0.002 at \(t=1, s=0\), more than the tolerance 9.54e-07"):
        planning.expected_return(switch_model, policy)
    policy = planning.soft_value_iteration(switch_model).policy.copy()
    policy[0, 1] = [1.2, -0.2]
    with pytest.raises(ValueError, match=r"entry -0.2 at \(t=0, s=1, a=1\) is negative"):
        planning.state_visitation(switch_model, policy)
    policy[0, 1] = [np.nan, 1.0]
    with pytest.raises(ValueError, match=r"policy must be finite, got nan at \(t=0, s=1, a=0\)"):
        planning.policy_evaluation(switch_model, policy)
    with pytest.raises(TypeError, match="numeric"):
        planning.check_policy(switch_model, [["a"]])
