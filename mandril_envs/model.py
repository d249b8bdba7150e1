"""The tabular model: the one type that carries a task's known dynamics.

Every env of the suite exposes its :class:`TabularModel` (``env.unwrapped.model``) and
forwards the seals/imitation attribute names to it, so the exact matrices that ``step()``
samples from reach every consumer: the numpy planner, the torch kernels, imitation's MCE IRL.

Conventions (used everywhere in mandril):

* ``S`` states, ``A`` actions, ``K`` successors per ``(s, a)``, ``F`` features, ``H`` horizon.
* An episode has exactly ``H`` steps, ``t = 0 .. H-1``; at step ``t`` the agent is in ``s_t``,
  takes ``a_t`` and is paid ``r(s_t)`` (state reward) or ``r(s_t, a_t)`` (state-action reward).
  No reward is paid for the state ``s_H`` reached after the last step.
* The dynamics are stored in sparse successor form: ``successor_indices[s, a, k]`` is a next
  state and ``successor_probs[s, a, k]`` its probability (padding has probability 0 and points at
  ``s``). The dense ``transition_matrix[s, a, s']`` is built from it on first access (and cached),
  so a large grid never pays for the dense tensor unless someone asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from mandril_envs.sizes import check_fits, dense_nbytes

__all__ = ["TabularModel", "successors_from_dense"]

_ATOL = 1e-10


def _as_float_array(name: str, value: object, ndim: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got non-finite entries")
    return array


def successors_from_dense(transition_matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sparse successor form of a dense transition matrix.

    Args:
        transition_matrix: ``(S, A, S)`` row-stochastic.

    Returns:
        ``(indices, probs)``, both ``(S, A, K)`` with ``K`` the largest number of non-zero entries
        in a row; padding entries have probability 0 and index ``s``.
    """
    transition_matrix = np.asarray(transition_matrix, dtype=np.float64)
    n_states, n_actions, _ = transition_matrix.shape
    nonzero = transition_matrix > 0
    width = max(1, int(nonzero.sum(axis=2).max()))
    indices = np.broadcast_to(np.arange(n_states)[:, None, None], (n_states, n_actions, width)).copy()
    probs = np.zeros((n_states, n_actions, width))
    # stable argsort puts the non-zero columns first, in increasing state order
    order = np.argsort(~nonzero, axis=2, kind="stable")[:, :, :width]
    taken = np.take_along_axis(transition_matrix, order, axis=2)
    keep = taken > 0
    indices[keep] = order[keep]
    probs[keep] = taken[keep]
    return indices, probs


@dataclass(frozen=True, eq=False)
class TabularModel:
    """Known finite-horizon dynamics and reward of one task.

    Attributes:
        successor_indices: ``(S, A, K)`` int64, next states of each ``(s, a)``.
        successor_probs: ``(S, A, K)`` float64, their probabilities (each ``(s, a)`` sums to 1).
        reward_matrix: ``(S,)`` state reward or ``(S, A)`` state-action reward (the mean reward;
            an env may add zero-mean noise to what ``step()`` returns).
        initial_state_dist: ``(S,)`` distribution of ``s_0``.
        horizon: ``H``, the number of steps of every episode.
        feature_matrix: ``(S, F)`` per-state features (identity if not given).
    """

    successor_indices: np.ndarray
    successor_probs: np.ndarray
    reward_matrix: np.ndarray
    initial_state_dist: np.ndarray
    horizon: int
    feature_matrix: np.ndarray = None  # type: ignore[assignment]
    _dense: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    _cumulative: Optional[tuple[np.ndarray, np.ndarray]] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        indices = np.asarray(self.successor_indices)
        if indices.ndim != 3 or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"successor_indices must be an integer (S, A, K) array, got dtype {indices.dtype} shape {indices.shape}")
        indices = indices.astype(np.int64, copy=False)
        probs = _as_float_array("successor_probs", self.successor_probs, (3,))
        if probs.shape != indices.shape:
            raise ValueError(f"successor_probs shape {probs.shape} must equal successor_indices shape {indices.shape}")
        n_states, n_actions, _ = indices.shape
        if n_states < 1 or n_actions < 1:
            raise ValueError(f"a model needs at least one state and one action, got S={n_states}, A={n_actions}")
        if indices.min() < 0 or indices.max() >= n_states:
            raise ValueError(f"successor_indices must lie in [0, {n_states}), got range [{indices.min()}, {indices.max()}]")
        if probs.min() < 0:
            raise ValueError(f"successor_probs must be non-negative, got minimum {probs.min()}")
        row_sums = probs.sum(axis=2)
        worst = np.abs(row_sums - 1.0).max()
        if worst > _ATOL * 100:
            s, a = np.unravel_index(np.abs(row_sums - 1.0).argmax(), row_sums.shape)
            raise ValueError(f"transition rows must sum to 1: row (s={s}, a={a}) sums to {float(row_sums[s, a])!r}")
        reward = _as_float_array("reward_matrix", self.reward_matrix, (1, 2))
        if reward.shape != (n_states,) and reward.shape != (n_states, n_actions):
            raise ValueError(
                f"reward_matrix shape {reward.shape} does not fit transition shape (S, A, S) = "
                f"({n_states}, {n_actions}, {n_states}): allowed (S,) = ({n_states},) or (S, A) = ({n_states}, {n_actions})"
            )
        p0 = _as_float_array("initial_state_dist", self.initial_state_dist, (1,))
        if p0.shape != (n_states,):
            raise ValueError(f"initial_state_dist shape {p0.shape} must be (S,) = ({n_states},)")
        if p0.min() < 0 or abs(p0.sum() - 1.0) > 1e-8:
            raise ValueError(f"initial_state_dist must be a distribution, got min {p0.min()} and sum {p0.sum()}")
        if not isinstance(self.horizon, (int, np.integer)) or isinstance(self.horizon, bool) or self.horizon < 1:
            raise ValueError(f"horizon must be a positive int, got {self.horizon!r}")
        features = np.eye(n_states) if self.feature_matrix is None else _as_float_array("feature_matrix", self.feature_matrix, (2,))
        if features.shape[0] != n_states:
            raise ValueError(f"feature_matrix shape {features.shape} must have S = {n_states} rows")
        for name, value in (
            ("successor_indices", indices),
            ("successor_probs", probs),
            ("reward_matrix", reward),
            ("initial_state_dist", p0),
            ("feature_matrix", features),
        ):
            value = np.array(value, copy=True)
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "horizon", int(self.horizon))

    @classmethod
    def from_dense(
        cls,
        transition_matrix: np.ndarray,
        reward_matrix: np.ndarray,
        initial_state_dist: np.ndarray,
        horizon: int,
        feature_matrix: Optional[np.ndarray] = None,
    ) -> "TabularModel":
        """Build a model from a dense ``(S, A, S)`` transition matrix (shapes are checked)."""
        dense = _as_float_array("transition_matrix", transition_matrix, (3,))
        if dense.shape[0] != dense.shape[2]:
            raise ValueError(f"transition_matrix must be (S, A, S), got shape {dense.shape}")
        indices, probs = successors_from_dense(dense)
        return cls(indices, probs, reward_matrix, initial_state_dist, horizon, feature_matrix)

    # --- sizes -----------------------------------------------------------------------------
    @property
    def state_dim(self) -> int:
        """``S``, the number of states."""
        return int(self.successor_indices.shape[0])

    @property
    def action_dim(self) -> int:
        """``A``, the number of actions."""
        return int(self.successor_indices.shape[1])

    @property
    def n_successors(self) -> int:
        """``K``, the width of the successor form."""
        return int(self.successor_indices.shape[2])

    @property
    def is_deterministic(self) -> bool:
        """True when one start state and deterministic transitions make the states visited a function
        of the actions alone (whatever the seed): e.g. a bandit, whose one state never changes."""
        return bool(np.count_nonzero(self.initial_state_dist) == 1 and np.all((self.successor_probs == 0) | (self.successor_probs == 1)))

    @property
    def state_action_reward(self) -> bool:
        """True when ``reward_matrix`` is ``(S, A)``."""
        return self.reward_matrix.ndim == 2

    # --- dense view --------------------------------------------------------------------------
    @property
    def transition_matrix(self) -> np.ndarray:
        """``(S, A, S)`` float64 dense transitions, built from the successor form and cached.

        Raises:
            ValueError: the dense tensor would not fit in memory (:mod:`mandril_envs.sizes`); plan on
                the successor form instead.
        """
        if self._dense is None:
            n_states, n_actions = self.state_dim, self.action_dim
            check_fits(
                dense_nbytes(n_states, n_actions),
                f"the dense transition_matrix (S, A, S) = ({n_states}, {n_actions}, {n_states}) float64 (the successor form needs no dense tensor)",
            )
            dense = np.zeros((self.state_dim, self.action_dim, self.state_dim))
            s_idx, a_idx, _ = np.indices(self.successor_indices.shape)
            np.add.at(dense, (s_idx, a_idx, self.successor_indices), self.successor_probs)
            dense.setflags(write=False)
            object.__setattr__(self, "_dense", dense)
        return self._dense  # type: ignore[return-value]

    def state_action_rewards(self, reward: Optional[np.ndarray] = None) -> np.ndarray:
        """``(S, A)`` reward table: a state reward broadcast over actions (``reward`` defaults to the model's)."""
        reward = self.reward_matrix if reward is None else np.asarray(reward, dtype=np.float64)
        if reward.shape == (self.state_dim,):
            return np.broadcast_to(reward[:, None], (self.state_dim, self.action_dim))
        if reward.shape == (self.state_dim, self.action_dim):
            return reward
        raise ValueError(f"reward shape {reward.shape} must be (S,) = ({self.state_dim},) or (S, A) = ({self.state_dim}, {self.action_dim})")

    def with_reward(self, reward_matrix: np.ndarray) -> "TabularModel":
        """The same dynamics with another reward table."""
        return TabularModel(
            self.successor_indices, self.successor_probs, reward_matrix, self.initial_state_dist, self.horizon, self.feature_matrix, self._dense
        )

    @property
    def successor_cumulative(self) -> tuple[np.ndarray, np.ndarray]:
        """``(S, A, K)`` running sums of :attr:`successor_probs` along ``K`` and their ``(S, A)`` totals, made once
        (the same numbers as row by row)."""
        if self._cumulative is None:
            object.__setattr__(self, "_cumulative", (np.cumsum(self.successor_probs, axis=-1), self.successor_probs.sum(-1)))
        return self._cumulative  # type: ignore[return-value]

    def sample_next_state(self, state: int, action: int, rng: np.random.Generator) -> int:
        """Draw ``s' ~ P(. | state, action)`` from the successor form with ``rng`` (one ``rng.random()``)."""
        cumulative, totals = self.successor_cumulative
        k = int(np.searchsorted(cumulative[state, action], rng.random() * totals[state, action], side="right"))
        k = min(k, self.successor_probs.shape[-1] - 1)
        return int(self.successor_indices[state, action, k])

    def next_states(self, states: np.ndarray, actions: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """The successors :meth:`sample_next_state` draws where its ``rng.random()`` returns ``uniforms``, for a batch.

        Args:
            states, actions: int arrays of one shape ``B``.
            uniforms: float64 ``B``, draws in ``[0, 1)``.

        Returns:
            int64 ``B``: element for element the state ``sample_next_state`` returns (a sorted row's
            ``searchsorted(..., side="right")`` is the number of its entries ``<=`` the point).
        """
        cumulative, totals = self.successor_cumulative
        point = uniforms * totals[states, actions]
        k = np.minimum((cumulative[states, actions] <= point[..., None]).sum(-1), self.successor_probs.shape[-1] - 1)
        return self.successor_indices[states, actions, k].astype(np.int64)
