"""MaxEnt IRL from scratch: recovery on GridWorld, agreement with imitation's MCEIRL, stopping, bad input."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

import mandril_envs  # noqa: F401
from mandril.functional import NonFiniteLossError
from mandril.irl import MaxEntIRL, MaxEntIRLConfig
from mandril.planning import TaskBatch, empirical_visitation, maxent_nll
from mandril.rewards import LinearReward, MLPReward
from mandril_envs import planning as numpy_planner
from mandril_envs.demos import generate


def soft_visitation(model, reward=None) -> np.ndarray:
    """``(S,)`` or ``(S, A)`` expected visitation of the soft-optimal policy (numpy planner)."""
    policy = numpy_planner.soft_value_iteration(model, reward).policy
    occupancy = numpy_planner.state_action_visitation(model, policy).sum(0)
    reward = model.reward_matrix if reward is None else reward
    return occupancy if np.ndim(reward) == 2 else occupancy.sum(1)


@pytest.fixture(scope="module")
def grid_demos():
    env = gym.make("mandril_envs/GridWorld-v0", size=8, horizon=16)
    demos = generate(env, 2000, "soft", seed=1)
    return env.unwrapped.model, demos


def test_recovers_the_soft_optimal_visitation_on_gridworld(grid_demos) -> None:
    model, demos = grid_demos
    horizon = model.horizon
    irl = MaxEntIRL(LinearReward(model.feature_matrix.shape[1]), steps=400, lr=0.1, progress=False)
    reward = irl.fit(model, demos)
    assert reward.shape == (model.state_dim,) and reward.dtype == np.float64
    truth = soft_visitation(model)
    learned = soft_visitation(model, reward)
    baseline = soft_visitation(model, np.zeros(model.state_dim))
    error = np.abs(learned - truth).sum() / horizon
    assert error < 0.03, error  # (with 2000 demos the demos themselves are ~0.013 from the truth)
    assert np.abs(baseline - truth).sum() / horizon > 1.0  # the task is not trivial
    history = irl.history
    assert history.steps == 400 and len(history.losses) == len(history.grad_norms) == 401
    assert history.losses[-1] < history.losses[0] - 10 and history.grad_norms[-1] < 0.05
    # the learned policy, like the expert, spends much of its time on the goal cell
    goal = int(np.argmax(model.reward_matrix))
    assert learned[goal] > 0.5 * truth[goal] > 0


def test_matches_imitation_mceirl(grid_demos) -> None:
    """Same demos, same linear reward (features, with bias), same Adam: the same visitation.

    imitation's MCEIRL counts s_H in both occupancies (H + 1 rows), so its optimum differs from the
    exact H-step MaxEnt optimum by a little; both fit the demos and each other closely.
    """
    from imitation.algorithms.mce_irl import MCEIRL
    from imitation.rewards.reward_nets import BasicRewardNet
    from imitation.util import logger as imitation_logger

    model, demos = grid_demos
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
        theirs = net(torch.as_tensor(model.feature_matrix), None, None, None).numpy()
    ours = MaxEntIRL(LinearReward(model.feature_matrix.shape[1], bias=True), "adam", 400, lr=0.1, grad_tol=0.0, progress=False).fit(model, demos)
    ours_mu, theirs_mu = soft_visitation(model, ours), soft_visitation(model, theirs)
    assert np.abs(ours_mu - theirs_mu).sum() / model.horizon < 0.005
    assert np.corrcoef(ours, theirs)[0, 1] > 0.99


def imitation_env(model):
    """The attributes imitation's MCE code reads, with the feature matrix as observations."""
    return SimpleNamespace(
        horizon=model.horizon, state_dim=model.state_dim, action_dim=model.action_dim,
        transition_matrix=model.transition_matrix, initial_state_dist=model.initial_state_dist,
        reward_matrix=model.reward_matrix, observation_matrix=model.feature_matrix,
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
    features = torch.as_tensor(model.feature_matrix)
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


def test_early_stopping_on_the_gradient_norm() -> None:
    env = gym.make("mandril_envs/GridWorld-v0", size=5, horizon=8).unwrapped
    model = env.model
    exact = soft_visitation(model)  # demos given as their (exact) visitation
    lbfgs = functools.partial(torch.optim.LBFGS, lr=1.0, line_search_fn="strong_wolfe")
    tabular = np.eye(model.state_dim)  # a tabular reward can reproduce any soft-optimal visitation
    irl = MaxEntIRL(LinearReward(model.state_dim), lbfgs, steps=50, grad_tol=1e-5, progress=False)
    reward = irl.fit(model, exact, inputs=tabular)
    assert irl.history.converged and irl.history.steps < 50 and irl.history.grad_norms[-1] <= 1e-5
    np.testing.assert_allclose(soft_visitation(model, reward), exact, atol=1e-5)
    adam = MaxEntIRL(LinearReward(model.feature_matrix.shape[1]), steps=5, grad_tol=1e-6, progress=False)
    adam.fit(model, exact)
    assert not adam.history.converged and adam.history.steps == 5


def test_state_action_rewards_on_tabular_mdp() -> None:
    env = gym.make("mandril_envs/TabularMDP-v0", n_states=6, n_actions=3, horizon=5)
    model = env.unwrapped.model
    demos = generate(env, 3000, "soft", seed=0)
    irl = MaxEntIRL(LinearReward(model.state_dim, n_actions=model.action_dim), steps=300, lr=0.1, progress=False)
    reward = irl.fit(model, demos, inputs=np.eye(model.state_dim))
    assert reward.shape == (6, 3)
    error = np.abs(soft_visitation(model, reward) - soft_visitation(model)).sum() / model.horizon
    assert error < 0.05, error


def test_fit_is_deterministic_and_shows_no_bar_when_disabled(capsys) -> None:
    env = gym.make("mandril_envs/GridWorld-v0", size=4, horizon=5)
    model = env.unwrapped.model
    demos = generate(env, 20, "soft", seed=0)
    results = [MaxEntIRL(MLPReward(model.feature_matrix.shape[1], hidden=(8,), seed=2), steps=10, progress=False).fit(model, demos)
               for _ in range(2)]
    np.testing.assert_array_equal(results[0], results[1])
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    MaxEntIRL(LinearReward(model.feature_matrix.shape[1]), steps=3, progress=True).fit(model, demos)
    assert "MaxEnt IRL" in capsys.readouterr().err


def test_config_and_bad_input_are_named() -> None:
    env = gym.make("mandril_envs/GridWorld-v0", size=4, horizon=5)
    model = env.unwrapped.model
    demos = generate(env, 5, "soft", seed=0)
    features = model.feature_matrix.shape[1]
    irl = MaxEntIRL(LinearReward(features), config=MaxEntIRLConfig(steps=7, lr=0.3), optimizer="sgd", progress=False)
    assert (irl.config.steps, irl.config.lr, irl.config.optimizer) == (7, 0.3, "sgd")
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        MaxEntIRLConfig(steps=0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        MaxEntIRL(LinearReward(features), "rmsprop")
    with pytest.raises(ValueError, match="lr must be > 0"):
        MaxEntIRL(LinearReward(features), lr=0.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        MaxEntIRLConfig(temperature=-1.0)
    with pytest.raises(TypeError, match=r"unknown MaxEntIRL settings \['learning_rate'\]"):
        MaxEntIRL(LinearReward(features), learning_rate=0.1)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        MaxEntIRL(lambda x: x)
    with pytest.raises(TypeError, match="TabularModel"):
        irl.fit(env, demos)
    with pytest.raises(ValueError, match=r"reward_model output \(16, 1\)"):
        MaxEntIRL(_Unsqueezed(features), progress=False).fit(model, demos)
    with pytest.raises(ValueError, match="empty"):
        irl.fit(model, [])
    with pytest.raises(ValueError, match="sums to"):
        irl.fit(model, np.ones(model.state_dim))
    with pytest.raises(NonFiniteLossError, match="lower the learning rate"):
        MaxEntIRL(MLPReward(features, hidden=(4,)), "sgd", steps=50, lr=1e200, progress=False).fit(model, demos)


class _Unsqueezed(torch.nn.Module):
    """A broken reward model: (S, 1) instead of (S,)."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.inner = LinearReward(n_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)[:, None]
