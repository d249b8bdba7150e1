"""AIRL, GAIL and BC through imitation (mandril.methods.imitation): the adapters cross-checked against
imitation / SB3 themselves, determinism, quietness, bad settings, and tiny end-to-end fits on every
kind of family (state rewards, state-action rewards, one state)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils import seeding
from gymnasium.utils.env_checker import check_env
from imitation.data import rollout
from imitation.rewards.reward_nets import BasicRewardNet
from stable_baselines3.common.policies import ActorCriticPolicy

import mandril_envs  # noqa: F401
from mandril import methods
from mandril.eval import score, shown_and_heldout_demos
from mandril.methods import DivergenceError, hide_reward
from mandril.methods.imitation.adapters import Observations, TabularModelEnv, demos_to_trajectories, policy_table, reward_table
from mandril.methods.imitation.common import build_state_reward_net, seeded_global_rngs

#: Budgets small enough for a test (seconds), large enough to run every part of a fit.
TINY_ADVERSARIAL = {"total_timesteps": 64, "n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1, "policy_hidden": [8], "reward_hidden": [8], "disc_updates_per_round": 1}
TINY = {
    "airl": {**TINY_ADVERSARIAL, "potential_hidden": [8]},
    "gail": dict(TINY_ADVERSARIAL),
    "bc": {"n_batches": 5, "hidden": [8]},
}


def _task(env_id: str, n: int = 2, **kwargs):
    env = gym.make(env_id, **kwargs)
    base = env.unwrapped
    base.set_task(base.sample_tasks(1, "test", seed=1)[0])
    return env, base.model, shown_and_heldout_demos(env, n, seed=0)


@pytest.fixture(scope="module")
def grid():
    return _task("mandril_envs/GridWorld-v0", size=4)


@pytest.fixture(scope="module")
def mdp():
    return _task("mandril_envs/TabularMDP-v0")


# --- observations and the env ----------------------------------------------------------------------


def test_observations_are_a_onehot_state_then_the_time_feature():
    none, onehot, fraction = (Observations(4, 3, kind) for kind in ("none", "onehot", "fraction"))
    assert (none.dim, onehot.dim, fraction.dim) == (4, 8, 5)
    np.testing.assert_array_equal(none.encode(2, 1), [0, 0, 1, 0])
    np.testing.assert_array_equal(onehot.encode(2, 1), [0, 0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_allclose(fraction.encode(2, 3), [0, 0, 1, 0, 1.0])
    batch = onehot.encode(np.array([[0, 3]]), np.array([[0], [3]]))  # broadcast to (2, 2)
    assert batch.shape == (2, 2, 8) and batch.dtype == np.float32 and batch.flags.writeable
    np.testing.assert_array_equal(batch.argmax(-1)[:, :], [[0, 3], [0, 3]])
    np.testing.assert_array_equal(batch[..., 4:].argmax(-1), [[0, 0], [3, 3]])
    with pytest.raises(ValueError, match=r"states must lie in \[0, 4\)"):
        none.encode(4, 0)
    with pytest.raises(ValueError, match=r"time steps must lie in \[0, 3\]"):
        none.encode(0, 4)
    with pytest.raises(ValueError, match="time_feature must be one of"):
        Observations(4, 3, "clock")


@pytest.mark.parametrize("time_feature", ["none", "onehot"])
def test_the_env_steps_exactly_by_the_model_and_truncates_at_the_horizon(mdp, time_feature):
    _, model, _ = mdp
    env = TabularModelEnv(hide_reward(model), time_feature)
    obs, info = env.reset(seed=5)
    rng, _ = seeding.np_random(5)  # the generator reset(seed=5) installs
    state = int(rng.choice(model.state_dim, p=model.initial_state_dist))
    assert info == {"state": state, "t": 0}
    np.testing.assert_array_equal(obs, env.observations.encode(state, 0))
    actions = np.random.default_rng(0).integers(model.action_dim, size=model.horizon)
    for t, action in enumerate(actions, start=1):
        obs, reward, terminated, truncated, info = env.step(int(action))
        state = model.sample_next_state(state, int(action), rng)
        assert info == {"state": state, "t": t} and reward == 0.0 and not terminated
        assert truncated == (t == model.horizon)
        np.testing.assert_array_equal(obs, env.observations.encode(state, t))
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
    check_env(TabularModelEnv(model, time_feature), skip_render_check=True)


def test_the_env_visits_successors_with_the_models_probabilities(mdp):
    _, model, _ = mdp
    env = TabularModelEnv(model)
    env.reset(seed=0)
    counts = np.zeros(model.state_dim)
    for _ in range(4000):  # always from state s0, action 1
        env._state, env._t, env._needs_reset = 0, 0, False
        counts[env.step(1)[-1]["state"]] += 1
    expected = model.transition_matrix[0, 1]
    assert np.abs(counts / counts.sum() - expected).max() < 0.03


# --- demos -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("time_feature", ["none", "onehot", "fraction"])
def test_demos_round_trip_to_imitation_trajectories(grid, time_feature):
    _, model, demos = grid
    observations = Observations(model.state_dim, model.horizon, time_feature)
    trajectories = demos_to_trajectories(demos.states, demos.actions, observations)
    assert len(trajectories) == len(demos.states)
    for trajectory, states, actions in zip(trajectories, demos.states, demos.actions):
        assert not trajectory.terminal and trajectory.infos is None and len(trajectory) == model.horizon
        np.testing.assert_array_equal(trajectory.obs, observations.encode(states, np.arange(model.horizon + 1)))
        np.testing.assert_array_equal(trajectory.acts, actions)
    transitions = rollout.flatten_trajectories(trajectories)  # imitation's own flattening
    np.testing.assert_array_equal(transitions.obs[:, : model.state_dim].argmax(1), demos.states[:, :-1].ravel())
    np.testing.assert_array_equal(transitions.next_obs[:, : model.state_dim].argmax(1), demos.states[:, 1:].ravel())
    np.testing.assert_array_equal(transitions.acts, demos.actions.ravel())
    assert not transitions.dones.any()
    with pytest.raises(ValueError, match=r"demos must be states \(n, H\+1\)"):
        demos_to_trajectories(demos.states[:, :-1], demos.actions, observations)


# --- reward nets -> tables -------------------------------------------------------------------------


def _onehot(index: int, size: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor([index]), size).float()


@pytest.mark.parametrize("use_action", [False, True])
def test_a_reward_net_on_onehot_states_equals_its_table(use_action):
    n_states, n_actions = 6, 3
    torch.manual_seed(0)
    net = BasicRewardNet(Observations(n_states, 2).state_space(), gym.spaces.Discrete(n_actions), use_action=use_action, hid_sizes=(8,))
    table = reward_table(net, np.eye(n_states), n_actions, state_action=use_action)
    assert table.dtype == np.float64 and table.shape == ((n_states, n_actions) if use_action else (n_states,))
    with torch.no_grad():  # the net's own forward on one state (and action) at a time
        direct = np.array([[float(net(_onehot(s, n_states), _onehot(a, n_actions), _onehot(s, n_states), torch.zeros(1))) for a in range(n_actions)] for s in range(n_states)])
    np.testing.assert_allclose(table, direct if use_action else direct[:, 0], rtol=0, atol=1e-6)
    assert np.ptp(table) > 0  # not a constant: the comparison means something
    if use_action:
        with pytest.raises(ValueError, match="depends on the action"):
            reward_table(net, np.eye(n_states), n_actions, state_action=False)


def test_a_net_reading_the_next_state_has_no_table():
    net = BasicRewardNet(gym.spaces.Box(0, 1, (3,)), gym.spaces.Discrete(2), use_next_state=True)
    with pytest.raises(ValueError, match="next state"):
        reward_table(net, np.eye(3), 2, state_action=True)


@pytest.mark.parametrize("time_feature", ["none", "onehot", "fraction"])
def test_the_trainers_net_reads_the_state_columns_only_and_equals_the_table(time_feature):
    observations = Observations(5, 4, time_feature)
    torch.manual_seed(1)
    net, reward = build_state_reward_net(observations, gym.spaces.Discrete(3), use_action=True, hidden=(8,))
    table = reward_table(reward, np.eye(5), 3, state_action=True)
    rng = np.random.default_rng(0)
    states, steps, actions = rng.integers(5, size=50), rng.integers(5, size=50), rng.integers(3, size=50)
    next_states = rng.integers(5, size=50)  # next state, time and done must not matter
    got = net.predict(observations.encode(states, steps), actions, observations.encode(next_states, np.minimum(steps + 1, 4)), rng.random(50) < 0.5)
    np.testing.assert_allclose(got, table[states, actions], rtol=0, atol=1e-6)


def test_the_shaped_net_is_the_table_plus_a_potential_difference():
    observations = Observations(4, 3, "onehot")
    torch.manual_seed(2)
    net, reward = build_state_reward_net(observations, gym.spaces.Discrete(2), use_action=False, hidden=(8,), potential_hidden=(8,), discount=0.9)
    table = reward_table(reward, np.eye(4), 2, state_action=False)
    potential = net.inner.potential
    with torch.no_grad():
        h = potential(torch.eye(4)).numpy().astype(np.float64)
    s, s2 = np.array([0, 1, 2, 3]), np.array([3, 0, 1, 2])
    got = net.predict(observations.encode(s, 0), np.zeros(4, np.int64), observations.encode(s2, 3), np.ones(4, bool))  # done ignored
    np.testing.assert_allclose(got, table[s] + 0.9 * h[s2] - h[s], atol=1e-5)


# --- policies -> tables ----------------------------------------------------------------------------


@pytest.mark.parametrize("time_feature", ["none", "onehot"])
def test_a_policy_table_sums_to_one_and_equals_the_policys_probabilities(time_feature):
    observations = Observations(5, 4, time_feature)
    torch.manual_seed(3)
    policy = ActorCriticPolicy(observations.space(), gym.spaces.Discrete(3), lr_schedule=lambda _: 1e-3, net_arch=[16])
    table = policy_table(policy, observations, 3)
    assert table.shape == (4, 5, 3) and table.dtype == np.float64
    np.testing.assert_allclose(table.sum(axis=2), 1.0, rtol=0, atol=1e-12)
    for t in range(4):
        for s in range(5):
            obs = torch.as_tensor(observations.encode(s, t))[None]
            with torch.no_grad():  # SB3's own path, one action at a time
                direct = np.array([float(policy.evaluate_actions(obs, torch.tensor([a]))[1]) for a in range(3)])
            np.testing.assert_allclose(table[t, s], np.exp(direct), rtol=0, atol=1e-6)
    if time_feature == "onehot":
        assert np.abs(table[0] - table[3]).max() > 1e-4  # the policy depends on t
    else:
        np.testing.assert_array_equal(table[0], table[3])


# --- the methods -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_fit_is_deterministic_for_a_seed_and_leaves_the_global_rngs_alone(name, grid):
    _, model, demos = grid
    method = methods.make(name, **TINY[name])
    torch.manual_seed(123)
    np.random.seed(123)
    expected_torch, expected_numpy = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    a = method.fit(hide_reward(model), model.feature_matrix, demos.states, demos.actions, seed=4)
    assert torch.equal(torch.rand(3), expected_torch) and np.array_equal(np.random.rand(3), expected_numpy)
    b = method.fit(hide_reward(model), model.feature_matrix, demos.states, demos.actions, seed=4)
    c = method.fit(hide_reward(model), model.feature_matrix, demos.states, demos.actions, seed=5)
    for field in ("reward", "policy"):
        if getattr(a, field) is not None:
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
            assert not np.array_equal(getattr(a, field), getattr(c, field))


@pytest.mark.parametrize(
    "env_id, name, reward_shape",
    [
        ("mandril_envs/TabularMDP-v0", "airl", "SA"),  # state-action rewards: AIRL reads the action
        ("mandril_envs/TabularMDP-Linear-v0", "airl", "S"),
        ("mandril_envs/Bandit-K10-v0", "airl", "SA"),  # one state
        ("mandril_envs/TabularMDP-v0", "gail", None),
        ("mandril_envs/Bandit-K10-v0", "gail", None),
        ("mandril_envs/TabularMDP-v0", "bc", None),
        ("mandril_envs/Bandit-K10-v0", "bc", None),
    ],
)
def test_the_methods_run_on_every_kind_of_family(env_id, name, reward_shape):
    env, model, demos = _task(env_id)
    output = methods.make(name, **TINY[name]).fit(hide_reward(model), model.feature_matrix, demos.states, demos.actions, seed=0, label="test/0")
    assert output.policy.shape == (model.horizon, model.state_dim, model.action_dim)
    if reward_shape is None:
        assert output.reward is None
    else:
        assert output.reward.shape == {"S": (model.state_dim,), "SA": (model.state_dim, model.action_dim)}[reward_shape]
    scores = score(model, output, demos.heldout_states, demos.heldout_actions)
    assert scores.evd >= 0 and np.isfinite(scores.normalized_evd) and scores.demo_nll > 0


def test_gail_can_also_return_its_discriminators_reward(grid):
    _, model, demos = grid
    method = methods.make("gail", **TINY["gail"], discriminator_reward=True, discriminator_input="state")
    assert method.output == "reward+policy" and methods.make("gail").output == "policy"
    output = method.fit(hide_reward(model), model.feature_matrix, demos.states, demos.actions)
    assert output.reward.shape == (model.state_dim,) and (output.reward >= 0).all()  # -log(1 - D) >= 0


def test_the_demo_batch_is_clipped_to_the_demo_transitions(grid):
    _, model, demos = grid
    one = methods.make("airl", **{**TINY["airl"], "demo_batch_size": 1000}).fit(hide_reward(model), model.feature_matrix, demos.states[:1], demos.actions[:1])
    assert one.info["demo_batch_size"] == model.horizon
    bc = methods.make("bc", **{**TINY["bc"], "batch_size": 1000}).fit(hide_reward(model), model.feature_matrix, demos.states, demos.actions)
    assert bc.info["batch_size"] == 2 * model.horizon


def test_absurd_rewards_are_a_divergence_naming_the_method_task_and_rates(grid):
    _, model, demos = grid
    method = methods.make("airl", **TINY["airl"], max_abs_reward=1e-9, gen_lr=0.01, disc_lr=0.02)
    with pytest.raises(DivergenceError, match=r"airl: task test/3: the largest learned reward magnitude .* \(limit 1e-09\): the fit diverged with gen_lr=0\.01, disc_lr=0\.02"):
        method.fit(hide_reward(model), model.feature_matrix, demos.states, demos.actions, label="test/3")
    failed = method.fit_batch([methods.FitProblem(hide_reward(model), model.feature_matrix, demos.states, demos.actions, label="test/3")])
    assert isinstance(failed[0], DivergenceError)


@pytest.mark.parametrize("name, settings, rates", [("airl", {"gen_lr": 1e30, "disc_lr": 0.01}, r"gen_lr=1e\+30, disc_lr=0\.01"), ("gail", {"gen_lr": 0.01, "disc_lr": 1e30, "total_timesteps": 128}, r"gen_lr=0\.01, disc_lr=1e\+30"), ("bc", {"lr": 1e30}, r"lr=1e\+30")])
def test_an_exploding_optimisation_is_a_divergence_naming_the_method_task_and_rates(grid, name, settings, rates):
    _, model, demos = grid
    method = methods.make(name, **{**TINY[name], **settings, **({"n_batches": 20} if name == "bc" else {})})
    with pytest.raises(DivergenceError, match=rf"{name}: task test/3: .* diverged with {rates}"):
        method.fit(hide_reward(model), model.feature_matrix, demos.states, demos.actions, label="test/3")


def test_fits_print_nothing_and_write_no_files(grid, tmp_path, monkeypatch, capfd):
    _, model, demos = grid
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would be printed outside pytest
        for name in sorted(TINY):
            methods.make(name, **TINY[name]).fit(hide_reward(model), model.feature_matrix, demos.states, demos.actions)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    # torch itself makes its compile cache folder (torchinductor_<user>) in the temporary directory on first use
    assert [p.name for p in (tmp_path / "tmp").iterdir() if not p.name.startswith("torchinductor_")] == []
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize(
    "name, settings, error, message",
    [
        ("airl", {"batch_size": 1}, ValueError, r"batch_size must be in \[2, n_envs \* n_steps = 1024\], got 1"),
        ("airl", {"total_timesteps": 100}, ValueError, r"total_timesteps must be >= n_envs \* n_steps = 1024"),
        ("airl", {"reward_input": "next_state"}, ValueError, r"reward_input must be one of \['auto', 'state', 'state_action'\]"),
        ("airl", {"gamma": 0.0}, ValueError, r"gamma must be in \(0, 1\]"),
        ("airl", {"reward_hidden": [0]}, ValueError, r"reward_hidden widths must be >= 1"),
        ("airl", {"n_envs": "8"}, TypeError, r"\[airl\] n_envs must be an integer"),
        ("gail", {"disc_lr": -1.0}, ValueError, r"disc_lr must be a finite number > 0"),
        ("gail", {"discriminator_input": "pixels"}, ValueError, r"discriminator_input must be one of"),
        ("gail", {"time_feature": "clock"}, ValueError, r"time_feature must be one of \['none', 'onehot', 'fraction'\]"),
        ("bc", {"n_batches": 0}, ValueError, r"n_batches must be an int >= 1, got 0"),
        ("bc", {"lr": 0.0}, ValueError, r"lr must be a finite number > 0"),
        ("bc", {"epochs": 3}, ValueError, r"\[bc\]: unknown key \['epochs'\]"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(name, settings, error, message):
    with pytest.raises(error, match=message):
        methods.make(name, **settings)


def test_seeded_global_rngs_restores_the_previous_states():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with seeded_global_rngs(7):
        inside = torch.rand(2)
    assert torch.equal(torch.get_rng_state(), before)
    with seeded_global_rngs(7):
        assert torch.equal(torch.rand(2), inside)


@pytest.mark.slow  # a fresh interpreter importing torch: seconds on a loaded machine
def test_importing_mandril_does_not_import_imitation():
    code = "import sys, mandril, mandril.methods; assert not [m for m in sys.modules if m.split('.')[0] in ('imitation', 'stable_baselines3')]"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow  # about a minute: real (small) budgets
@pytest.mark.parametrize(
    "name, settings, bound",
    [
        ("bc", {}, 0.7),
        ("airl", {"total_timesteps": 4096, "n_envs": 4, "n_steps": 128}, 0.2),
        ("gail", {"total_timesteps": 12288, "n_envs": 4, "n_steps": 128}, 0.3),
    ],
)
def test_each_method_learns_on_a_small_grid(name, settings, bound):
    # measured on this task: bc 0.45, airl 0.011, gail 0.02 (uniform 1, the zero reward about 1)
    env, model, demos = _task("mandril_envs/GridWorld-v0", n=8, size=5)
    output = methods.make(name, **settings).fit(hide_reward(model), model.feature_matrix, demos.states, demos.actions, seed=0)
    assert score(model, output).normalized_evd < bound
