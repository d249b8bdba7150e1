"""MaxEnt IRL (the batched fitting engine and the maxent methods): convergence to the exact optimum,
batch == single, start vs p0 likelihood, divergence, and agreement with imitation's MCEIRL."""

from __future__ import annotations

import math
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

import mandril_envs  # noqa: F401
from mandril import methods
from mandril.data import make_batch, start_distribution
from mandril.methods import DivergenceError, FitProblem, FitSettings, MaxEntIRL, fit_rewards, hide_reward
from mandril.planning import TaskBatch, empirical_visitation, maxent_nll
from mandril.rewards import LinearReward, TabularReward, expand_params, stack_params
from mandril_envs import planning as numpy_planner
from mandril_envs.demos import generate, task_demos
from mandril_envs.model import TabularModel


def soft_visitation(model, reward=None) -> np.ndarray:
    """``(S,)`` or ``(S, A)`` expected visitation of the soft-optimal policy (numpy planner)."""
    policy = numpy_planner.soft_value_iteration(model, reward).policy
    occupancy = numpy_planner.state_action_visitation(model, policy).sum(0)
    reward = model.reward_matrix if reward is None else reward
    return occupancy if np.ndim(reward) == 2 else occupancy.sum(1)


def from_starts(model: TabularModel, states: np.ndarray) -> TabularModel:
    """The model started from the demos' own first states (the start-conditioned likelihood's dynamics)."""
    p0 = start_distribution(states, model.state_dim)
    return TabularModel(model.successor_indices, model.successor_probs, model.reward_matrix, p0, model.horizon, model.feature_matrix)


def grid_problems(n_tasks: int, n_demos: int, size: int = 5, split: str = "test", kind: str = "features"):
    env = gym.make("mandril_envs/GridWorld-v0", size=size)
    base = env.unwrapped
    out = []
    for task in base.sample_tasks(n_tasks, split, seed=3):
        base.set_task(task)
        states, actions, _ = task_demos(env, n_demos, seed=1)
        out.append((base.model, FitProblem(hide_reward(base.model), base.reward_input(kind), states, actions, seed=task.index, label=f"{split}/{task.index}")))
    return out


def precision_floor(horizon: int, l2: float, loss: float, dtype: torch.dtype = torch.float64) -> float:
    """The largest gradient norm at which an L-BFGS fit of a tabular MaxEnt objective may stop as
    converged to precision (derived, not measured; see mandril.methods.fitting).

    At gradient ``g`` the quasi-Newton step decreases ``J`` by about ``g^T H^-1 g / 2 >= ||g||^2 /
    (2 lambda_max)``. The fit stops once accepted steps decrease ``J`` by at most PRECISION_EPS eps |J|,
    so only when ``||g||^2 / (2 lambda_max) <~ PRECISION_EPS eps |J|`` plus the rounding of ``J``
    itself; 16 eps |J| covers both (4x the rule). For a table of state rewards, the Hessian of ``J``
    is ``Cov(n) / H + l2 I`` (``n``: the visit counts of a trajectory, which sum to ``H``), and
    ``lambda_max(Cov(n)) <= E ||n||^2 <= H^2``, so ``lambda_max <= H + l2``.
    """
    return math.sqrt(2.0 * (horizon + l2) * 16 * torch.finfo(dtype).eps * abs(loss))


@pytest.mark.parametrize("likelihood", ["start", "p0"])
def test_a_converged_tabular_fit_is_the_exact_optimum(likelihood):
    """Fitted to the precision of float64 (grad_tol 0), from starting points that differ in their last
    bits: each takes the arithmetic through other roundings, as another CPU's kernels do. (With a fixed
    1e-9 tolerance, variants 3 (p0) and 5 (start) stalled at 1.7e-9 and 1.9e-9 for all 500 steps on an
    AVX2 machine, as variant 0 did on AVX-512.) Every variant must stop as converged to precision long
    before the cap, below the derived floor; the numpy planner (an independent implementation) must
    find the same gradient there, E[mu](r) / H - mu_D / H + l2 r; and by strong convexity (l2) all the
    variants' rewards lie within (||g_a|| + ||g_b||) / l2 of each other (the unique optimum)."""
    (model, problem), = grid_problems(1, 3)
    l2 = 0.05
    method = methods.make("maxent_tabular", l2=l2, grad_tol=0.0, max_steps=500, likelihood=likelihood)
    output = method.fit(problem.model, problem.inputs, problem.states, problem.actions)
    batch = make_batch([problem.model], [problem.inputs], [(problem.states, problem.actions)])
    dynamics = from_starts(model, problem.states) if likelihood == "start" else model
    mu_d = empirical_visitation(model, [SimpleNamespace(states=s, actions=a) for s, a in zip(problem.states, problem.actions)])
    fits = []
    for variant in range(6):
        noise = torch.randn(1, model.state_dim, generator=torch.Generator().manual_seed(variant), dtype=torch.float64) * 1e-14
        start = {"table": noise if variant else torch.zeros(1, model.state_dim, dtype=torch.float64)}
        fit = fit_rewards(TabularReward(model.state_dim), start, batch, FitSettings(l2=l2, grad_tol=0.0, max_steps=500), likelihood=likelihood)[0]
        if variant == 0:  # the method's own fit starts at zero: the same fit
            assert fit.steps == output.info["steps"] and np.array_equal(fit.reward, output.reward)
        floor = precision_floor(model.horizon, l2, fit.loss)
        assert fit.status == "precision" and not fit.converged, (variant, fit.status)
        assert fit.steps <= 60 and fit.grad_norm <= floor, (variant, fit.steps, fit.grad_norm, floor)
        residual = (soft_visitation(dynamics, fit.reward) - mu_d) / model.horizon + l2 * fit.reward
        # the two gradients agree to rounding: components of size <= 1, each a sum over H steps
        assert abs(np.linalg.norm(residual) - fit.grad_norm) <= 1e-12, (variant, np.linalg.norm(residual), fit.grad_norm)
        fits.append(fit)
    for a in fits:
        for b in fits:
            assert np.linalg.norm(a.reward - b.reward) <= (a.grad_norm + b.grad_norm) / l2 + 1e-12


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("name", ["maxent_tabular", "maxent"])
def test_a_batch_fits_exactly_like_each_task_alone(optimizer, name):
    kind = "map" if name == "maxent" else "features"
    pairs = grid_problems(4, 2, kind=kind)
    problems = [p for _, p in pairs]
    settings = dict(optimizer=optimizer, max_steps=40, grad_tol=1e-7, lr=1.0 if optimizer == "lbfgs" else 0.05)
    if name == "maxent":
        settings["reward_model"] = {"kind": "conv", "hidden": [4]}
    method = methods.make(name, **settings)
    together = method.fit_batch(problems)
    # tabular: the same arithmetic; conv: the batched convolution rounds its last bits differently
    tolerance = 1e-10 if name == "maxent_tabular" else 1e-7
    for problem, joint in zip(problems, together):
        alone = method.fit(problem.model, problem.inputs, problem.states, problem.actions, seed=problem.seed)
        np.testing.assert_allclose(joint.reward, alone.reward, rtol=0, atol=tolerance)
        assert abs(joint.info["steps"] - alone.info["steps"]) <= (0 if name == "maxent_tabular" else 2)


def test_lbfgs_and_adam_reach_the_same_optimum_and_lbfgs_is_much_quicker():
    pairs = grid_problems(3, 2)
    problems = [p for _, p in pairs]
    lbfgs = methods.make("maxent_tabular", grad_tol=1e-6).fit_batch(problems)
    adam = methods.make("maxent_tabular", optimizer="adam", lr=0.2, max_steps=3000, grad_tol=1e-6).fit_batch(problems)
    for a, b in zip(lbfgs, adam):
        assert a.info["converged"] and b.info["converged"]
        np.testing.assert_allclose(a.reward, b.reward, atol=1e-3)
        assert 5 * a.info["steps"] < b.info["steps"]


def test_the_p0_likelihood_has_no_lower_bound_with_one_demo_and_start_has():
    """With one demo and no penalty, the p0 likelihood is unbounded below (rewards run off); the
    start-conditioned one is not. The p0 fit is reported as a divergence, naming task and rate."""
    (model, problem), = grid_problems(1, 1)
    start = methods.make("maxent_tabular", l2=0.0, max_steps=300).fit(problem.model, problem.inputs, problem.states, problem.actions)
    assert np.abs(start.reward).max() < 1e4
    with pytest.raises(DivergenceError, match=r"maxent_tabular: the fit of test/\d+ diverged at step \d+ .*lbfgs lr = 1"):
        methods.make("maxent_tabular", l2=0.0, max_steps=300, likelihood="p0").fit(problem.model, problem.inputs, problem.states, problem.actions, label=problem.label)


def test_one_task_diverging_leaves_the_others_untouched():
    pairs = grid_problems(3, 2)
    problems = [p for _, p in pairs]
    wild = FitProblem(problems[1].model, problems[1].inputs * 1e9, problems[1].states, problems[1].actions, label="wild")
    method = methods.make("maxent_linear", optimizer="adam", lr=0.05, max_steps=30)
    calm = method.fit_batch(problems)
    mixed = method.fit_batch([problems[0], wild, problems[2]])
    assert isinstance(mixed[1], DivergenceError) and "wild" in str(mixed[1]) and "lr = 0.05" in str(mixed[1])
    np.testing.assert_allclose(mixed[0].reward, calm[0].reward, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mixed[2].reward, calm[2].reward, rtol=0, atol=1e-12)


def test_a_huge_rate_is_an_error_not_a_result():
    (model, problem), = grid_problems(1, 2)
    with pytest.raises(DivergenceError, match="lower the learning rate"):
        methods.make("maxent", optimizer="adam", lr=1e6, max_steps=50, reward_model={"kind": "conv", "hidden": [4]}, input_kind="map").fit(
            problem.model, np.asarray(gym.make("mandril_envs/GridWorld-v0", size=5).unwrapped.reward_input("map")), problem.states, problem.actions)


def test_state_action_rewards_on_the_tabular_mdp():
    env = gym.make("mandril_envs/TabularMDP-v0", n_states=6, n_actions=3, horizon=5)
    model = env.unwrapped.model
    states, actions, _ = task_demos(env, 3000, seed=0)
    output = methods.make("maxent_tabular", l2=1e-4).fit(hide_reward(model), model.feature_matrix, states, actions)
    assert output.reward.shape == (6, 3) and output.info["converged"]
    error = np.abs(soft_visitation(from_starts(model, states), output.reward) - soft_visitation(from_starts(model, states))).sum() / model.horizon
    assert error < 0.05, error


def test_maxentirl_with_a_module_of_your_own_and_its_errors():
    env = gym.make("mandril_envs/GridWorld-v0", size=4, horizon=5)
    model = env.unwrapped.model
    states, actions, _ = task_demos(env, 5, seed=0)
    features = model.feature_matrix.shape[1]
    irl = MaxEntIRL(LinearReward(features), l2=0.01)
    reward = irl.fit(model, states, actions)
    assert reward.shape == (16,) and irl.result.converged
    with pytest.raises(TypeError, match=r"unknown MaxEntIRL settings \['learning_rate'\]"):
        MaxEntIRL(LinearReward(features), learning_rate=0.1)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        MaxEntIRL(lambda x: x)
    with pytest.raises(TypeError, match="TabularModel"):
        irl.fit(env, states, actions)
    with pytest.raises(ValueError, match=r"demos must be states \(n, H\+1\)"):
        irl.fit(model, states[:, :-1], actions)
    with pytest.raises(ValueError, match=r"demo actions must lie in \[0, 9\)"):
        irl.fit(model, states, actions + 20)
    with pytest.raises(ValueError, match="another task"):
        irl.fit(model, states, (actions + 1) % 9)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        MaxEntIRL(LinearReward(features), lr=0.0)


def test_matches_imitation_mceirl() -> None:
    """Same demos, same linear reward (with bias), the p0 likelihood imitation fits: the same visitation.

    imitation's MCEIRL counts s_H in both occupancies (H + 1 rows), so its optimum differs from the
    exact H-step MaxEnt optimum by a little; both fit the demos and each other closely.
    """
    from imitation.algorithms.mce_irl import MCEIRL
    from imitation.rewards.reward_nets import BasicRewardNet
    from imitation.util import logger as imitation_logger

    env = gym.make("mandril_envs/GridWorld-v0", size=8, horizon=16)
    model = env.unwrapped.model
    demos = generate(env, 2000, "soft", seed=1)
    shim = imitation_env(model)
    net = BasicRewardNet(shim.observation_space, shim.action_space, use_action=False, hid_sizes=[]).double()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.zero_()
    demo_om = empirical_visitation(model, demos) + np.bincount([d.states[-1] for d in demos], minlength=model.state_dim) / len(demos)
    mce = MCEIRL(demo_om, shim, net, rng=np.random.default_rng(0), optimizer_kwargs={"lr": 0.1}, linf_eps=0.0, grad_l2_eps=0.0,
                 log_interval=None, custom_logger=imitation_logger.configure(format_strs=[]))
    mce.train(max_iter=400)
    with torch.no_grad():
        theirs = net(torch.as_tensor(np.array(model.feature_matrix)), None, None, None).numpy()
    states = np.stack([d.states for d in demos])
    actions = np.stack([d.actions for d in demos])
    ours = MaxEntIRL(LinearReward(model.feature_matrix.shape[1], bias=True), likelihood="p0", l2=1e-6, grad_tol=1e-5).fit(model, states, actions)
    ours_mu, theirs_mu = soft_visitation(model, ours), soft_visitation(model, theirs)
    assert np.abs(ours_mu - theirs_mu).sum() / model.horizon < 0.005
    # the rewards themselves are identified only up to directions the demos do not see (the terrain
    # one-hot columns sum to the bias column, unvisited states): compare where the expert goes
    visited = ours_mu > 0.05
    assert np.corrcoef(ours[visited], theirs[visited])[0, 1] > 0.95


def imitation_env(model):
    """The attributes imitation's MCE code reads, with the feature matrix as observations (writable copies)."""
    return SimpleNamespace(
        horizon=model.horizon, state_dim=model.state_dim, action_dim=model.action_dim,
        transition_matrix=np.array(model.transition_matrix), initial_state_dist=np.array(model.initial_state_dist),
        reward_matrix=np.array(model.reward_matrix), observation_matrix=np.array(model.feature_matrix),
        state_space=gym.spaces.Discrete(model.state_dim), action_space=gym.spaces.Discrete(model.action_dim),
        observation_space=gym.spaces.Box(-np.inf, np.inf, (model.feature_matrix.shape[1],), np.float64),
    )


def test_gradient_equals_imitation_mceirl_up_to_its_final_state_term() -> None:
    """One MCEIRL step's parameter gradient = ours + J^T (D[H] - demo s_H), exactly."""
    from imitation.algorithms.mce_irl import MCEIRL, mce_occupancy_measures
    from imitation.rewards.reward_nets import BasicRewardNet
    from imitation.util import logger as imitation_logger

    env = gym.make("mandril_envs/GridWorld-v0", size=5, horizon=7, slip=0.1)
    model = env.unwrapped.model
    demos = generate(env, 50, "soft", seed=3)
    shim = imitation_env(model)
    net = BasicRewardNet(shim.observation_space, shim.action_space, use_action=False, hid_sizes=[]).double()
    last = np.bincount([d.states[-1] for d in demos], minlength=model.state_dim) / len(demos)
    mce = MCEIRL(empirical_visitation(model, demos) + last, shim, net, rng=np.random.default_rng(0),
                 optimizer_kwargs={"lr": 0.0}, log_interval=None, custom_logger=imitation_logger.configure(format_strs=[]))
    features = torch.as_tensor(np.array(model.feature_matrix))
    mce._train_step(features)  # lr 0: leaves the parameters, keeps their gradient
    theirs_weight, theirs_bias = net.mlp.dense_final.weight.grad, net.mlp.dense_final.bias.grad
    ours_model = LinearReward(features.shape[1], bias=True)
    with torch.no_grad():
        ours_model.linear.weight.copy_(net.mlp.dense_final.weight)
        ours_model.linear.bias.copy_(net.mlp.dense_final.bias)
        reward = net(features, None, None, None).numpy()
    batch = TaskBatch.from_models([model])
    mu_demo = torch.as_tensor(empirical_visitation(model, demos)[None])
    loss = maxent_nll(batch, ours_model(features)[None], mu_demo)[0]
    ours_weight, ours_bias = torch.autograd.grad(loss, [ours_model.linear.weight, ours_model.linear.bias])
    final_row = mce_occupancy_measures(model, reward=reward)[0][-1] - last  # imitation's extra s_H term
    torch.testing.assert_close(ours_weight, theirs_weight - torch.as_tensor(final_row @ model.feature_matrix)[None], rtol=0, atol=1e-10)
    torch.testing.assert_close(ours_bias, theirs_bias, rtol=0, atol=1e-10)
    assert ours_weight.abs().max() > 1e-3


def test_fine_tuning_toward_the_initial_weights():
    """With l2_center='init' a huge penalty keeps the fit at its starting point; with 'zero', at zero."""
    (model, problem), = grid_problems(1, 2)
    start = torch.linspace(-1, 1, model.state_dim, dtype=torch.float64)
    batch = make_batch([problem.model], [problem.inputs], [(problem.states, problem.actions)])
    table = TabularReward(model.state_dim)
    init = expand_params({"table": start}, 1)
    near_init = fit_rewards(table, init, batch, FitSettings(l2=1e6, l2_center="init"))[0]
    near_zero = fit_rewards(table, init, batch, FitSettings(l2=1e6, l2_center="zero"))[0]
    np.testing.assert_allclose(near_init.reward, start.numpy(), atol=1e-4)
    np.testing.assert_allclose(near_zero.reward, 0.0, atol=1e-4)
    assert stack_params([table, table])["table"].shape == (2, model.state_dim)


def test_fit_settings_are_checked():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        FitSettings(optimizer="rmsprop")
    with pytest.raises(ValueError, match="max_steps must be an int >= 1"):
        FitSettings(max_steps=0)
    with pytest.raises(ValueError, match="l2_center must be one of"):
        FitSettings(l2_center="pretrained")
    with pytest.raises(ValueError, match="grad_tol must be a finite number >= 0"):
        FitSettings(grad_tol=-1)
