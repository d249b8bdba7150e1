"""The base class of every env of the suite: a Gymnasium env over a :class:`TabularModel`.

A subclass defines a task family: its config (the kwargs that define the family), how task
parameters are drawn for each split, how a model is built from them, and how a state is shown.
The base class handles tasks, seeding, stepping by the model, truncation at the horizon,
observation types, input checks and the seals/imitation attribute names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Optional, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mandril_envs.model import TabularModel
from mandril_envs.tasks import Task, TaskLike, coerce_task, task_rng, to_plain
from mandril_envs.validation import check_choice, check_int

__all__ = ["TabularTaskEnv"]


class TabularTaskEnv(gym.Env, ABC):
    """A finite-horizon env with known tabular dynamics, one task at a time.

    Subclasses set :attr:`family` and :attr:`splits`, and implement :meth:`_sample_params`,
    :meth:`_build_model` and :meth:`_check_params` (plus, optionally, more observation types).

    ``env.model`` is the current task's :class:`TabularModel`; ``transition_matrix``,
    ``reward_matrix``, ``initial_state_dist``, ``horizon``, ``state_dim``, ``action_dim``,
    ``feature_matrix``, ``successor_indices`` and ``successor_probs`` read through to it.
    """

    family: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    obs_types: ClassVar[tuple[str, ...]] = ("index", "onehot", "features")
    #: What a reward model can read of a task (:meth:`reward_input`); ``"features"`` everywhere.
    reward_input_kinds: ClassVar[tuple[str, ...]] = ("features",)
    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, config: dict, task: Optional[TaskLike], obs_type: str, render_mode: Optional[str]) -> None:
        check_choice("obs_type", obs_type, self.obs_types)
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        self.config: dict = to_plain(config)
        self.obs_type = obs_type
        self.render_mode = render_mode
        self._state = 0
        self._t = 0
        self._needs_reset = True
        self.task: Task = self.sample_tasks(1, "train", seed=0)[0] if task is None else coerce_task(task)
        self.set_task(self.task)

    # --- the family interface --------------------------------------------------------------
    @abstractmethod
    def _sample_params(self, rng: np.random.Generator, split: str) -> dict:
        """Draw one task's parameters (plain JSON data) for ``split`` from ``rng``."""

    @abstractmethod
    def _build_model(self, params: dict) -> TabularModel:
        """Build the task's model from its parameters."""

    @abstractmethod
    def _check_params(self, params: dict) -> None:
        """Raise a ValueError/TypeError naming the problem if ``params`` is not a valid task of this family."""

    def sample_rewards(self, means: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rewards paid at steps whose mean rewards are ``means`` (any shape), drawn with ``rng``.

        The family's reward noise, vectorised: ``step()`` pays ``sample_rewards([mean], np_random)[0]``,
        and samplers that run many episodes from the known model at once (``mandril.maml_rl``) call
        it with whole batches, so the noise is written once. Default: the means themselves.

        Returns:
            float64 array of the shape of ``means``.
        """
        return np.array(means, dtype=np.float64)

    def _sample_reward(self, state: int, action: int, mean: float) -> float:
        """The reward ``step()`` returns, whose expectation is ``mean`` (see :meth:`sample_rewards`)."""
        return float(self.sample_rewards(np.array([mean]), self.np_random)[0])

    # --- tasks -------------------------------------------------------------------------------
    def sample_tasks(self, n: int, split: str = "train", seed: int = 0, start: int = 0) -> list[Task]:
        """Tasks ``start .. start+n-1`` of ``split`` in the task stream ``seed``.

        The same ``(config, split, index, seed)`` always gives the same task; train and test tasks
        are disjoint by construction (see each family's docstring).
        """
        n = check_int("n", n, 0)
        seed = check_int("seed", seed, 0)
        start = check_int("start", start, 0)
        check_choice("split", split, self.splits)
        tasks = []
        for index in range(start, start + n):
            params = to_plain(self._sample_params(task_rng(seed, split, index), split))
            tasks.append(Task(self.family, self.config, split, index, seed, params))
        return tasks

    def set_task(self, task: TaskLike) -> None:
        """Install ``task`` (a :class:`Task`, its dict or its JSON); the next ``reset()`` starts in it."""
        task = coerce_task(task)
        if task.family != self.family:
            raise ValueError(f"task is from family {task.family!r}, but this env is {self.family!r}")
        if task.config != self.config:
            diff = sorted(k for k in set(task.config) | set(self.config) if task.config.get(k) != self.config.get(k))
            raise ValueError(f"task config differs from this env's config in {diff}: make the env with the task's config")
        if task.split not in self.splits:
            raise ValueError(f"task split must be one of {list(self.splits)}, got {task.split!r}")
        self._check_params(task.params)
        self.task = task
        self.model: TabularModel = self._build_model(task.params)
        self.action_space = spaces.Discrete(self.model.action_dim)
        self.observation_space = self._observation_space()
        self._needs_reset = True

    # --- seals / imitation names -------------------------------------------------------------
    @property
    def transition_matrix(self) -> np.ndarray:
        """``(S, A, S)`` dense transitions of the current task."""
        return self.model.transition_matrix

    @property
    def successor_indices(self) -> np.ndarray:
        """``(S, A, K)`` successor states."""
        return self.model.successor_indices

    @property
    def successor_probs(self) -> np.ndarray:
        """``(S, A, K)`` successor probabilities."""
        return self.model.successor_probs

    @property
    def reward_matrix(self) -> np.ndarray:
        """``(S,)`` or ``(S, A)`` mean reward."""
        return self.model.reward_matrix

    @property
    def initial_state_dist(self) -> np.ndarray:
        """``(S,)`` distribution of the first state."""
        return self.model.initial_state_dist

    @property
    def horizon(self) -> int:
        """Steps per episode."""
        return self.model.horizon

    @property
    def state_dim(self) -> int:
        """``S``."""
        return self.model.state_dim

    @property
    def action_dim(self) -> int:
        """``A``."""
        return self.model.action_dim

    @property
    def feature_matrix(self) -> np.ndarray:
        """``(S, F)`` per-state features."""
        return self.model.feature_matrix

    @property
    def state(self) -> int:
        """The current state index."""
        return self._state

    # --- what a reward model reads, and what scoring needs to know ---------------------------
    def reward_input(self, kind: str = "features") -> np.ndarray:
        """The current task as a reward model reads it (a copy, float64).

        ``"features"``: the feature matrix ``(S, F)``. Families add more (:attr:`reward_input_kinds`;
        GridWorld: ``"map"``, ``(F, N, N)``, and ``"rgb"``, ``(3, 5N, 5N)`` in ``[0, 1]``).
        """
        check_choice("kind", kind, self.reward_input_kinds)
        if kind != "features":  # a subclass declared a kind without implementing it
            raise NotImplementedError(f"{type(self).__name__} declares reward input {kind!r} but does not implement it")
        return np.array(self.model.feature_matrix, dtype=np.float64)

    @property
    def goal_state(self) -> Optional[int]:
        """The state the task's intent is to reach and stay in, when the family has one (GridWorld's
        goal cell), else ``None``; scoring reports the probability of ending there (``success``)."""
        return None

    # --- observations ------------------------------------------------------------------------
    def _observation_space(self) -> spaces.Space:
        if self.obs_type == "index":
            return spaces.Discrete(self.model.state_dim)
        if self.obs_type == "onehot":
            return spaces.Box(0.0, 1.0, (self.model.state_dim,), np.float32)
        if self.obs_type == "features":
            return spaces.Box(-np.inf, np.inf, (self.model.feature_matrix.shape[1],), np.float32)
        raise NotImplementedError(self.obs_type)

    def observation(self, state: int) -> Any:
        """The observation of ``state`` under this env's ``obs_type``."""
        if self.obs_type == "index":
            return int(state)
        if self.obs_type == "onehot":
            onehot = np.zeros(self.model.state_dim, np.float32)
            onehot[state] = 1.0
            return onehot
        if self.obs_type == "features":
            return self.model.feature_matrix[state].astype(np.float32)
        raise NotImplementedError(self.obs_type)

    # --- the Gymnasium API -------------------------------------------------------------------
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> tuple[Any, dict]:
        """Start an episode in the current task: ``s_0 ~ initial_state_dist`` from ``np_random``.

        ``options={"task": task}`` installs a task first.
        """
        super().reset(seed=seed)
        if options and "task" in options:
            self.set_task(options["task"])
        p0 = self.model.initial_state_dist
        self._state = int(self.np_random.choice(p0.shape[0], p=p0))
        self._t = 0
        self._needs_reset = False
        return self.observation(self._state), {"state": self._state, "t": 0}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        """Pay ``r(s_t[, a_t])`` (sampled around that mean by some families), move by the model, truncate at the horizon."""
        if self._needs_reset:
            raise RuntimeError(
                "step() called after the episode was truncated at the horizon (or before reset()): call reset() first"
            )
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action.item()
        if isinstance(action, bool) or not isinstance(action, (int, np.integer)):
            raise TypeError(f"action must be an int in [0, {self.model.action_dim}), got {type(action).__name__} {action!r}")
        if not 0 <= int(action) < self.model.action_dim:
            raise ValueError(f"action must be in [0, {self.model.action_dim}), got {action}")
        action = int(action)
        state = self._state
        reward_table = self.model.reward_matrix
        mean = reward_table[state, action] if reward_table.ndim == 2 else reward_table[state]
        reward = self._sample_reward(state, action, float(mean))
        self._state = self.model.sample_next_state(state, action, self.np_random)
        self._t += 1
        truncated = self._t >= self.model.horizon
        self._needs_reset = truncated
        info = {"state": self._state, "t": self._t}
        return self.observation(self._state), reward, False, truncated, info

    def render(self) -> Any:
        """``ansi``: a text picture of the current state (subclasses add ``rgb_array``)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; make the env with render_mode='ansi'")
            return None
        return self._render_ansi()

    def _render_ansi(self) -> str:
        return f"{self.family} task {self.task.split}/{self.task.index}: t={self._t}/{self.model.horizon} state={self._state}\n"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task.split}/{self.task.index} S={self.model.state_dim} A={self.model.action_dim} H={self.model.horizon}>"

