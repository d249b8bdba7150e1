"""The torch planning kernels against the numpy planner and imitation, derivatives, stability, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import mandril.planning.kernels as kernels
import mandril_envs  # noqa: F401
from mandril.planning import (
    TaskBatch,
    empirical_visitation,
    expected_visitation,
    log_partition,
    maxent_nll,
    soft_value_iteration,
    state_action_visitation,
    state_visitation,
)
from mandril_envs import planning as numpy_planner
from mandril_envs.demos import Trajectory
from mandril_envs.model import TabularModel

TOL = 1e-10

# (env id, kwargs): every family, GridWorld with and without slip, both TabularMDP rewards.
FAMILIES = {
    "gridworld": ("mandril_envs/GridWorld-v0", {"size": 6, "horizon": 9}),
    "gridworld-slip": ("mandril_envs/GridWorld-v0", {"size": 5, "horizon": 7, "slip": 0.3}),
    "gridworld-cross": ("mandril_envs/GridWorld-v0", {"size": 5, "horizon": 6, "moves": "cross"}),
    "tabular-sa": ("mandril_envs/TabularMDP-v0", {}),
    "tabular-linear": ("mandril_envs/TabularMDP-Linear-v0", {}),
    "bandit": ("mandril_envs/Bandit-v0", {}),
}
STATE_REWARD_FAMILIES = ["gridworld", "gridworld-slip", "gridworld-cross", "tabular-linear"]


def make_models(family: str, n: int = 3, seed: int = 0) -> list[TabularModel]:
    env_id, kwargs = FAMILIES[family]
    env = gym.make(env_id, **kwargs).unwrapped
    models = []
    for task in env.sample_tasks(n, "train", seed=seed):
        env.set_task(task)
        models.append(env.model)
    return models


def rewards_of(models: list[TabularModel], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.as_tensor(np.stack([m.reward_matrix for m in models]), dtype=dtype)


def random_rewards(models: list[TabularModel], scale: float, seed: int, state_action: bool = False) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    shape = (len(models), models[0].state_dim) + ((models[0].action_dim,) if state_action else ())
    return torch.as_tensor(scale * rng.normal(size=shape))


# --- agreement with the numpy planner ---------------------------------------------------------
@pytest.mark.parametrize("layout", ["sparse", "dense"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_matches_numpy_planner(family: str, layout: str) -> None:
    models = make_models(family)
    batch = TaskBatch.from_models(models, layout=layout)
    assert batch.layout == layout
    rewards = rewards_of(models)
    plan = soft_value_iteration(batch, rewards)
    visitation = state_visitation(batch, plan.policy)
    occupancy = state_action_visitation(batch, plan.policy)
    mu = expected_visitation(batch, rewards)
    mu_sa = expected_visitation(batch, torch.as_tensor(np.stack([m.state_action_rewards() for m in models])))
    log_z = {method: log_partition(batch, rewards, method=method) for method in ("analytic", "autograd")}
    for b, model in enumerate(models):
        ref = numpy_planner.soft_value_iteration(model)
        for method, values in log_z.items():
            np.testing.assert_allclose(float(values[b]), model.initial_state_dist @ ref.values[0], rtol=0, atol=TOL, err_msg=method)
        np.testing.assert_allclose(plan.values[b].numpy(), ref.values, rtol=0, atol=TOL)
        np.testing.assert_allclose(plan.q_values[b].numpy(), ref.q_values, rtol=0, atol=TOL)
        np.testing.assert_allclose(plan.policy[b].numpy(), ref.policy, rtol=0, atol=TOL)
        ref_d = numpy_planner.state_visitation(model, ref.policy)
        ref_sa = numpy_planner.state_action_visitation(model, ref.policy)
        np.testing.assert_allclose(visitation[b].numpy(), ref_d, rtol=0, atol=TOL)
        np.testing.assert_allclose(occupancy[b].numpy(), ref_sa, rtol=0, atol=TOL)
        expected_mu = ref_d.sum(0) if rewards.ndim == 2 else ref_sa.sum(0)
        np.testing.assert_allclose(mu[b].numpy(), expected_mu, rtol=0, atol=TOL)
        np.testing.assert_allclose(mu_sa[b].numpy(), ref_sa.sum(0), rtol=0, atol=TOL)
    assert mu.shape == rewards.shape
    np.testing.assert_allclose(mu.sum(dim=tuple(range(1, mu.ndim))).numpy(), batch.horizon, atol=1e-9)


@pytest.mark.parametrize("family", ["gridworld", "gridworld-slip", "tabular-sa"])
def test_temperature_matches_numpy_planner(family: str) -> None:
    models = make_models(family, n=2)
    batch = TaskBatch.from_models(models)
    rewards = rewards_of(models)
    for tau in (0.3, 2.5):
        plan = soft_value_iteration(batch, rewards, temperature=tau)
        mu = expected_visitation(batch, rewards, temperature=tau)
        for b, model in enumerate(models):
            ref = numpy_planner.soft_value_iteration(model, temperature=tau)
            np.testing.assert_allclose(plan.values[b].numpy(), ref.values, rtol=0, atol=TOL)
            np.testing.assert_allclose(plan.policy[b].numpy(), ref.policy, rtol=0, atol=TOL)
            ref_sa = numpy_planner.state_action_visitation(model, ref.policy).sum(0)
            np.testing.assert_allclose(mu[b].numpy(), ref_sa if rewards.ndim == 3 else ref_sa.sum(1), rtol=0, atol=TOL)


# --- agreement with imitation -------------------------------------------------------------------
@pytest.mark.parametrize("family", STATE_REWARD_FAMILIES + ["bandit-state"])
def test_matches_imitation_state_rewards(family: str) -> None:
    from imitation.algorithms.mce_irl import mce_occupancy_measures, mce_partition_fh

    if family == "bandit-state":  # one state: a state reward is a constant; still a valid cross-check
        models = [m.with_reward(np.array([0.7])) for m in make_models("bandit")]
    else:
        models = make_models(family)
    batch = TaskBatch.from_models(models)
    for rewards in (rewards_of(models), random_rewards(models, 3.0, seed=1)):
        plan = soft_value_iteration(batch, rewards)
        visitation = state_visitation(batch, plan.policy)
        mu = expected_visitation(batch, rewards)
        for b, model in enumerate(models):
            values, q_values, policy = mce_partition_fh(model, reward=rewards[b].numpy())
            occupancy, cumulative = mce_occupancy_measures(model, reward=rewards[b].numpy(), pi=policy)
            np.testing.assert_allclose(plan.values[b].numpy(), values, rtol=0, atol=TOL)
            np.testing.assert_allclose(plan.q_values[b].numpy(), q_values, rtol=0, atol=TOL)
            np.testing.assert_allclose(plan.policy[b].numpy(), policy, rtol=0, atol=TOL)
            # imitation has H + 1 rows (s_0 .. s_H); ours has the first H
            assert occupancy.shape == (model.horizon + 1, model.state_dim)
            np.testing.assert_allclose(visitation[b].numpy(), occupancy[: model.horizon], rtol=0, atol=TOL)
            np.testing.assert_allclose(mu[b].numpy(), cumulative - occupancy[-1], rtol=0, atol=TOL)


@pytest.mark.parametrize("family", ["tabular-sa", "bandit"])
def test_matches_imitation_occupancy_for_state_action_rewards(family: str) -> None:
    """imitation's backup needs state rewards; its occupancy accepts any policy: pass ours."""
    from imitation.algorithms.mce_irl import mce_occupancy_measures

    models = make_models(family)
    batch = TaskBatch.from_models(models)
    rewards = rewards_of(models)
    assert rewards.ndim == 3
    plan = soft_value_iteration(batch, rewards)
    visitation = state_visitation(batch, plan.policy)
    for b, model in enumerate(models):
        occupancy, _ = mce_occupancy_measures(model, reward=np.zeros(model.state_dim), pi=plan.policy[b].numpy())
        np.testing.assert_allclose(visitation[b].numpy(), occupancy[: model.horizon], rtol=0, atol=TOL)


# --- layouts, padding, the exp-space step -----------------------------------------------------------
@pytest.mark.parametrize("family", ["gridworld-slip", "tabular-sa", "tabular-linear"])
def test_dense_and_sparse_layouts_agree(family: str) -> None:
    models = make_models(family)
    sparse, dense = (TaskBatch.from_models(models, layout=layout) for layout in ("sparse", "dense"))
    np.testing.assert_array_equal(sparse.transition_matrix().numpy(), dense.transition_matrix().numpy())
    np.testing.assert_array_equal(sparse.transition_matrix()[0].numpy(), models[0].transition_matrix)
    for state_action in (False, True):
        rewards = random_rewards(models, 2.0, seed=3, state_action=state_action).requires_grad_(True)
        results = []
        for batch in (sparse, dense):
            loss = maxent_nll(batch, rewards, expected_visitation(batch, rewards.detach() * 0.5)).sum()
            (grad,) = torch.autograd.grad(loss, rewards)
            results.append((loss.detach(), grad))
        torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=TOL)
        torch.testing.assert_close(results[0][1], results[1][1], rtol=0, atol=TOL)


def test_models_of_different_successor_widths_are_padded() -> None:
    """A deterministic (K = 1) and a slippery (K = 9) grid of the same size batch together."""
    plain = make_models("gridworld", n=1)[0]
    env = gym.make("mandril_envs/GridWorld-v0", size=6, horizon=9, slip=0.2).unwrapped
    slippery = env.model
    batch = TaskBatch.from_models([plain, slippery], layout="sparse")
    assert batch.n_successors == 9 and not batch.deterministic
    mu = expected_visitation(batch, rewards_of([plain, slippery]))
    for b, model in enumerate((plain, slippery)):
        ref = numpy_planner.state_visitation(model, numpy_planner.soft_value_iteration(model).policy).sum(0)
        np.testing.assert_allclose(mu[b].numpy(), ref, rtol=0, atol=TOL)


def test_large_grid_stays_sparse() -> None:
    env = gym.make("mandril_envs/GridWorld-32x32-v0").unwrapped
    batch = TaskBatch.from_models([env.model])
    assert batch.layout == "sparse" and batch.deterministic
    assert batch._operators.dense is None and env.model._dense is None  # no 1024 x 9 x 1024 tensor anywhere
    mu = expected_visitation(batch, rewards_of([env.model]))
    assert env.model._dense is None
    np.testing.assert_allclose(float(mu.sum()), env.model.horizon, rtol=1e-12)


def test_exp_space_step_is_taken_and_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deterministic exp-space step runs for the tasks where it is safe, the general step for the others
    (decided task by task), and the result matches the general step everywhere."""
    calls = {"exp_space": 0, "wide": 0}
    original = kernels._deterministic_soft_max

    def spy(batch, next_values, tau, out):
        wide = (next_values.amax(1) - next_values.amin(1)) > kernels._EXP_RANGE[batch.dtype] * tau
        calls["wide"] += int(bool(wide.any()))
        calls["exp_space"] += int(bool((~wide).any()))
        return original(batch, next_values, tau, out)

    monkeypatch.setattr(kernels, "_deterministic_soft_max", spy)
    models = make_models("gridworld")
    batch = TaskBatch.from_models(models)
    assert batch.deterministic
    for scale in (1.0, 60.0):  # 60 per step over 9 steps: value spreads beyond the exp range
        rewards = random_rewards(models, scale, seed=4)
        mu = expected_visitation(batch, rewards)
        plan = soft_value_iteration(batch, rewards)  # keeps Q: the general step
        ref = state_visitation(batch, plan.policy).sum(1)
        torch.testing.assert_close(mu, ref, rtol=0, atol=TOL)
        log_z = (batch.initial_state_dist * plan.values[:, 0]).sum(-1)
        torch.testing.assert_close(log_partition(batch, rewards), log_z, rtol=1e-15, atol=TOL)
    assert calls["exp_space"] > 0 and calls["wide"] > 0


# --- derivatives ----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["analytic", "autograd"])
@pytest.mark.parametrize("family", ["gridworld", "gridworld-slip", "tabular-sa", "tabular-linear", "bandit"])
def test_gradient_is_expected_minus_empirical_visitation(family: str, method: str) -> None:
    models = make_models(family)
    batch = TaskBatch.from_models(models)
    rewards = random_rewards(models, 1.5, seed=5, state_action=models[0].state_action_reward)
    rng = np.random.default_rng(0)
    mu_demo = rng.dirichlet(np.ones(rewards[0].numel()), size=len(models)).reshape(rewards.shape) * batch.horizon
    r = rewards.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(maxent_nll(batch, r, mu_demo, method=method).sum(), r)
    for b, model in enumerate(models):
        policy = numpy_planner.soft_value_iteration(model, rewards[b].numpy()).policy
        expected = numpy_planner.state_action_visitation(model, policy).sum(0)
        if rewards.ndim == 2:
            expected = expected.sum(1)
        np.testing.assert_allclose(grad[b].numpy(), expected - mu_demo[b], rtol=0, atol=TOL)


def test_loss_value_is_log_partition_minus_demo_return() -> None:
    models = make_models("gridworld-slip")
    batch = TaskBatch.from_models(models)
    rewards = rewards_of(models)
    mu_demo = expected_visitation(batch, rewards * 0.3)
    loss = maxent_nll(batch, rewards, mu_demo)
    for b, model in enumerate(models):
        values = numpy_planner.soft_value_iteration(model).values
        expected = model.initial_state_dist @ values[0] - float((mu_demo[b] * rewards[b]).sum())
        np.testing.assert_allclose(float(loss[b]), expected, rtol=0, atol=TOL)
    # temperature: (log Z_tau - <mu_D, r>) / tau, gradient (E[mu_tau] - mu_D) / tau
    r = rewards.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(maxent_nll(batch, r, mu_demo, temperature=0.5).sum(), r)
    torch.testing.assert_close(grad, (expected_visitation(batch, rewards, temperature=0.5) - mu_demo) / 0.5, rtol=0, atol=TOL)


def small_batch(family: str) -> TaskBatch:
    env_id, kwargs = {
        "grid": ("mandril_envs/GridWorld-v0", {"size": 3, "horizon": 4, "slip": 0.2, "n_obstacles": 1}),
        "grid-deterministic": ("mandril_envs/GridWorld-v0", {"size": 3, "horizon": 4, "n_obstacles": 1}),
        "tabular": ("mandril_envs/TabularMDP-v0", {"n_states": 4, "n_actions": 3, "horizon": 3}),
    }[family]
    env = gym.make(env_id, **kwargs).unwrapped
    models = []
    for task in env.sample_tasks(2, "train", seed=1):
        env.set_task(task)
        models.append(env.model)
    return TaskBatch.from_models(models)


@pytest.mark.parametrize("state_action", [False, True])
@pytest.mark.parametrize("family", ["grid", "grid-deterministic", "tabular"])
def test_gradcheck_and_gradgradcheck(family: str, state_action: bool) -> None:
    batch = small_batch(family)
    if family == "grid":  # small enough for "auto" to pick dense: check the sparse stochastic path here
        batch = TaskBatch(batch.successor_indices, batch.successor_probs, batch.initial_state_dist, batch.horizon, "sparse")
    shape = (batch.batch_size, batch.n_states) + ((batch.n_actions,) if state_action else ())
    reward = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    for method in ("analytic", "autograd"):
        assert torch.autograd.gradcheck(lambda r: log_partition(batch, r, 0.7, method), (reward,))
        assert torch.autograd.gradgradcheck(lambda r: log_partition(batch, r, 0.7, method), (reward,))
    assert torch.autograd.gradcheck(lambda r: expected_visitation(batch, r, 0.7), (reward,))


@pytest.mark.parametrize("layout", ["sparse", "dense"])
@pytest.mark.parametrize("family", ["grid", "grid-deterministic", "tabular"])
def test_visitation_is_differentiable_in_the_policy(family: str, layout: str) -> None:
    """Gradients of D(policy) and of the backup, to second order, through the sparse primitives' adjoints."""
    batch = small_batch(family)
    batch = TaskBatch(batch.successor_indices, batch.successor_probs, batch.initial_state_dist, batch.horizon, layout)
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(batch.batch_size, batch.horizon, batch.n_states, batch.n_actions, dtype=torch.float64, generator=generator)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: state_visitation(batch, torch.softmax(x, -1)), (logits,), fast_mode=True)
    assert torch.autograd.gradgradcheck(lambda x: state_action_visitation(batch, torch.softmax(x, -1)), (logits,), fast_mode=True)
    values = torch.randn(batch.batch_size, batch.n_states, dtype=torch.float64, generator=generator).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda v: batch.expected_next(v) ** 2, (values,))


@pytest.mark.parametrize("family", ["gridworld", "gridworld-slip", "tabular-sa"])
def test_hessian_vector_product_matches_finite_differences(family: str) -> None:
    models = make_models(family, n=2)
    batch = TaskBatch.from_models(models)
    state_action = models[0].state_action_reward
    rewards = random_rewards(models, 1.0, seed=6, state_action=state_action)
    direction = random_rewards(models, 1.0, seed=7, state_action=state_action)
    mu_demo = expected_visitation(batch, rewards * 0.5)

    def gradient(r: torch.Tensor, create_graph: bool = False, method: str = "analytic") -> torch.Tensor:
        r = r if r.requires_grad else r.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(maxent_nll(batch, r, mu_demo, method=method).sum(), r, create_graph=create_graph)
        return g

    eps = 1e-5
    finite = (gradient(rewards + eps * direction) - gradient(rewards - eps * direction)) / (2 * eps)
    for method in ("analytic", "autograd"):
        r = rewards.clone().requires_grad_(True)
        g = gradient(r, create_graph=True, method=method)
        (hvp,) = torch.autograd.grad((g * direction).sum(), r)
        torch.testing.assert_close(hvp, finite, rtol=1e-6, atol=1e-7)


def test_meta_gradient_through_a_reward_model_matches_autograd_method() -> None:
    """MandRIL's second-order meta-gradient: the analytic double backward equals full autograd."""
    from torch.func import functional_call

    from mandril.functional import gradient_step
    from mandril.rewards import MLPReward

    models = make_models("gridworld", n=2)
    batch = TaskBatch.from_models(models)
    features = torch.as_tensor(np.stack([m.feature_matrix for m in models]))
    net = MLPReward(features.shape[-1], hidden=(8,), activation="tanh", seed=3)
    mu_train = expected_visitation(batch, rewards_of(models) * 0.5)
    mu_test = expected_visitation(batch, rewards_of(models))
    grads = []
    for method in ("analytic", "autograd"):
        theta = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}
        train = maxent_nll(batch, functional_call(net, theta, (features,)), mu_train, method=method).sum()
        phi = gradient_step(theta, train, lr=0.05)
        test = maxent_nll(batch, functional_call(net, phi, (features,)), mu_test, method=method).sum()
        grads.append(torch.autograd.grad(test, list(theta.values())))
    for analytic, reference in zip(*grads):
        torch.testing.assert_close(analytic, reference, rtol=1e-9, atol=1e-10)
        assert reference.abs().max() > 0


# --- stability and dtype ------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["gridworld", "gridworld-slip", "tabular-sa"])
def test_stable_at_large_rewards_and_long_horizon(family: str) -> None:
    env_id, kwargs = FAMILIES[family]
    kwargs = {**kwargs, "horizon": 200}
    env = gym.make(env_id, **kwargs).unwrapped
    model = env.model
    rng = np.random.default_rng(8)
    shape = (model.state_dim,) + ((model.action_dim,) if model.state_action_reward else ())
    reward = rng.choice([-100.0, 100.0], size=shape)
    batch = TaskBatch.from_models([model])
    r = torch.as_tensor(reward[None]).requires_grad_(True)
    plan = soft_value_iteration(batch, r.detach())
    mu = expected_visitation(batch, r.detach())
    loss = maxent_nll(batch, r, mu * 0.5 + 0.5 * plan.policy.new_full(mu.shape, 200.0 / mu[0].numel()))
    (grad,) = torch.autograd.grad(loss.sum(), r)
    for tensor in (plan.values, plan.policy, mu, loss, grad):
        assert torch.isfinite(tensor).all()
    ref = numpy_planner.soft_value_iteration(model, reward)
    assert np.abs(ref.values).max() > 1e4  # the values really are large
    np.testing.assert_allclose(plan.values[0].numpy(), ref.values, rtol=1e-13, atol=1e-9)
    np.testing.assert_allclose(plan.policy[0].numpy(), ref.policy, rtol=0, atol=1e-9)
    ref_mu = numpy_planner.state_action_visitation(model, ref.policy).sum(0)
    np.testing.assert_allclose(mu[0].numpy(), ref_mu if reward.ndim == 2 else ref_mu.sum(1), rtol=0, atol=1e-8)


def test_float32_option() -> None:
    models = make_models("gridworld-slip")
    batch64 = TaskBatch.from_models(models)
    batch32 = TaskBatch.from_models(models, dtype=torch.float32)
    assert batch32.dtype == torch.float32 and batch64.to(dtype=torch.float32).dtype == torch.float32
    rewards = rewards_of(models)
    r32 = rewards.float().requires_grad_(True)
    mu32 = expected_visitation(batch32, r32.detach())
    loss32 = maxent_nll(batch32, r32, mu32 * 0.5 + 0.5 * expected_visitation(batch32, torch.zeros_like(r32)))
    (grad32,) = torch.autograd.grad(loss32.sum(), r32)
    assert mu32.dtype == grad32.dtype == loss32.dtype == torch.float32
    mu64 = expected_visitation(batch64, rewards)
    torch.testing.assert_close(mu32.double(), mu64, rtol=0, atol=1e-4)
    with pytest.raises(TypeError, match="dtype"):
        expected_visitation(batch32, rewards)  # float64 reward on a float32 batch


# --- empirical visitation ----------------------------------------------------------------------------
def _trajectory(states: list[int], actions: list[int]) -> Trajectory:
    states_a, actions_a = np.asarray(states, np.int64), np.asarray(actions, np.int64)
    return Trajectory(states_a, actions_a, np.zeros(len(actions)), states_a)


def chain_model(horizon: int = 3) -> TabularModel:
    """3 states in a line; action 0 stays, action 1 moves right (the last state stays)."""
    transition = np.zeros((3, 2, 3))
    for s in range(3):
        transition[s, 0, s] = 1.0
        transition[s, 1, min(s + 1, 2)] = 1.0
    return TabularModel.from_dense(transition, np.zeros(3), np.array([1.0, 0.0, 0.0]), horizon)


def test_empirical_visitation_counts_h_steps() -> None:
    model = chain_model()
    demos = [_trajectory([0, 1, 2, 2], [1, 1, 0]), _trajectory([0, 0, 1, 1], [0, 1, 0])]
    np.testing.assert_array_equal(empirical_visitation(model, demos), [1.5, 1.0, 0.5])
    expected_sa = np.array([[0.5, 1.0], [0.5, 0.5], [0.5, 0.0]])
    np.testing.assert_array_equal(empirical_visitation(model, demos, state_action=True), expected_sa)


def test_demos_from_the_generator() -> None:
    from mandril_envs.demos import generate

    env = gym.make("mandril_envs/GridWorld-v0", size=5, horizon=6, slip=0.1)
    demos = generate(env, 30, "soft", seed=2)
    mu = empirical_visitation(env.unwrapped.model, demos)
    assert mu.shape == (25,) and abs(mu.sum() - 6) < 1e-12
    counts = np.zeros(25)
    for demo in demos:
        np.add.at(counts, demo.states[:-1], 1)
    np.testing.assert_allclose(mu, counts / 30)


# --- bad input ---------------------------------------------------------------------------------------
def test_bad_demos_are_named() -> None:
    model = chain_model()
    good = _trajectory([0, 1, 2, 2], [1, 1, 0])
    with pytest.raises(ValueError, match="empty"):
        empirical_visitation(model, [])
    with pytest.raises(ValueError, match=r"demos\[1\].states\[2\] = 7 is out of range"):
        empirical_visitation(model, [good, _trajectory([0, 1, 7, 2], [1, 1, 0])], check_dynamics=False)
    with pytest.raises(ValueError, match=r"demos\[0\].actions\[0\] = 5 is out of range"):
        empirical_visitation(model, [_trajectory([0, 1, 2, 2], [5, 1, 0])])
    with pytest.raises(ValueError, match=r"horizon is H = 3"):
        empirical_visitation(model, [good, _trajectory([0, 1, 2], [1, 1])])
    with pytest.raises(ValueError, match="probability 0"):
        empirical_visitation(model, [_trajectory([0, 2, 2, 2], [1, 1, 0])])
    with pytest.raises(TypeError, match="integer"):
        empirical_visitation(model, [Trajectory(np.zeros(4), np.zeros(3, np.int64), np.zeros(3), np.zeros(4))])
    with pytest.raises(TypeError, match="sequence"):
        empirical_visitation(model, 3)
    with pytest.raises(TypeError, match="TabularModel"):
        empirical_visitation("model", [good])


def assert_same_operators(a: TaskBatch, b: TaskBatch) -> None:
    """Both batches' operators hold equal tensors (CSR: equal structure and values)."""
    x, y = a._operators, b._operators
    assert x.deterministic == y.deterministic
    for name in ("flat_indices", "gather_probs", "dense", "push_matrix", "backup_matrix"):
        u, v = getattr(x, name), getattr(y, name)
        assert (u is None) == (v is None), name
        if u is not None and u.layout == torch.sparse_csr:
            assert all(torch.equal(p, q) for p, q in ((u.crow_indices(), v.crow_indices()), (u.col_indices(), v.col_indices()), (u.values(), v.values()))), name
        elif u is not None:
            assert torch.equal(u, v), name


@pytest.mark.parametrize("layout", ["sparse", "dense"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_select_equals_a_checked_batch_of_the_same_rows(family: str, layout: str) -> None:
    """``select`` skips the checks of rows already checked: its operators and every kernel result are
    those of a batch built (and checked) from the same rows, bit for bit."""
    models = make_models(family, n=5, seed=4)
    batch = TaskBatch.from_models(models, layout=layout)
    rows = [3, 0, 4]
    picked = batch.select(rows)
    built = TaskBatch.from_models([models[r] for r in rows], layout=layout)
    assert (picked.layout, picked.horizon, picked.deterministic) == (built.layout, built.horizon, built.deterministic)
    for name in ("successor_indices", "successor_probs", "initial_state_dist"):
        assert torch.equal(getattr(picked, name), getattr(built, name)), name
    assert_same_operators(picked, built)
    for state_action in (False, True):
        rewards = random_rewards([models[r] for r in rows], 2.0, seed=5, state_action=state_action).requires_grad_(True)
        results = []
        for sub in (picked, built):
            loss = maxent_nll(sub, rewards, expected_visitation(sub, rewards.detach() * 0.5)).sum()
            results.append((loss.detach(), *torch.autograd.grad(loss, rewards)))
        assert all(torch.equal(x, y) for x, y in zip(*results))
    with pytest.raises(IndexError, match=r"indices must lie in \[-5, 5\)"):
        batch.select([0, 5])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        batch.select([])


@pytest.mark.parametrize("family", ["gridworld", "gridworld-slip", "tabular-sa"])
def test_with_start_shares_the_operators_and_checks_the_start(family: str) -> None:
    """A batch started elsewhere plans as a batch built from scratch with that start, bit for bit,
    and shares (does not rebuild) its parent's operators; a bad start is named."""
    models = make_models(family, n=3, seed=6)
    batch = TaskBatch.from_models(models)
    batch.transition_matrix()
    assert ("_operators" in batch.__dict__) == (batch.layout == "dense")  # built on first use only
    start = torch.as_tensor(np.random.default_rng(0).dirichlet(np.ones(batch.n_states), size=3))
    moved = batch.with_start(start)
    built = TaskBatch(batch.successor_indices, batch.successor_probs, start, batch.horizon, batch.layout)
    assert moved._operators is batch._operators and torch.equal(moved.initial_state_dist, start)
    assert_same_operators(moved, built)
    rewards = random_rewards(models, 1.5, seed=7)
    assert torch.equal(expected_visitation(moved, rewards), expected_visitation(built, rewards))
    assert not torch.equal(expected_visitation(moved, rewards), expected_visitation(batch, rewards))
    with pytest.raises(ValueError, match=r"initial_state_dist shape \(3, 2\) must be \(B, S\)"):
        batch.with_start(start[:, :2])
    with pytest.raises(ValueError, match="probability distributions"):
        batch.with_start(start * 2)
    with pytest.raises(TypeError, match="one dtype and device"):
        batch.with_start(start.float())


def test_bad_batches_are_named() -> None:
    models = make_models("gridworld", n=2)
    with pytest.raises(ValueError, match="non-empty"):
        TaskBatch.from_models([])
    with pytest.raises(TypeError, match=r"models\[1\]"):
        TaskBatch.from_models([models[0], "not a model"])
    other = gym.make("mandril_envs/GridWorld-v0", size=6, horizon=5).unwrapped.model
    with pytest.raises(ValueError, match="same horizon"):
        TaskBatch.from_models([models[0], other])
    with pytest.raises(ValueError, match=r"same \(S, A\)"):
        TaskBatch.from_models([models[0], make_models("gridworld-slip", n=1)[0]])
    with pytest.raises(ValueError, match="layout"):
        TaskBatch.from_models(models, layout="csr")
    with pytest.raises(TypeError, match="dtype"):
        TaskBatch.from_models(models, dtype=torch.int32)
    batch = TaskBatch.from_models(models)
    probs = batch.successor_probs.clone()
    probs[1, 4, 2, 0] = 0.9
    with pytest.raises(ValueError, match=r"rows must sum to 1: task 1, row \(s=4, a=2\)"):
        TaskBatch(batch.successor_indices, probs, batch.initial_state_dist, batch.horizon)
    indices = batch.successor_indices.clone()
    indices[0, 0, 0, 0] = 99
    with pytest.raises(ValueError, match="successor_indices must lie in"):
        TaskBatch(indices, batch.successor_probs, batch.initial_state_dist, batch.horizon)
    with pytest.raises(ValueError, match="initial_state_dist"):
        TaskBatch(batch.successor_indices, batch.successor_probs, batch.initial_state_dist * 2, batch.horizon)
    with pytest.raises(ValueError, match="horizon"):
        TaskBatch(batch.successor_indices, batch.successor_probs, batch.initial_state_dist, 0)


def test_bad_rewards_and_arguments_are_named() -> None:
    models = make_models("gridworld", n=2)
    batch = TaskBatch.from_models(models)
    rewards = rewards_of(models)
    mu = expected_visitation(batch, rewards)
    for bad in (float("nan"), float("inf"), -float("inf")):
        broken = rewards.clone()
        broken[1, 3] = bad
        with pytest.raises(ValueError, match="task 1 has 1 NaN or inf"):
            maxent_nll(batch, broken, mu)
    with pytest.raises(ValueError, match="batch size 3 but the batch has B = 2"):
        expected_visitation(batch, torch.zeros(3, 36, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"shape \(2, 35\)"):
        log_partition(batch, torch.zeros(2, 35, dtype=torch.float64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        log_partition(batch, rewards.numpy())
    with pytest.raises(ValueError, match="demo_visitation shape"):
        maxent_nll(batch, rewards, mu[:1])
    with pytest.raises(ValueError, match="state-action rewards need a state-action visitation"):
        maxent_nll(batch, torch.zeros(2, 36, 9, dtype=torch.float64), mu)
    with pytest.raises(ValueError, match="sums to"):
        maxent_nll(batch, rewards, mu * 1.1)  # as if counted over H + 1 steps
    with pytest.raises(ValueError, match="non-negative"):
        maxent_nll(batch, rewards, mu - 1.0)
    with pytest.raises(ValueError, match="temperature"):
        expected_visitation(batch, rewards, temperature=0.0)
    with pytest.raises(TypeError, match="temperature"):
        expected_visitation(batch, rewards, temperature="1")
    with pytest.raises(ValueError, match="method"):
        log_partition(batch, rewards, method="numpy")
    with pytest.raises(ValueError, match="policy shape"):
        state_visitation(batch, torch.full((2, 3, 36, 9), 1 / 9, dtype=torch.float64))
