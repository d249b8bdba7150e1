"""The MaxEnt IRL loss and the empirical visitation of demonstrations.

``L(r; D) = -(1/|D|) sum_tau sum_{t<H} r(s_t[, a_t]) + log Z(r)``, ``log Z = sum_s p0(s) V[0, s]``
(time convention of :mod:`mandril.planning.kernels`: ``H`` rewarded steps, ``s_H`` is not paid).
With the demos' empirical visitation ``mu_D`` the first term is ``-<mu_D, r>``, so
``dL/dr = E[mu] - mu_D`` exactly. At temperature ``tau`` the loss is ``(log Z_tau - <mu_D, r>) / tau``,
the negative log-likelihood of the demos' actions under the ``tau``-soft policy when the
dynamics are deterministic.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from mandril.planning.batch import TaskBatch
from mandril.planning.kernels import check_reward, check_temperature, log_partition
from mandril_envs.model import TabularModel

__all__ = ["maxent_nll", "empirical_visitation"]


def _as_int_array(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise TypeError(f"{name} must hold integer indices, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def empirical_visitation(
    model: TabularModel,
    demos: Sequence[Any],
    state_action: bool = False,
    check_dynamics: bool = True,
) -> np.ndarray:
    """``mu_D``: the demos' mean visitation counts over the ``H`` rewarded steps.

    Args:
        model: the task the demos were recorded in.
        demos: trajectories with ``states (H+1,)`` (``s_0 .. s_H``) and ``actions (H,)``, e.g.
            :class:`mandril_envs.demos.Trajectory`. ``s_H`` is checked but not counted.
        state_action: count ``(s_t, a_t)`` pairs instead of states.
        check_dynamics: also check that each ``s_{t+1}`` is a possible successor of ``(s_t, a_t)``
            (catches demos recorded in another task).

    Returns:
        float64 ``(S,)``, or ``(S, A)`` if ``state_action``; it sums to ``H``.

    Raises:
        ValueError: for an empty demo set, a trajectory of another horizon, states or actions out
            of range, or (with ``check_dynamics``) an impossible transition; the message names the
            trajectory and the step.
        TypeError: for a model that is not a TabularModel or non-integer states/actions.
    """
    if not isinstance(model, TabularModel):
        raise TypeError(f"model must be a mandril_envs TabularModel, got {type(model).__name__}")
    if isinstance(demos, (str, bytes)) or not hasattr(demos, "__len__"):
        raise TypeError(f"demos must be a sequence of trajectories, got {type(demos).__name__}")
    if len(demos) == 0:
        raise ValueError("demos is empty: the empirical visitation needs at least one trajectory")
    horizon, n_states, n_actions = model.horizon, model.state_dim, model.action_dim
    all_states = np.empty((len(demos), horizon + 1), np.int64)
    all_actions = np.empty((len(demos), horizon), np.int64)
    for i, demo in enumerate(demos):
        if not hasattr(demo, "states") or not hasattr(demo, "actions"):
            raise TypeError(f"demos[{i}] must have .states and .actions (a Trajectory), got {type(demo).__name__}")
        states = _as_int_array(f"demos[{i}].states", demo.states)
        actions = _as_int_array(f"demos[{i}].actions", demo.actions)
        if states.shape != (horizon + 1,) or actions.shape != (horizon,):
            raise ValueError(
                f"demos[{i}] has states of shape {states.shape} and actions of shape {actions.shape}, but the model's "
                f"horizon is H = {horizon}: want states (H+1,) = ({horizon + 1},) and actions (H,) = ({horizon},)"
            )
        all_states[i], all_actions[i] = states, actions
    for name, array, bound in (("states", all_states, n_states), ("actions", all_actions, n_actions)):
        bad = (array < 0) | (array >= bound)
        if bad.any():
            i, t = map(int, np.argwhere(bad)[0])
            raise ValueError(f"demos[{i}].{name}[{t}] = {int(array[i, t])} is out of range: allowed [0, {bound})")
    if check_dynamics:
        src, act, dst = all_states[:, :-1], all_actions, all_states[:, 1:]
        successors = model.successor_indices[src, act]  # (N, H, K)
        possible = ((successors == dst[..., None]) & (model.successor_probs[src, act] > 0)).any(-1)
        if not possible.all():
            i, t = map(int, np.argwhere(~possible)[0])
            raise ValueError(
                f"demos[{i}] moves from state {int(src[i, t])} by action {int(act[i, t])} to state {int(dst[i, t])} at step {t}, "
                f"which has probability 0 in this model: were the demos recorded in another task?"
            )
    counted = all_states[:, :-1].ravel()
    if state_action:
        flat = counted * n_actions + all_actions.ravel()
        return np.bincount(flat, minlength=n_states * n_actions).reshape(n_states, n_actions) / len(demos)
    return np.bincount(counted, minlength=n_states).astype(np.float64) / len(demos)


def maxent_nll(
    batch: TaskBatch,
    reward: Tensor,
    demo_visitation: Union[Tensor, np.ndarray],
    temperature: float = 1.0,
    method: str = "analytic",
) -> Tensor:
    """``(B,)``: the MaxEnt IRL negative log-likelihood of each task's demos.

    Args:
        batch: the dynamics of ``B`` tasks.
        reward: ``(B, S)`` or ``(B, S, A)``, the batch's dtype and device.
        demo_visitation: ``mu_D`` of each task (:func:`empirical_visitation`), ``(B, S)`` or
            ``(B, S, A)``; a state-action visitation is summed over actions for state rewards.
            Each task's entries must sum to ``H``.
        temperature: ``tau > 0``.
        method: ``"analytic"`` or ``"autograd"`` (see :func:`mandril.planning.log_partition`).

    Returns:
        ``(B,)``; ``d L[b] / d reward[b] = E[mu_b] - mu_D[b]`` (divided by ``tau``), and the
        loss can be differentiated twice (MandRIL's meta-gradient).
    """
    tau = check_temperature(temperature)
    state_action = check_reward(batch, reward)
    mu_d = torch.as_tensor(demo_visitation, dtype=batch.dtype, device=batch.device)
    n_batch, n_states, n_actions = batch.batch_size, batch.n_states, batch.n_actions
    allowed = [(n_batch, n_states, n_actions)] if state_action else [(n_batch, n_states), (n_batch, n_states, n_actions)]
    if tuple(mu_d.shape) not in allowed:
        hint = " (state-action rewards need a state-action visitation)" if state_action and mu_d.shape == (n_batch, n_states) else ""
        raise ValueError(f"demo_visitation shape {tuple(mu_d.shape)} must be one of {allowed} for reward shape {tuple(reward.shape)}{hint}")
    if not bool(torch.isfinite(mu_d).all()) or float(mu_d.min()) < 0:
        raise ValueError("demo_visitation must be finite and non-negative")
    totals = mu_d.reshape(n_batch, -1).sum(-1)
    tolerance = 1e-6 if batch.dtype == torch.float64 else 1e-3
    worst = int((totals - batch.horizon).abs().argmax())
    if abs(float(totals[worst]) - batch.horizon) > tolerance * batch.horizon:
        raise ValueError(
            f"demo_visitation of task {worst} sums to {float(totals[worst])}, but a visitation over H = {batch.horizon} "
            f"rewarded steps sums to H: were the demos recorded with another horizon (or counted s_H)?"
        )
    if mu_d.ndim == 3 and not state_action:
        mu_d = mu_d.sum(-1)
    demo_return = (mu_d * reward).reshape(n_batch, -1).sum(-1)
    loss = log_partition(batch, reward, tau, method) - demo_return
    return loss if tau == 1.0 else loss / tau
