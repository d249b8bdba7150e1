"""Every conversion between mandril's tabular world and imitation / Stable-Baselines3, in one module.

* :class:`Observations`: how a state (and, optionally, the time step) is shown to imitation's nets:
  a one-hot ``float32`` row of the state, followed by a time feature (``"none"``; ``"onehot"`` of
  ``t`` in ``0..H``, ``H + 1`` columns; ``"fraction"``, one column ``t / H``). A state-only
  observation cannot express a time-indexed policy; the time feature lets BC and PPO policies
  depend on ``t`` as the finite-horizon expert does. Reward nets read the state columns only (so
  the learned reward stays a table over states).
* :class:`TabularModelEnv`: a Gymnasium env built from a :class:`~mandril_envs.model.TabularModel`:
  steps by the model's successor form with its own ``np_random``, exactly ``H`` steps then
  truncation (never termination), and a reward of 0 on every step: the model a method is given has
  its reward hidden, and nothing here reads a reward.
  (:mod:`~.vec_env` steps ``n`` copies of it together in numpy, for the adversarial generators.)
* :func:`demos_to_trajectories`: demos ``states (n, H+1)``, ``actions (n, H)`` -> imitation
  ``Trajectory`` objects (``terminal=False``: our episodes are truncated, not terminated) whose
  observations are those the env shows.
* :func:`reward_table`: a reward net -> ``(S,)`` or ``(S, A)`` float64 table.
* :func:`policy_table`: a policy (SB3 ``ActorCriticPolicy``, which is also what imitation's BC
  trains) -> ``(H, S, A)`` float64 table whose rows are renormalised (float32 rows are off by
  about ``1e-7``, which the planner refuses).

imitation and SB3 are imported inside the functions that need them, so importing this module is
cheap; every array handed to them is a fresh writable copy (our model arrays are read-only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mandril_envs.model import TabularModel
from mandril_envs.validation import check_choice, check_int

__all__ = [
    "TIME_FEATURES",
    "Observations",
    "TabularModelEnv",
    "demos_to_trajectories",
    "reward_table",
    "policy_table",
]

#: How the time step is appended to an observation (see :class:`Observations`).
TIME_FEATURES = ("none", "onehot", "fraction")


@dataclass(frozen=True)
class Observations:
    """The observation of state ``s`` at step ``t``: ``[onehot(s) (S,), time feature (T,)]``, float32.

    Attributes:
        n_states: ``S``.
        horizon: ``H``; observations exist for ``t = 0 .. H`` (``t = H`` is the state reached after
            the last step).
        time_feature: ``"none"`` (``T = 0``), ``"onehot"`` (``T = H + 1``, a one-hot of ``t``) or
            ``"fraction"`` (``T = 1``, ``t / H``).
    """

    n_states: int
    horizon: int
    time_feature: str = "none"

    def __post_init__(self) -> None:
        check_int("n_states", self.n_states, 1)
        check_int("horizon", self.horizon, 1)
        check_choice("time_feature", self.time_feature, TIME_FEATURES)

    @property
    def time_dim(self) -> int:
        """``T``, the number of time columns."""
        return {"none": 0, "onehot": self.horizon + 1, "fraction": 1}[self.time_feature]

    @property
    def dim(self) -> int:
        """``S + T``, the length of an observation."""
        return self.n_states + self.time_dim

    def space(self) -> spaces.Box:
        """The Gymnasium space of the observations, ``Box(0, 1, (S + T,), float32)``."""
        return spaces.Box(0.0, 1.0, (self.dim,), np.float32)

    def state_space(self) -> spaces.Box:
        """The space of the state columns alone, ``Box(0, 1, (S,), float32)`` (what reward nets read)."""
        return spaces.Box(0.0, 1.0, (self.n_states,), np.float32)

    def encode(self, states: Any, steps: Any) -> np.ndarray:
        """Observations of ``states`` at ``steps`` (broadcast together, integer arrays of any shape ``B``).

        Returns:
            ``B + (S + T,)`` float32, a new writable array.
        """
        if type(states) is int and type(steps) is int:  # one observation (every env step): the same array, without the array machinery
            if not (0 <= states < self.n_states and 0 <= steps <= self.horizon):
                return self.encode(np.asarray(states), np.asarray(steps))  # the errors below
            out = np.zeros(self.dim, np.float32)
            out[states] = 1.0
            if self.time_feature == "onehot":
                out[self.n_states + steps] = 1.0
            elif self.time_feature == "fraction":
                out[self.n_states] = steps / self.horizon
            return out
        states, steps = np.broadcast_arrays(np.asarray(states), np.asarray(steps))
        if states.size and (states.min() < 0 or states.max() >= self.n_states):
            raise ValueError(f"states must lie in [0, {self.n_states}), got range [{states.min()}, {states.max()}]")
        if steps.size and (steps.min() < 0 or steps.max() > self.horizon):
            raise ValueError(f"time steps must lie in [0, {self.horizon}], got range [{steps.min()}, {steps.max()}]")
        out = np.zeros(states.shape + (self.dim,), np.float32)
        np.put_along_axis(out, states[..., None].astype(np.int64), 1.0, axis=-1)
        if self.time_feature == "onehot":
            np.put_along_axis(out, self.n_states + steps[..., None].astype(np.int64), 1.0, axis=-1)
        elif self.time_feature == "fraction":
            out[..., self.n_states] = steps / self.horizon
        return out


class TabularModelEnv(gym.Env):
    """A Gymnasium env that steps by a :class:`TabularModel` and shows :class:`Observations`.

    ``reset`` draws ``s_0 ~ initial_state_dist`` and ``step`` draws ``s' ~ P(. | s, a)`` from the
    successor form, both with the env's own ``np_random`` (seeded by ``reset(seed=...)``). Every
    episode is exactly ``H`` steps: the ``H``-th step returns ``truncated=True`` (never
    ``terminated``) and the next ``step`` without a ``reset`` is an error. The reward is always 0:
    the env is a simulator of the known dynamics for imitation's generators, whose rewards come
    from the learned reward net. ``info`` carries ``{"state": s, "t": t}``.

    Args:
        model: the task's dynamics.
        time_feature: see :class:`Observations`.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, model: TabularModel, time_feature: str = "none") -> None:
        if not isinstance(model, TabularModel):
            raise TypeError(f"model must be a mandril_envs TabularModel, got {type(model).__name__}")
        self.model = model
        self.observations = Observations(model.state_dim, model.horizon, time_feature)
        self.observation_space = self.observations.space()
        self.action_space = spaces.Discrete(model.action_dim)
        self._state = 0
        self._t = 0
        self._needs_reset = True

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> tuple[np.ndarray, dict]:
        """Start an episode: ``s_0 ~ initial_state_dist`` drawn with ``np_random``."""
        super().reset(seed=seed)
        p0 = self.model.initial_state_dist
        self._state = int(self.np_random.choice(p0.shape[0], p=p0))
        self._t = 0
        self._needs_reset = False
        return self.observations.encode(self._state, 0), {"state": self._state, "t": 0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Move by the model; reward 0; ``truncated`` after the ``H``-th step."""
        if self._needs_reset:
            raise RuntimeError("step() called after the episode was truncated at the horizon (or before reset()): call reset() first")
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action.item()
        if isinstance(action, bool) or not isinstance(action, (int, np.integer)) or not 0 <= int(action) < self.model.action_dim:
            raise ValueError(f"action must be an int in [0, {self.model.action_dim}), got {action!r}")
        self._state = self.model.sample_next_state(self._state, int(action), self.np_random)
        self._t += 1
        truncated = self._t >= self.model.horizon
        self._needs_reset = truncated
        return self.observations.encode(self._state, self._t), 0.0, False, truncated, {"state": self._state, "t": self._t}


def demos_to_trajectories(states: np.ndarray, actions: np.ndarray, observations: Observations) -> list[Any]:
    """Demos as imitation ``Trajectory`` objects.

    Args:
        states: ``(n, H+1)`` state indices ``s_0 .. s_H`` of each demo.
        actions: ``(n, H)`` actions.
        observations: how states are shown (the same as the env's).

    Returns:
        ``n`` ``imitation.data.types.Trajectory`` with ``obs (H+1, S+T)`` float32 (``obs[t]`` the
        observation of ``states[i, t]`` at step ``t``), ``acts (H,)`` int64, no infos and
        ``terminal=False`` (truncated at the horizon). No rewards: demos carry none a method may read.
    """
    from imitation.data.types import Trajectory

    states, actions = np.asarray(states), np.asarray(actions)
    horizon = observations.horizon
    if states.ndim != 2 or states.shape[1] != horizon + 1 or actions.shape != (states.shape[0], horizon):
        raise ValueError(f"demos must be states (n, H+1) and actions (n, H) with H = {horizon}, got {states.shape} and {actions.shape}")
    steps = np.arange(horizon + 1)
    return [
        Trajectory(obs=observations.encode(row, steps), acts=np.array(acts, dtype=np.int64), infos=None, terminal=False)
        for row, acts in zip(states, actions)
    ]


def reward_table(net: Any, state_observations: np.ndarray, n_actions: int, *, state_action: bool, atol: float = 1e-5) -> np.ndarray:
    """The reward a net gives every state (and action): ``(S,)`` or ``(S, A)`` float64.

    The net is evaluated through its own ``predict`` (imitation's preprocessing: actions one-hot) on
    every pair ``(state_observations[s], a)`` with ``next_state = state`` and ``done = False``.

    Args:
        net: an imitation ``RewardNet`` that reads neither the next state nor ``done`` (a
            ``use_next_state`` net has no table over states; it is refused).
        state_observations: ``(S, D)`` the observation of every state, as the net reads it.
        n_actions: ``A``.
        state_action: ``True``: return ``(S, A)``. ``False``: return ``(S,)``, after checking that
            the net does not depend on the action (a ValueError otherwise).
        atol: how far apart two actions' rewards may be for a state-only net.
    """
    if getattr(net, "use_next_state", False) or getattr(net, "use_done", False):
        raise ValueError("a reward net that reads the next state or done has no (S,) / (S, A) table; build it with use_next_state=False, use_done=False")
    obs = np.array(state_observations, dtype=np.float32)
    if obs.ndim != 2:
        raise ValueError(f"state_observations must be (S, D), got shape {obs.shape}")
    n_states = obs.shape[0]
    n_actions = check_int("n_actions", n_actions, 1)
    repeated = np.repeat(obs, n_actions, axis=0)
    acts = np.tile(np.arange(n_actions, dtype=np.int64), n_states)
    values = np.asarray(net.predict(repeated, acts, repeated.copy(), np.zeros(len(acts), dtype=bool)), dtype=np.float64)
    table = values.reshape(n_states, n_actions)
    if state_action:
        return table
    spread = float(np.abs(table - table[:, :1]).max())
    if spread > atol:
        raise ValueError(f"the reward net depends on the action (rewards of one state differ by {spread:.3g}); ask for state_action=True")
    return table[:, 0].copy()


def policy_table(policy: Any, observations: Observations, n_actions: int) -> np.ndarray:
    """A policy's action probabilities at every step and state: ``(H, S, A)`` float64.

    Args:
        policy: an SB3 ``ActorCriticPolicy`` (imitation's BC policy is one) whose action space is
            ``Discrete(A)``: ``policy.get_distribution(obs)`` gives a categorical distribution.
        observations: how states are shown (the env's).
        n_actions: ``A``.

    Returns:
        ``table[t, s]`` = the policy's probabilities at the observation of ``s`` at step ``t``, in
        float64 and renormalised to sum to 1 (the policy computes them in float32).
    """
    import torch

    n_actions = check_int("n_actions", n_actions, 1)
    horizon, n_states = observations.horizon, observations.n_states
    grid = observations.encode(np.arange(n_states)[None, :], np.arange(horizon)[:, None]).reshape(horizon * n_states, -1)
    was_training = policy.training
    policy.set_training_mode(False)
    try:
        with torch.no_grad():
            obs = torch.as_tensor(grid, device=policy.device)
            probs = policy.get_distribution(obs).distribution.probs.detach().cpu().numpy().astype(np.float64)
    finally:
        policy.set_training_mode(was_training)
    if probs.shape != (horizon * n_states, n_actions):
        raise ValueError(f"the policy gives {probs.shape[1:]} action probabilities, expected ({n_actions},)")
    table = probs.reshape(horizon, n_states, n_actions)
    if not np.all(np.isfinite(table)) or table.min() < 0:
        raise ValueError("the policy's action probabilities are not finite and non-negative")
    return table / table.sum(axis=2, keepdims=True)

