"""Finite-horizon planning in numpy on the sparse successor form of a :class:`TabularModel`.

Time convention (the suite's, see :mod:`mandril_envs.model`): ``t = 0 .. H-1``; the reward of step
``t`` is ``r(s_t)`` or ``r(s_t, a_t)``; ``V[t, s]`` is the value of being in ``s`` at step ``t`` with
``H - t`` steps (rewards) to go, so ``V[H-1] = max_a r`` (or its soft version) and nothing is paid
after the last step. Visitation ``D[t, s] = P(s_t = s)`` has ``H`` rows and sums to ``H``.

imitation's ``mce_partition_fh`` uses the same backup (its ``V``, ``Q`` and ``pi`` equal ours at
temperature 1); its ``mce_occupancy_measures`` returns ``H + 1`` rows (it adds ``s_H``): its first
``H`` rows are our ``D``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from mandril_envs.model import TabularModel
from mandril_envs.sizes import check_fits, plan_nbytes
from mandril_envs.validation import check_float

__all__ = [
    "Plan",
    "expected_next_values",
    "soft_value_iteration",
    "value_iteration",
    "policy_evaluation",
    "state_visitation",
    "state_action_visitation",
    "expected_return",
    "logsumexp",
    "check_policy",
    "policy_tolerance",
    "POLICY_ATOL_PER_ACTION",
    "RELATIVE_GAP",
    "check_return_gap",
]


@dataclass(frozen=True)
class Plan:
    """The result of a finite-horizon backup.

    Attributes:
        values: ``(H, S)``, ``V[t, s]``.
        q_values: ``(H, S, A)``, ``Q[t, s, a] = r(s, a) + E[V[t+1, s']]`` (``V[H] = 0``).
        policy: ``(H, S, A)``, ``pi[t, s, a]``; rows sum to 1.
    """

    values: np.ndarray
    q_values: np.ndarray
    policy: np.ndarray


def logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """Stable ``log(sum(exp(x), axis))`` (no scipy needed)."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(x - top), axis=axis))


def expected_next_values(model: TabularModel, next_values: np.ndarray) -> np.ndarray:
    """``(S, A)``: ``E[next_values[s'] | s, a]`` by the successor form (``next_values`` is ``(S,)``)."""
    return np.einsum("sak,sak->sa", model.successor_probs, next_values[model.successor_indices])


def _reward_table(model: TabularModel, reward: Optional[np.ndarray]) -> np.ndarray:
    table = np.asarray(model.state_action_rewards(reward), dtype=np.float64)
    if not np.all(np.isfinite(table)):
        raise ValueError("reward must be finite, got NaN or inf entries")
    return table


def _backup(model: TabularModel, reward: Optional[np.ndarray], state_value: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(V (H, S), Q (H, S, A))`` of the finite-horizon backup with ``V[t] = state_value(Q[t])``."""
    r = _reward_table(model, reward)
    horizon, (n_states, n_actions) = model.horizon, r.shape
    check_fits(plan_nbytes(horizon, n_states, n_actions), f"a plan of horizon={horizon} (H, S, A) = ({horizon}, {n_states}, {n_actions})")
    values = np.empty((horizon, n_states))
    q_values = np.empty((horizon, n_states, n_actions))
    next_values = np.zeros(n_states)
    for t in range(horizon - 1, -1, -1):
        q = r + expected_next_values(model, next_values) if t < horizon - 1 else r.copy()
        q_values[t] = q
        next_values = values[t] = state_value(q)
    return values, q_values


def soft_value_iteration(model: TabularModel, reward: Optional[np.ndarray] = None, temperature: float = 1.0) -> Plan:
    """MaxEnt (soft) backup: ``V = tau log sum_a exp(Q / tau)``, ``pi = exp((Q - V) / tau)``.

    Args:
        model: the task's dynamics (and its reward, unless ``reward`` is given).
        reward: ``(S,)`` or ``(S, A)``; defaults to ``model.reward_matrix``.
        temperature: ``tau > 0``; ``tau = 1`` is the MaxEnt IRL expert (imitation's ``mce_partition_fh``).

    Returns:
        :class:`Plan` with ``values (H, S)``, ``q_values (H, S, A)``, stochastic ``policy (H, S, A)``.
    """
    tau = check_float("temperature", temperature, 0.0, strict_min=True)
    values, q_values = _backup(model, reward, lambda q: tau * logsumexp(q / tau, axis=1))
    policy = np.exp((q_values - values[:, :, None]) / tau)
    policy /= policy.sum(axis=2, keepdims=True)
    return Plan(values, q_values, policy)


def value_iteration(model: TabularModel, reward: Optional[np.ndarray] = None) -> Plan:
    """Optimal backup ``V = max_a Q``; the policy is deterministic (ties go to the lowest action).

    Returns:
        :class:`Plan` whose ``policy (H, S, A)`` is one-hot.
    """
    values, q_values = _backup(model, reward, lambda q: q.max(axis=1))
    best = q_values.argmax(axis=2)
    policy = np.zeros_like(q_values)
    np.put_along_axis(policy, best[:, :, None], 1.0, axis=2)
    return Plan(values, q_values, policy)


#: Per action, how far a row of a policy may sum from 1 and still be accepted (and renormalised):
#: four float32 epsilons, so a float32 softmax (SB3, imitation, torch) passes: its rows are off by
#: about one epsilon per few actions. A row of ``A`` actions may be off by ``A * POLICY_ATOL_PER_ACTION``.
POLICY_ATOL_PER_ACTION = 4.0 * float(np.finfo(np.float32).eps)
# Rows within this (per action) of summing to 1 are distributions already and are not renormalised.
_FLOAT64_ROWS = 16.0 * float(np.finfo(np.float64).eps)


def policy_tolerance(n_actions: int) -> float:
    """How far a policy row over ``n_actions`` actions may sum from 1 (``n_actions * POLICY_ATOL_PER_ACTION``)."""
    return n_actions * POLICY_ATOL_PER_ACTION


def check_policy(model: TabularModel, policy: np.ndarray, name: str = "policy") -> np.ndarray:
    """The one check of a time-indexed policy: ``(H, S, A)`` float64 rows that are distributions.

    Rows within float32 rounding of a distribution (entries ``>= -tol``, ``|sum - 1| <= tol`` with
    ``tol = policy_tolerance(A)``) are accepted: negative rounding is clipped to 0, and rows that are
    not already distributions to float64 rounding are renormalised in float64. So a float32 softmax
    from SB3 or imitation scores as it should, and a float64 planner policy is left bit for bit.

    Args:
        model: the task the policy acts in (gives ``H``, ``S``, ``A``).
        policy: ``(H, S, A)`` array-like of probabilities ``pi[t, s, a]`` (any float dtype).
        name: how to name the policy in errors.

    Returns:
        A new ``(H, S, A)`` float64 array whose rows sum to 1 (to float64 rounding).

    Raises:
        ValueError: wrong shape, non-finite entries, or a row further than the tolerance from a
            distribution; the message gives the largest deviation, where ``(t, s)``, and the tolerance.
        TypeError: not numeric.
    """
    try:
        policy = np.array(policy, dtype=np.float64)  # a copy: the caller's array is never changed
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric (H, S, A) array, got {type(policy).__name__}") from None
    expected = (model.horizon, model.state_dim, model.action_dim)
    if policy.shape != expected:
        raise ValueError(f"{name} shape {policy.shape} must be (H, S, A) = {expected}")
    if not np.all(np.isfinite(policy)):
        t, s, a = np.argwhere(~np.isfinite(policy))[0]
        raise ValueError(f"{name} must be finite, got {float(policy[t, s, a])} at (t={t}, s={s}, a={a})")
    tolerance = policy_tolerance(model.action_dim)
    t, s, a = np.unravel_index(int(policy.argmin()), policy.shape)
    if policy[t, s, a] < -tolerance:
        raise ValueError(
            f"{name} rows pi[t, s, :] must be probability distributions: entry {float(policy[t, s, a]):.3g} at "
            f"(t={t}, s={s}, a={a}) is negative (tolerance {tolerance:.3g} = {model.action_dim} actions x 4 float32 eps)"
        )
    np.maximum(policy, 0.0, out=policy)
    deviation = np.abs(policy.sum(axis=2) - 1.0)
    t, s = np.unravel_index(int(deviation.argmax()), deviation.shape)
    if deviation[t, s] > tolerance:
        raise ValueError(
            f"{name} rows pi[t, s, :] must be probability distributions: the largest deviation is "
            f"|sum - 1| = {deviation[t, s]:.3g} at (t={t}, s={s}), more than the tolerance {tolerance:.3g} "
            f"({model.action_dim} actions x 4 float32 eps)"
        )
    off = deviation > _FLOAT64_ROWS * model.action_dim  # rows that are distributions to float64 rounding stay bit-identical
    if off.any():
        policy[off] /= policy[off].sum(axis=1, keepdims=True)
    return policy


def state_action_visitation(model: TabularModel, policy: np.ndarray) -> np.ndarray:
    """``(H, S, A)``: ``P(s_t = s, a_t = a)`` under ``policy`` from ``initial_state_dist``."""
    policy = check_policy(model, policy)
    n_states = model.state_dim
    occupancy = np.empty_like(policy)
    state_dist = model.initial_state_dist.copy()
    flat_indices = model.successor_indices.ravel()
    for t in range(model.horizon):
        occupancy[t] = state_dist[:, None] * policy[t]
        if t + 1 < model.horizon:
            flow = (occupancy[t][:, :, None] * model.successor_probs).ravel()
            state_dist = np.bincount(flat_indices, weights=flow, minlength=n_states)
    return occupancy


def state_visitation(model: TabularModel, policy: np.ndarray) -> np.ndarray:
    """``(H, S)``: ``D[t, s] = P(s_t = s)``; each row sums to 1 (the whole sums to ``H``)."""
    return state_action_visitation(model, policy).sum(axis=2)


def policy_evaluation(model: TabularModel, policy: np.ndarray, reward: Optional[np.ndarray] = None) -> np.ndarray:
    """``(H, S)``: exact expected reward-to-go of ``policy`` (no entropy term)."""
    policy = check_policy(model, policy)
    r = _reward_table(model, reward)
    values = np.empty((model.horizon, model.state_dim))
    next_values = np.zeros(model.state_dim)
    for t in range(model.horizon - 1, -1, -1):
        q = r + (expected_next_values(model, next_values) if t < model.horizon - 1 else 0.0)
        next_values = values[t] = (policy[t] * q).sum(axis=1)
    return values


def expected_return(model: TabularModel, policy: np.ndarray, reward: Optional[np.ndarray] = None) -> float:
    """Exact expected undiscounted return ``E[sum_t r]`` of ``policy`` from ``initial_state_dist``."""
    occupancy = state_action_visitation(model, policy)
    return float((occupancy.sum(axis=0) * _reward_table(model, reward)).sum())


#: The smallest gap between the optimal and the uniform policy's return, relative to the returns'
#: size, that normalized EVD divides by: below it the two are equal up to float64 rounding of a
#: return summed over the horizon, and ``evd / gap`` would be rounding noise (or 0/0).
RELATIVE_GAP = 1e-9


def check_return_gap(optimal: float, uniform: float) -> float:
    """``optimal - uniform`` if normalized EVD can divide by it, else raise.

    Raises:
        ValueError: the optimal and the uniform policy's returns are equal (to ``RELATIVE_GAP`` of
            their size, or 1e-12 absolute): every policy then scores the same, and normalized EVD is
            0/0. A task whose reward is hidden (``hide_reward``) or constant is such a task.
    """
    gap = optimal - uniform
    if not gap > max(1e-12, RELATIVE_GAP * max(abs(optimal), abs(uniform))):
        raise ValueError(
            f"the task's optimal return {optimal:.6g} equals the uniform policy's {uniform:.6g} (gap {gap:.3g}): every policy is optimal, "
            "so normalized EVD (EVD / gap) is undefined; score the task with its true reward (not a hidden or constant one)"
        )
    return gap
