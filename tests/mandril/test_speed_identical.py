"""The speed-ups of issue 21 change no number: each faster path equals the plain one bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mandril.methods.fitting import FitSettings, _Evaluation, _Flat, _Run, _two_loop
from mandril.planning import maxent_nll
from mandril.rewards.batched import batched_rewards


def _textbook_two_loop(grads, pairs):
    """The two-loop recursion as first written (fresh tensors, every pair's scale computed)."""
    q = grads.clone()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * (s * q).sum(1)
        q -= alpha[:, None] * y
        alphas.append(alpha)
    gamma = torch.ones_like(grads[:, 0])
    found = torch.zeros_like(gamma, dtype=torch.bool)
    for s, y, rho in reversed(pairs):
        use = ~found & (rho > 0)
        gamma = torch.where(use, (s * y).sum(1) / (y * y).sum(1).clamp_min(1e-300), gamma)
        found |= use
    r = gamma[:, None] * q
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        beta = rho * (y * r).sum(1)
        r += s * (alpha - beta)[:, None]
    return -r


@pytest.mark.parametrize("b, p, m", [(1, 3, 0), (4, 37, 1), (5, 1000, 4), (20, 1507, 10)])
def test_two_loop_equals_the_textbook_form_bit_for_bit(b, p, m) -> None:
    g = torch.Generator().manual_seed(b * 1000 + m)
    grads = torch.randn(b, p, generator=g, dtype=torch.float64)
    pairs = []
    for k in range(m):
        s, y = torch.randn(b, p, generator=g, dtype=torch.float64), torch.randn(b, p, generator=g, dtype=torch.float64)
        rho = torch.rand(b, generator=g, dtype=torch.float64)
        if k == m - 1:
            rho[0] = 0.0  # task 0's newest pair unused: its scale comes from an older pair
        rho[torch.rand(b, generator=g) < 0.25] = 0.0
        pairs.append((s, y, rho))
    before = [t.clone() for pair in pairs for t in pair] + [grads.clone()]
    assert torch.equal(_two_loop(grads, pairs), _textbook_two_loop(grads, pairs))
    assert all(torch.equal(a, b) for a, b in zip(before, [t for pair in pairs for t in pair] + [grads]))  # inputs untouched


def test_norms_are_recomputed_after_an_in_place_change() -> None:
    evaluation = _Evaluation(torch.zeros(2), torch.ones(2, 3, dtype=torch.float64), torch.ones(2, 4, dtype=torch.float64))
    first = evaluation.norms
    assert evaluation.norms is first and torch.equal(first, torch.full((2,), 3.0**0.5, dtype=torch.float64))
    evaluation.grads[1] = 2.0
    assert torch.equal(evaluation.norms, torch.tensor([3.0**0.5, 12.0**0.5], dtype=torch.float64))
    evaluation.grads = torch.zeros(2, 3, dtype=torch.float64)
    assert torch.equal(evaluation.norms, torch.zeros(2, dtype=torch.float64))
    evaluation.rewards[0, 0] = -7.0
    assert torch.equal(evaluation.biggest, torch.tensor([7.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("l2_center", ["zero", "init"])
def test_evaluate_equals_autograd_of_the_whole_objective(l2_center) -> None:
    """The written-out penalty gives the objective and gradient autograd gives, bit for bit (conv model, 3 tasks)."""
    import gymnasium as gym

    import mandril_envs  # noqa: F401
    from mandril.methods.base import FitProblem
    from mandril.methods.maxent import train_batch
    from mandril.rewards.batched import stack_params
    from mandril.rewards.spec import RewardModelSpec, build_reward_model
    from mandril_envs.demos import task_demos

    env = gym.make("mandril_envs/GridWorld-v0")
    base = env.unwrapped
    problems, modules = [], []
    for i, task in enumerate(base.sample_tasks(3, "test", seed=1)):
        base.set_task(task)
        inputs = np.asarray(base.reward_input("map"))
        states, actions, _ = task_demos(env, 2, seed=i)
        problems.append(FitProblem(base.model, inputs, states, actions, i))
        modules.append(build_reward_model(RewardModelSpec("conv", hidden=(8, 8)), inputs, base.model.state_dim, i, torch.float64, None))
    batch = train_batch(problems, torch.float64)
    params = stack_params(modules)
    flat = _Flat(params)
    x = flat.flatten(params)
    settings = FitSettings(l2=0.1, l2_center=l2_center)
    run = _Run(modules[0], flat, batch, settings, "start", 1.0, ["a", "b", "c"], "test", x)
    point = x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = run.evaluate(point)

    leaf = point.detach().requires_grad_(True)
    rewards = batched_rewards(modules[0], flat.unflatten(leaf), batch.inputs)
    nll = maxent_nll(batch.likelihood_tasks("train", "start"), rewards, batch.train_visitation) / batch.tasks.horizon
    objective = nll + 0.5 * settings.l2 * ((leaf - run.center) ** 2).sum(1)
    (grads,) = torch.autograd.grad(objective.sum(), [leaf])
    assert torch.equal(got.values, objective.detach()) and torch.equal(got.grads, grads) and torch.equal(got.rewards, rewards.detach())


def test_sampling_a_successor_equals_the_row_by_row_draw() -> None:
    import gymnasium as gym

    import mandril_envs  # noqa: F401

    model = gym.make("mandril_envs/TabularMDP-v0").unwrapped.model
    n_states, n_actions, _ = model.successor_probs.shape
    for s in range(n_states):
        for a in range(n_actions):
            for seed in range(3):
                probs = model.successor_probs[s, a]
                u = np.random.default_rng(seed).random()
                k = min(int(np.searchsorted(np.cumsum(probs), u * probs.sum(), side="right")), probs.shape[0] - 1)
                assert model.sample_next_state(s, a, np.random.default_rng(seed)) == int(model.successor_indices[s, a, k])


@pytest.mark.parametrize("time_feature", ["none", "onehot", "fraction"])
def test_one_observation_equals_the_array_path(time_feature) -> None:
    from mandril.methods.imitation.adapters import Observations

    observations = Observations(6, 4, time_feature)
    for s in range(6):
        for t in range(5):
            one = observations.encode(s, t)
            assert one.dtype == np.float32 and one.flags.writeable
            assert np.array_equal(one, observations.encode(np.asarray([s]), np.asarray([t]))[0])
    with pytest.raises(ValueError, match="states must lie in"):
        observations.encode(6, 0)
    with pytest.raises(ValueError, match="time steps must lie in"):
        observations.encode(0, 5)


def test_a_units_shared_draws_equal_its_own_draws() -> None:
    """unit_problems draws each held-out task's demos once per process for the most demos the family shows and
    slices them per unit: every unit's problems and truths equal a fresh draw of its own n, task by task, and a
    unit's arrays are its own (changing them leaves the next unit's untouched)."""
    from pathlib import Path

    import gymnasium as gym

    from mandril.bench.cells import units_of
    from mandril.bench.suite import load_suite
    from mandril.bench.work import unit_problems
    from mandril.eval import shown_and_heldout_demos
    from mandril.methods import hide_reward

    suite = load_suite(Path(__file__).resolve().parents[2] / "benchmarks" / "suites" / "smoke.toml")
    units = [u for u in units_of(suite) if u.method in ("maxent_linear", "bayes", "expert")]
    assert {u.n_demos for u in units} == set(suite.n_demos) and len({u.family for u in units}) == len(suite.families)
    for unit in units:
        method = suite.make_method(unit.method, unit.family, unit.seed, unit.n_demos)
        problems, truths = unit_problems(suite, unit, method)
        spec = suite.families[unit.family]
        env = gym.make(spec.env_id, **spec.env_kwargs)
        base = env.unwrapped
        tasks = base.sample_tasks(unit.n_tasks, unit.split, seed=spec.task_seed)
        assert [t[0] for t in truths] == [task.index for task in tasks]
        for task, problem, (_, model, demos, goal) in zip(tasks, problems, truths):
            base.set_task(task)
            fresh = shown_and_heldout_demos(env, unit.n_demos, unit.seed, spec.expert.settings())
            for name in ("states", "actions", "heldout_states", "heldout_actions"):
                assert np.array_equal(getattr(demos, name), getattr(fresh, name))
            assert np.array_equal(problem.states, fresh.states) and np.array_equal(problem.actions, fresh.actions)
            assert np.array_equal(problem.inputs, base.reward_input(method.input_kind)) and goal == base.goal_state
            expected = base.model if method.reads_true_reward else hide_reward(base.model)
            assert np.array_equal(problem.model.reward_matrix, expected.reward_matrix)
            assert np.array_equal(model.transition_matrix, base.model.transition_matrix) and np.array_equal(model.reward_matrix, base.model.reward_matrix)
            assert (problem.prior is None) == (not method.reads_reward_prior)
        first_states, first_inputs = problems[0].states.copy(), problems[0].inputs.copy()
        problems[0].states[...] = 0
        problems[0].inputs[...] = 0
        again, _ = unit_problems(suite, unit, method)
        assert np.array_equal(again[0].states, first_states) and np.array_equal(again[0].inputs, first_inputs)
