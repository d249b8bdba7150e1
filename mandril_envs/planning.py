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


def _check_policy(model: TabularModel, policy: np.ndarray) -> np.ndarray:
    policy = np.asarray(policy, dtype=np.float64)
    expected = (model.horizon, model.state_dim, model.action_dim)
    if policy.shape != expected:
        raise ValueError(f"policy shape {policy.shape} must be (H, S, A) = {expected}")
    if policy.min() < 0 or np.abs(policy.sum(axis=2) - 1).max() > 1e-8:
        raise ValueError("policy rows pi[t, s, :] must be probability distributions")
    return policy


def state_action_visitation(model: TabularModel, policy: np.ndarray) -> np.ndarray:
    """``(H, S, A)``: ``P(s_t = s, a_t = a)`` under ``policy`` from ``initial_state_dist``."""
    policy = _check_policy(model, policy)
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
    policy = _check_policy(model, policy)
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
