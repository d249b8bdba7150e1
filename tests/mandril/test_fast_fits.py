"""Issue 21 item 1 (faster cells, same numbers): the fitter's faster paths equal the plain ones bit for bit.

* A backtracking trial of the L-BFGS line search evaluates only the tasks still searching: a task's
  objective, gradient and rewards must not depend on which other tasks share the kernel call.
* The line search as written now equals the line search that evaluates every task at every trial.
* The backup's exp-space step is decided task by task: no task changes another's numbers, so a conv task
  fitted in its unit is the task fitted alone, bit for bit.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytest
import torch

from mandril.methods.fitting import _ARMIJO, _MAX_BACKTRACKS, FitSettings, QuadraticPenalty, _Evaluation, _Flat, _Run, fit_rewards


def _problems(env_id: str, input_kind: str, n_tasks: int, n_demos: int, seed: int = 1):
    import gymnasium as gym

    import mandril_envs  # noqa: F401
    from mandril.methods.base import FitProblem
    from mandril_envs.demos import task_demos

    env = gym.make(env_id)
    base = env.unwrapped
    problems = []
    for i, task in enumerate(base.sample_tasks(n_tasks, "test", seed=seed)):
        base.set_task(task)
        states, actions, _ = task_demos(env, n_demos, seed=i)
        problems.append(FitProblem(base.model, np.asarray(base.reward_input(input_kind)), states, actions, i))
    return problems


def _setup(kind: str, n_tasks: int = 4, n_demos: int = 2):
    """``(module, init (B, ...), batch)`` of ``n_tasks`` tasks: a conv net on GridWorld maps, a state-action
    table on random MDPs, or a linear reward on random MDPs' features."""
    from mandril.methods.maxent import train_batch
    from mandril.rewards.batched import stack_params
    from mandril.rewards.spec import RewardModelSpec, build_reward_model

    if kind == "conv":
        problems = _problems("mandril_envs/GridWorld-v0", "map", n_tasks, n_demos)
        spec, n_actions = RewardModelSpec("conv", hidden=(8, 8)), None
    elif kind == "conv_rgb_sa":
        problems = _problems("mandril_envs/GridWorld-v0", "rgb", n_tasks, n_demos)
        spec, n_actions = RewardModelSpec("conv", hidden=(4,)), problems[0].model.action_dim
    elif kind == "grid_tabular_sa":
        problems = _problems("mandril_envs/GridWorld-Intent-v0", "features", n_tasks, n_demos)
        spec, n_actions = RewardModelSpec("tabular"), problems[0].model.action_dim
    elif kind == "grid_linear":
        problems = _problems("mandril_envs/GridWorld-v0", "features", n_tasks, n_demos)
        spec, n_actions = RewardModelSpec("linear"), None
    elif kind == "tabular_sa":
        problems = _problems("mandril_envs/TabularMDP-v0", "features", n_tasks, n_demos)
        spec, n_actions = RewardModelSpec("tabular"), problems[0].model.action_dim
    else:
        problems = _problems("mandril_envs/TabularMDP-Linear-v0", "features", n_tasks, n_demos)
        spec, n_actions = RewardModelSpec("linear"), None
    modules = [build_reward_model(spec, p.inputs, p.model.state_dim, p.seed, torch.float64, n_actions) for p in problems]
    batch = train_batch(problems, torch.float64, state_action=n_actions is not None)
    return modules[0], stack_params(modules), batch


@pytest.mark.parametrize("kind, l2_center", [("conv", "zero"), ("conv", "init"), ("conv_rgb_sa", "zero"), ("grid_tabular_sa", "zero")])
@pytest.mark.parametrize("rows", [[2], [0, 3], [1, 2, 3]])
def test_a_sub_batch_gives_each_task_the_numbers_of_the_whole_batch(kind, l2_center, rows) -> None:
    """On the sparse layout (the GridWorld families) without a penalty: what the line search relies on."""
    module, init, batch = _setup(kind)
    assert batch.tasks.layout == "sparse"
    flat = _Flat(init)
    x = flat.flatten(init)
    n_tasks = x.shape[0]
    run = _Run(module, flat, batch, FitSettings(l2=0.1, l2_center=l2_center), "start", 1.0, [str(b) for b in range(n_tasks)], "test", x)
    point = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    whole = run.evaluate(point)
    index = torch.as_tensor(rows)
    part = run.evaluate(point[index], index)
    assert torch.equal(part.values, whole.values[index])
    assert torch.equal(part.grads, whole.grads[index])
    assert torch.equal(part.rewards, whole.rewards[index])
    assert run._exact_sub_batches()


def test_sub_batches_are_not_used_where_they_would_round_differently() -> None:
    """The dense layout's bmm, vmap's linear layers and a penalty's einsum round one task differently from a batch."""
    module, init, batch = _setup("tabular_sa")
    flat = _Flat(init)
    x = flat.flatten(init)
    assert batch.tasks.layout == "dense"
    assert not _Run(module, flat, batch, FitSettings(), "start", 1.0, ["0", "1", "2", "3"], "test", x)._exact_sub_batches()
    module, init, batch = _setup("grid_linear")
    flat = _Flat(init)
    x = flat.flatten(init)
    assert batch.tasks.layout == "sparse" and not module.batch_invariant
    assert not _Run(module, flat, batch, FitSettings(), "start", 1.0, ["0", "1", "2", "3"], "test", x)._exact_sub_batches()
    module, init, batch = _setup("conv")
    flat = _Flat(init)
    x = flat.flatten(init)
    n_params = x.shape[1]
    penalty = QuadraticPenalty(torch.zeros(4, n_params, dtype=torch.float64), torch.zeros(4, n_params, n_params, dtype=torch.float64))
    assert not _Run(module, flat, batch, FitSettings(), "start", 1.0, ["0", "1", "2", "3"], "test", x, penalty)._exact_sub_batches()


class _EveryTaskEveryTrial(_Run):
    """The line search as first written: every trial evaluates every running task."""

    def _line_search(self, evaluation, direction, slope, steps):
        accepted = torch.zeros_like(slope, dtype=torch.bool)
        x_new = self.x.clone()
        new = _Evaluation(evaluation.values.clone(), evaluation.grads.clone(), evaluation.rewards.clone())
        for _ in range(_MAX_BACKTRACKS):
            trial = self.x + steps[:, None] * direction
            tried = self.evaluate(trial)
            ok = ~accepted & torch.isfinite(tried.values) & (tried.values <= evaluation.values + _ARMIJO * steps * slope)
            x_new[ok], new.values[ok], new.grads[ok], new.rewards[ok] = trial[ok], tried.values[ok], tried.grads[ok], tried.rewards[ok]
            accepted |= ok
            if bool(accepted.all()):
                break
            steps = torch.where(accepted, steps, steps * 0.5)
        return x_new, new, ~accepted


class _Counting(_Run):
    """The fitter as it is, counting the sub-batch evaluations of its backtracking trials."""

    sub_batches: list = []
    whole_batches: int = 0

    def evaluate(self, x, rows: Optional[torch.Tensor] = None):
        if rows is not None:
            type(self).sub_batches.append((len(rows), len(self.active)))
        else:
            type(self).whole_batches += 1
        return super().evaluate(x, rows)


@pytest.mark.parametrize("kind, settings", [
    ("conv", FitSettings(max_steps=25, l2=0.01)),
    ("conv", FitSettings(max_steps=20, l2=0.05, l2_center="init", lr=50.0)),
    ("grid_tabular_sa", FitSettings(max_steps=60, l2=0.01, lr=30.0)),
    ("grid_linear", FitSettings(max_steps=40, l2=0.01, lr=30.0)),
    ("tabular_sa", FitSettings(max_steps=60, l2=0.01, lr=30.0)),
    ("linear", FitSettings(max_steps=40, l2=0.0, lr=30.0)),
])
def test_the_line_search_equals_the_one_that_evaluates_every_task_at_every_trial(kind, settings, monkeypatch) -> None:
    import mandril.methods.fitting as fitting

    module, init, batch = _setup(kind, n_tasks=5, n_demos=3)
    penalty = None
    if kind == "linear":  # a MAP fit: with a quadratic penalty every trial evaluates every task (its einsum rounds by batch size)
        n_params = sum(v[0].numel() for v in init.values())
        a = torch.randn(n_params, n_params, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        penalty = QuadraticPenalty(torch.zeros(n_params, dtype=torch.float64), 0.01 * a @ a.T)
    fits = {}
    _Counting.sub_batches = []
    for name, runner in (("reference", _EveryTaskEveryTrial), ("now", _Counting)):
        monkeypatch.setattr(fitting, "_Run", runner)
        fits[name] = fit_rewards(module, init, batch, settings, penalty=penalty)
    if kind in ("conv", "grid_tabular_sa"):
        assert any(size < running for size, running in _Counting.sub_batches), "no partial backtracking: the test does not exercise the sub-batches"
    else:
        assert not _Counting.sub_batches
    for a, b in zip(fits["reference"], fits["now"]):
        assert np.array_equal(a.reward, b.reward)
        assert (a.steps, a.status, a.grad_norm, a.loss) == (b.steps, b.status, b.grad_norm, b.loss)
        assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)


def test_a_task_with_a_wide_value_spread_changes_no_other_task_of_the_plan(monkeypatch) -> None:
    """The backup decides task by task whether its exp-space step is exact: a task whose values spread far
    beyond the exp range takes the general step alone, and every other task's numbers are those it gets
    without it, bit for bit (they used to round differently: the batch-wide decision)."""
    import mandril.planning.kernels as kernels
    from mandril.planning import log_partition

    _, _, batch = _setup("conv", n_tasks=3)
    tasks = batch.likelihood_tasks("train", "start")
    assert tasks.deterministic and tasks.layout == "sparse"
    g = torch.Generator().manual_seed(5)
    rewards = torch.rand(3, tasks.n_states, generator=g, dtype=torch.float64)
    rewards[0] *= 400.0  # a spread of ~400 per step: over the horizon, far beyond the exp range
    steps = []
    original = kernels._deterministic_soft_max
    monkeypatch.setattr(kernels, "_deterministic_soft_max", lambda *a: steps.append(original(*a)) or steps[-1])

    def plan(rows, tau=1.0):  # log Z and the visitation mu (its gradient), of the tasks at rows, without autograd
        chosen = tasks.select(rows)
        with torch.no_grad():
            value = log_partition(chosen, rewards[rows], tau)
        leaf = rewards[rows].clone().requires_grad_(True)
        (mu,) = torch.autograd.grad(log_partition(chosen, leaf, tau).sum(), [leaf])
        return torch.cat([value[:, None], mu], 1)

    for tau in (1.0, 0.5):
        steps.clear()
        together, apart = plan([0, 1, 2], tau), plan([1, 2], tau)
        assert torch.equal(together[1:], apart)
        for i in range(3):
            assert torch.equal(plan([i], tau)[0], together[i])
        # the mixed calls took the exp-space step (task 0 alone is out of range at some steps: no exp space there)
        assert any(step is not None for step in steps) and any(step is None for step in steps)
    # the general step of the wide task equals the general step forced on every task
    wide_alone = plan([0])[:, 0]
    monkeypatch.setattr(kernels, "_deterministic_soft_max", lambda *a: None)
    with torch.no_grad():
        assert torch.equal(log_partition(tasks.select([0]), rewards[[0]]), wide_alone)


def test_a_conv_task_fitted_in_its_unit_is_the_task_fitted_alone() -> None:
    """A cell's value is a function of its task alone: each conv task of a unit, fitted in the batch, equals
    the same task fitted on its own, bit for bit, even with a task whose values spread wide in the batch."""
    module, init, batch = _setup("conv", n_tasks=4, n_demos=3)
    init = {k: v.clone() for k, v in init.items()}
    init["net.4.weight"][0] *= 300.0  # task 0 starts far out (a spread of ~100 per step)
    init["net.4.bias"][0] += 1.0
    settings = FitSettings(max_steps=25, l2=0.01)
    together = fit_rewards(module, init, batch, settings)
    for i in range(4):
        (alone,) = fit_rewards(module, {k: v[i : i + 1] for k, v in init.items()}, batch.select([i]), settings)
        assert np.array_equal(alone.reward, together[i].reward), i
        assert (alone.steps, alone.status, alone.loss) == (together[i].steps, together[i].status, together[i].loss)
