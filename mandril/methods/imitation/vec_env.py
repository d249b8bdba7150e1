"""``n`` copies of a task's env stepped together in numpy: the SB3 ``VecEnv`` the adversarial generators use.

A ``DummyVecEnv`` of :class:`~.adapters.TabularModelEnv` loops over Python envs on every step (a
step, a draw, an ``encode`` per copy, wrapped by imitation's ``RolloutInfoWrapper``); in a profiled
AIRL fit on 8x8 GridWorld those per-copy calls were about a third of the rollout time.
:class:`TabularVecEnv` moves every copy with one draw of ``n`` uniforms and one vectorised
inverse-CDF lookup in the model's successor form, and encodes the batch at once. Its behaviour is a
``DummyVecEnv``'s of :class:`~.adapters.TabularModelEnv` (same dynamics, observations, ``info``
keys, automatic resets, truncation at the horizon); only the random stream differs.

Imports Stable-Baselines3: load it lazily (importing :mod:`mandril.methods` must not import it).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from mandril.methods.imitation.adapters import Observations
from mandril_envs.model import TabularModel
from mandril_envs.validation import check_int

__all__ = ["TabularVecEnv", "make_venv"]


class TabularVecEnv(VecEnv):
    """``n_envs`` copies of a :class:`~.adapters.TabularModelEnv`, stepped together.

    ``reset()`` draws ``s_0 ~ initial_state_dist`` for every copy; ``step(actions)`` with
    ``actions (n_envs,)`` draws ``s'_i ~ P(. | s_i, a_i)`` for every copy and returns
    ``obs (n_envs, S + T)`` float32, ``rewards (n_envs,)`` float32 zeros, ``dones (n_envs,)`` bool and
    ``n_envs`` info dicts ``{"state": s'_i, "t": t_i}``. A copy whose episode reaches the horizon
    ``H`` is done: its info also holds ``"terminal_observation"`` (the observation at ``t = H``) and
    ``"TimeLimit.truncated": True`` (truncated, never terminated, as ``DummyVecEnv`` reports a
    Gymnasium truncation), and it is reset at once: its returned observation is the next episode's first.

    Randomness: one ``numpy.random.Generator`` for all copies, built at the next :meth:`reset` from
    the seed given to ``seed()`` (SB3's algorithms call it with theirs); from fresh entropy when
    never seeded.

    Args:
        model: the task's dynamics.
        time_feature: see :class:`~.adapters.Observations`.
        n_envs: number of copies (>= 1).
    """

    def __init__(self, model: TabularModel, time_feature: str = "none", n_envs: int = 1) -> None:
        if not isinstance(model, TabularModel):
            raise TypeError(f"model must be a mandril_envs TabularModel, got {type(model).__name__}")
        n_envs = check_int("n_envs", n_envs, 1)
        self.model = model
        self.observations = Observations(model.state_dim, model.horizon, time_feature)
        self.render_mode = None  # read by VecEnv.__init__ (through get_attr)
        super().__init__(n_envs, self.observations.space(), spaces.Discrete(model.action_dim))
        self._successors = np.asarray(model.successor_indices, dtype=np.int64)
        self._cdf = np.cumsum(np.asarray(model.successor_probs, dtype=np.float64), axis=-1)  # (S, A, K); last column: the row's total
        self._initial_cdf = np.cumsum(np.asarray(model.initial_state_dist, dtype=np.float64))
        self._rng = np.random.default_rng()
        self._states = np.zeros(n_envs, np.int64)
        self._t = np.zeros(n_envs, np.int64)
        self._actions: Optional[np.ndarray] = None
        self._needs_reset = True

    def _draw_initial(self, count: int) -> np.ndarray:
        """``count`` draws of ``s_0``: ``(count,)`` int64."""
        u = self._rng.random(count) * self._initial_cdf[-1]
        return np.minimum(np.searchsorted(self._initial_cdf, u, side="right"), self._initial_cdf.shape[0] - 1)

    def reset(self) -> np.ndarray:
        """Start an episode in every copy (seeding the generator first if ``seed()`` was called)."""
        if self._seeds[0] is not None:
            self._rng = np.random.default_rng(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        self._states = self._draw_initial(self.num_envs)
        self._t = np.zeros(self.num_envs, np.int64)
        self._needs_reset = False
        return self.observations.encode(self._states, self._t)

    def step_async(self, actions: np.ndarray) -> None:
        """Remember ``actions`` (``n_envs`` ints in ``[0, A)``) for :meth:`step_wait`."""
        actions = np.asarray(actions).reshape(-1)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer) or actions.min() < 0 or actions.max() >= self.model.action_dim:
            raise ValueError(f"actions must be {self.num_envs} ints in [0, {self.model.action_dim}), got {actions!r}")
        self._actions = actions.astype(np.int64)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """Move every copy by the model (see the class docstring)."""
        if self._needs_reset or self._actions is None:
            raise RuntimeError("step_wait() called before reset() or without step_async()")
        states, actions, self._actions = self._states, self._actions, None
        cdf = self._cdf[states, actions]  # (n, K)
        u = self._rng.random(self.num_envs) * cdf[:, -1]
        k = np.minimum((cdf <= u[:, None]).sum(axis=1), cdf.shape[1] - 1)  # numpy's searchsorted(side="right") per row
        states = self._successors[states, actions, k]
        t = self._t + 1
        obs = self.observations.encode(states, t)
        dones = t >= self.model.horizon
        infos: list[dict] = [{"state": int(s), "t": int(step)} for s, step in zip(states, t)]
        done = np.flatnonzero(dones)
        if done.size:
            for i in done:
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = True
            states[done] = self._draw_initial(done.size)
            t[done] = 0
            obs[done] = self.observations.encode(states[done], t[done])
        self._states, self._t = states, t
        return obs, np.zeros(self.num_envs, np.float32), dones, infos

    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """The attribute of this env, once per copy asked for (the copies share one object)."""
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Refused: the copies share one state."""
        raise AttributeError(f"TabularVecEnv's copies share one state: cannot set {attr_name!r} on some of them")

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        """Refused: there are no per-copy env objects."""
        raise AttributeError(f"TabularVecEnv has no per-copy envs to call {method_name!r} on")

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """No copy is wrapped."""
        return [False for _ in self._get_indices(indices)]


def make_venv(model: TabularModel, time_feature: str, n_envs: int) -> TabularVecEnv:
    """``n_envs`` copies of the task's env (:class:`TabularVecEnv`); seed it with ``venv.seed(seed)``
    (SB3's algorithms do) before its first ``reset``."""
    return TabularVecEnv(model, time_feature, n_envs)
