"""Scores of what a method learned, against a task's true model (numpy; one planner: mandril_envs.planning).

Every method is scored the same way. What it returns is either a reward table or a policy:

* a reward ``(S,)`` or ``(S, A)`` goes through the same planner as the truth: ``pi_learned`` is
  optimal for it (value iteration, ties to the lowest action);
* a policy ``(H, S, A)`` (behavioural cloning, GAIL's generator) is used as it is.

Then, under the true reward and from the true ``initial_state_dist``:

* ``evd``: expected value difference ``V* - V^{pi_learned}``. 0 is perfect; never negative.
* ``normalized_evd``: ``evd / (V* - V^{uniform})``: 0 as good as the expert's optimum, 1 as bad as
  acting uniformly at random (can exceed 1 when the result is worse than no information). A task
  where ``V* = V^{uniform}`` (a hidden or constant reward) is refused with a ``ValueError``.
* ``demo_nll``: mean negative log-likelihood per step of held-out demos (not shown to the method)
  under the soft-optimal policy (temperature 1) of the learned reward, or under the learned policy.
* ``success`` (families with a goal, e.g. GridWorld): probability that ``pi_learned`` is on the goal
  cell at the last step.

A :class:`mandril.methods.MethodOutput` holding both a reward and a policy is scored by its reward;
the policy's EVD is added as ``policy_evd`` / ``policy_normalized_evd``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional, Union

import numpy as np

from mandril_envs.model import TabularModel
from mandril_envs.planning import check_return_gap, expected_return, soft_value_iteration, state_visitation, value_iteration

__all__ = ["Scores", "score", "expected_value_difference", "demo_nll", "check_reward_table", "check_policy_table"]


@dataclass(frozen=True)
class Scores:
    """The scores of one learned reward or policy on one task (see the module docstring)."""

    evd: float
    normalized_evd: float
    optimal_return: float
    learned_return: float
    random_return: float
    demo_nll: Optional[float] = None
    success: Optional[float] = None
    policy_evd: Optional[float] = None
    policy_normalized_evd: Optional[float] = None

    def as_dict(self) -> dict:
        """Plain dict (for records)."""
        return asdict(self)


def check_reward_table(model: TabularModel, reward: Any) -> np.ndarray:
    """``reward`` as float64 ``(S,)`` or ``(S, A)``, finite; else a ValueError naming the shapes."""
    learned = np.asarray(reward, dtype=np.float64)
    if learned.shape not in ((model.state_dim,), (model.state_dim, model.action_dim)):
        raise ValueError(f"learned reward shape {learned.shape} must be (S,) = ({model.state_dim},) or (S, A) = {(model.state_dim, model.action_dim)}")
    if not np.all(np.isfinite(learned)):
        raise ValueError("learned reward must be finite, got NaN or inf entries")
    return learned


def check_policy_table(model: TabularModel, policy: Any) -> np.ndarray:
    """``policy`` as float64 ``(H, S, A)``; rows must be distributions (float32 rounding is renormalised)."""
    table = np.asarray(policy, dtype=np.float64)
    expected = (model.horizon, model.state_dim, model.action_dim)
    if table.shape != expected:
        raise ValueError(f"learned policy shape {table.shape} must be (H, S, A) = {expected}")
    if not np.all(np.isfinite(table)) or table.min() < 0:
        raise ValueError("learned policy must be finite and non-negative")
    sums = table.sum(axis=2, keepdims=True)
    worst = float(np.abs(sums - 1.0).max())
    if worst > 1e-5:
        t, s, _ = np.unravel_index(int(np.abs(sums - 1.0).argmax()), sums.shape)
        raise ValueError(f"learned policy rows must sum to 1: row (t={t}, s={s}) is off by {worst:.3g} (tolerance 1e-5)")
    return table / sums


def _split_output(output: Any) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """``(reward, policy)`` of a MethodOutput or an array (3-D: a policy; 1-D/2-D: a reward)."""
    if hasattr(output, "reward") and hasattr(output, "policy"):
        return output.reward, output.policy
    array = np.asarray(output)
    return (None, array) if array.ndim == 3 else (array, None)


def _policy_nll(model: TabularModel, policy: np.ndarray, states: np.ndarray, actions: np.ndarray) -> float:
    states, actions = np.asarray(states), np.asarray(actions)
    if states.ndim != 2 or actions.shape != (states.shape[0], model.horizon) or states.shape[1] != model.horizon + 1:
        raise ValueError(f"demos must be states (M, H+1) and actions (M, H) with H = {model.horizon}, got {states.shape} and {actions.shape}")
    steps = np.arange(model.horizon)
    probabilities = policy[steps[None, :], states[:, :-1], actions]
    return float(-np.log(np.maximum(probabilities, 1e-300)).mean())


def demo_nll(model: TabularModel, learned: Any, states: np.ndarray, actions: np.ndarray) -> float:
    """Mean NLL per step of demos ``states (M, H+1)``, ``actions (M, H)`` under the soft policy of a
    learned reward, or under a learned policy ``(H, S, A)``."""
    reward, policy = _split_output(learned)
    if reward is not None:
        policy = soft_value_iteration(model, check_reward_table(model, reward)).policy
    return _policy_nll(model, check_policy_table(model, policy), states, actions)


def _returns(model: TabularModel) -> tuple[float, float]:
    optimal = float(model.initial_state_dist @ value_iteration(model).values[0])
    uniform = np.full((model.horizon, model.state_dim, model.action_dim), 1.0 / model.action_dim)
    return optimal, expected_return(model, uniform)


def score(
    model: TabularModel,
    learned: Any,
    demo_states: Optional[np.ndarray] = None,
    demo_actions: Optional[np.ndarray] = None,
    goal_state: Optional[int] = None,
) -> Scores:
    """All scores of ``learned`` on the task ``model``.

    Args:
        model: the task's true model.
        learned: a reward ``(S,)``/``(S, A)``, a policy ``(H, S, A)``, or a ``MethodOutput``.
        demo_states, demo_actions: held-out demos ``(M, H+1)``, ``(M, H)`` for ``demo_nll``.
        goal_state: the goal state for ``success`` (``env.unwrapped.goal_state``).
    """
    reward, policy = _split_output(learned)
    if reward is None and policy is None:
        raise ValueError("nothing to score: the output holds neither a reward nor a policy")
    optimal, random_return = _returns(model)
    gap = check_return_gap(optimal, random_return)

    def evd_of(acting: np.ndarray) -> tuple[float, float, float]:
        learned_return = expected_return(model, acting)
        evd = max(0.0, optimal - learned_return)
        return evd, evd / gap, learned_return

    policy_table = None if policy is None else check_policy_table(model, policy)
    if reward is not None:
        acting = value_iteration(model, check_reward_table(model, reward)).policy
    else:
        acting = policy_table
    evd, normalized, learned_return = evd_of(acting)
    extra: dict[str, Optional[float]] = {"policy_evd": None, "policy_normalized_evd": None}
    if reward is not None and policy_table is not None:
        extra["policy_evd"], extra["policy_normalized_evd"], _ = evd_of(policy_table)
    nll = None
    if demo_states is not None and demo_actions is not None:
        nll = demo_nll(model, learned, demo_states, demo_actions)
    success = None if goal_state is None else float(state_visitation(model, acting)[-1, goal_state])
    return Scores(evd, normalized, optimal, learned_return, random_return, nll, success, **extra)


def expected_value_difference(model: TabularModel, learned: Union[np.ndarray, Any]) -> float:
    """``V*(p0) - V^{pi}(p0)`` under the true reward, ``pi`` optimal for a learned reward (or the learned policy)."""
    return score(model, learned).evd
