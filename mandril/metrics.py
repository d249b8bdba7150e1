"""Scores of a learned reward against a task's true model (numpy; one planner: mandril_envs.planning).

Every method is scored the same way: its learned reward table goes through the same planner as
the truth.

* ``evd``: expected value difference ``V*(p0) - V^{pi_learned}(p0)``, both under the true reward,
  where ``pi_learned`` is optimal (value iteration, ties to the lowest action) for the learned
  reward. 0 is perfect; it is never negative.
* ``normalized_evd``: ``evd / (V* - V^{uniform})``: 0 perfect, 1 as bad as acting uniformly at
  random (can exceed 1 when the learned reward is worse than no information).
* ``demo_nll``: mean negative log-likelihood per step of held-out demos under the soft-optimal
  policy (temperature 1) for the learned reward.
* ``success`` (GridWorld): probability that ``pi_learned`` is on the goal cell at the last step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

from mandril_envs.model import TabularModel
from mandril_envs.planning import expected_return, soft_value_iteration, state_visitation, value_iteration

__all__ = ["Scores", "expected_value_difference", "score", "demo_nll"]


@dataclass(frozen=True)
class Scores:
    """The scores of one learned reward on one task (see the module docstring)."""

    evd: float
    normalized_evd: float
    optimal_return: float
    learned_return: float
    random_return: float
    demo_nll: Optional[float] = None
    success: Optional[float] = None

    def as_dict(self) -> dict:
        """Plain dict (for CSV/JSON records)."""
        return asdict(self)


def _check_learned(model: TabularModel, learned_reward: np.ndarray) -> np.ndarray:
    learned = np.asarray(learned_reward, dtype=np.float64)
    if learned.shape not in ((model.state_dim,), (model.state_dim, model.action_dim)):
        raise ValueError(f"learned reward shape {learned.shape} must be (S,) = ({model.state_dim},) or (S, A) = {(model.state_dim, model.action_dim)}")
    if not np.all(np.isfinite(learned)):
        raise ValueError("learned reward must be finite, got NaN or inf entries")
    return learned


def expected_value_difference(model: TabularModel, learned_reward: np.ndarray) -> float:
    """``V*(p0) - V^{pi}(p0)`` under the true reward, ``pi`` optimal for ``learned_reward``."""
    return score(model, learned_reward).evd


def demo_nll(model: TabularModel, learned_reward: np.ndarray, states: np.ndarray, actions: np.ndarray) -> float:
    """Mean NLL per step of demos ``states (M, H+1)``, ``actions (M, H)`` under the soft policy for ``learned_reward``."""
    learned = _check_learned(model, learned_reward)
    policy = soft_value_iteration(model, learned).policy
    states, actions = np.asarray(states), np.asarray(actions)
    if states.ndim != 2 or actions.shape != (states.shape[0], model.horizon) or states.shape[1] != model.horizon + 1:
        raise ValueError(f"demos must be states (M, H+1) and actions (M, H) with H = {model.horizon}, got {states.shape} and {actions.shape}")
    steps = np.arange(model.horizon)
    probabilities = policy[steps[None, :], states[:, :-1], actions]
    return float(-np.log(np.maximum(probabilities, 1e-300)).mean())


def score(
    model: TabularModel,
    learned_reward: np.ndarray,
    demo_states: Optional[np.ndarray] = None,
    demo_actions: Optional[np.ndarray] = None,
    goal_state: Optional[int] = None,
) -> Scores:
    """All scores of ``learned_reward`` (``(S,)`` or ``(S, A)``) on the task ``model``."""
    learned = _check_learned(model, learned_reward)
    optimal = float(model.initial_state_dist @ value_iteration(model).values[0])
    learned_policy = value_iteration(model, learned).policy
    learned_return = expected_return(model, learned_policy)
    uniform = np.full((model.horizon, model.state_dim, model.action_dim), 1.0 / model.action_dim)
    random_return = expected_return(model, uniform)
    evd = max(0.0, optimal - learned_return)
    gap = optimal - random_return
    normalized = evd / gap if gap > 1e-12 else 0.0
    nll = None
    if demo_states is not None and demo_actions is not None:
        nll = demo_nll(model, learned, demo_states, demo_actions)
    success = None
    if goal_state is not None:
        success = float(state_visitation(model, learned_policy)[-1, goal_state])
    return Scores(evd, normalized, optimal, learned_return, random_return, nll, success)


def summarize(values: Sequence[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean, IQM and a percentile-bootstrap confidence interval of the mean (explicit seed)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("summarize needs at least one value")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (n_boot, x.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    ordered = np.sort(x)
    quarter = x.size // 4
    iqm = float(ordered[quarter : x.size - quarter].mean()) if x.size >= 4 else float(x.mean())
    return {"mean": float(x.mean()), "ci_low": float(low), "ci_high": float(high), "iqm": iqm, "n": int(x.size)}
