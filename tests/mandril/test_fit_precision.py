"""The fitter's stopping statuses (issue 20, item 1): converged to tolerance, converged to the precision
of the arithmetic (a line search that makes no progress stops instead of running to the cap), and the cap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mandril import methods
from mandril.data import make_batch
from mandril.methods import FitSettings, fit_rewards
from mandril.methods import fitting
from mandril.methods.fitting import PRECISION_STEPS, STATUSES, TaskFit
from mandril.rewards import TabularReward

from test_maxent import grid_problems, precision_floor


def batch_of(pairs):
    return make_batch([p.model for _, p in pairs], [p.inputs for _, p in pairs], [(p.states, p.actions) for _, p in pairs])


def test_each_status_is_reported_with_its_gradient_norm():
    pairs = grid_problems(1, 3)
    (model, problem), = pairs
    fit = lambda **kw: methods.make("maxent_tabular", l2=0.05, **kw).fit(problem.model, problem.inputs, problem.states, problem.actions).info
    converged, capped, precise = fit(grad_tol=1e-5), fit(grad_tol=1e-5, max_steps=2), fit(grad_tol=0.0, max_steps=500)
    assert converged["status"] == "converged" and converged["converged"] and converged["grad_norm"] <= 1e-5
    assert capped["status"] == "max_steps" and not capped["converged"] and capped["steps"] == 2 and capped["grad_norm"] > 1e-5
    assert precise["status"] == "precision" and not precise["converged"] and precise["steps"] < 60
    assert 0 < precise["grad_norm"] <= precision_floor(model.horizon, 0.05, precise["loss"])
    assert STATUSES == ("converged", "precision", "max_steps")
    with pytest.raises(ValueError, match=r"status must be one of \['converged', 'precision', 'max_steps'\], got 'done'"):
        TaskFit(np.zeros(3), {}, 1, "done", 0.0, 0.0)


def test_adam_never_claims_precision():
    """Adam's objective is not monotone: no line search, no precision rule; grad_tol 0 runs to the cap."""
    (model, problem), = grid_problems(1, 2)
    info = methods.make("maxent_tabular", optimizer="adam", lr=0.2, grad_tol=0.0, max_steps=20).fit(problem.model, problem.inputs, problem.states, problem.actions).info
    assert info["status"] == "max_steps" and info["steps"] == 20


class _FrozenValue(nn.Module):
    """A reward whose value is always zero but whose gradient is that of a table: the objective never
    moves, whatever the step, while its gradient stays large (a line search that can make no progress)."""

    def __init__(self, n_states: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(n_states, dtype=torch.float64))

    def forward(self, features: Tensor) -> Tensor:
        return (self.table - self.table.detach()).expand(*features.shape[:-2], -1)


def test_a_line_search_without_progress_stops_at_once_and_says_so():
    """Before the rule this ran all 300 steps (each a full backtracking line search): now it stops after
    PRECISION_STEPS steps that leave J unchanged, reporting the gradient norm, which shows it is no optimum."""
    pairs = grid_problems(2, 3)
    model = pairs[0][0]
    start = {"table": torch.zeros(2, model.state_dim, dtype=torch.float64)}
    fits = fit_rewards(_FrozenValue(model.state_dim), start, batch_of(pairs), FitSettings(l2=0.0, grad_tol=1e-5, max_steps=300))
    for fit in fits:
        assert fit.status == "precision" and 1 <= fit.steps <= PRECISION_STEPS, (fit.status, fit.steps)
        assert fit.grad_norm > 1e-3


@pytest.mark.parametrize("likelihood", ["start", "p0"])
def test_fits_to_precision_batched_with_other_tasks_and_alone(likelihood):
    """Six tasks fitted to precision together and each alone: every fit stops as converged to precision,
    below its floor, and the two fits of a task agree within the strong-convexity bound. (Not in the same
    step: the batched kernel rounds the last bits differently, and at precision the last bits decide.)"""
    pairs = grid_problems(3, 3) + grid_problems(3, 1, split="train")
    model = pairs[0][0]
    l2 = 0.05
    starts = torch.cat([torch.randn(1, model.state_dim, generator=torch.Generator().manual_seed(k), dtype=torch.float64) for k in range(6)])
    settings = FitSettings(l2=l2, grad_tol=0.0, max_steps=500)
    together = fit_rewards(TabularReward(model.state_dim), {"table": starts}, batch_of(pairs), settings, likelihood=likelihood)
    for b, joint in enumerate(together):
        alone = fit_rewards(TabularReward(model.state_dim), {"table": starts[b : b + 1]}, batch_of(pairs[b : b + 1]), settings, likelihood=likelihood)[0]
        for fit in (joint, alone):
            assert fit.status == "precision" and fit.steps < 60
            assert fit.grad_norm <= precision_floor(model.horizon, l2, fit.loss)
        assert np.linalg.norm(joint.reward - alone.reward) <= (joint.grad_norm + alone.grad_norm) / l2 + 1e-12


def test_fits_that_converge_to_tolerance_never_come_near_the_rule(monkeypatch):
    """At the default grad_tol (1e-5) every accepted L-BFGS step decreases J by more than 1e4 times the
    rule's threshold (PRECISION_EPS eps |J|), so the rule cannot change such a fit: same steps, same bits."""
    decreases = []
    line_search = fitting._Run._line_search

    def traced(self, evaluation, direction, slope, steps):
        x_new, new, stalled = line_search(self, evaluation, direction, slope, steps)
        decreases.extend(((evaluation.values - new.values) / evaluation.values.abs()).tolist())
        return x_new, new, stalled

    monkeypatch.setattr(fitting._Run, "_line_search", traced)
    pairs = grid_problems(4, 2)
    for likelihood in ("start", "p0"):
        for name in ("maxent_tabular", "maxent_linear"):
            fits = methods.make(name, likelihood=likelihood).fit_batch([p for _, p in pairs])
            assert [f.info["status"] for f in fits] == ["converged"] * 4
    assert len(decreases) > 40 and min(decreases) > 1e4 * fitting.PRECISION_EPS * torch.finfo(torch.float64).eps, min(decreases)
