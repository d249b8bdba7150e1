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

from mandril_envs import drawing
from mandril_envs.model import TabularModel
from mandril_envs.priors import RewardPrior
from mandril_envs.reward_noise import RewardNoise
from mandril_envs.sizes import ModelShape, check_fits, tasks_nbytes
from mandril_envs.tasks import Task, TaskLike, coerce_task, plain_differences, task_rng, to_plain
from mandril_envs.validation import check_choice, check_int

__all__ = ["TabularTaskEnv"]


class TabularTaskEnv(gym.Env, ABC):
    """A finite-horizon env with known tabular dynamics, one task at a time.

    Subclasses set :attr:`family` and :attr:`splits`, and implement :meth:`_sample_params`,
    :meth:`_build_model` and :meth:`_check_params` (plus, optionally, more observation types).
    They should also implement :meth:`_model_shape` (with :attr:`size_arguments`), so that an absurd
    size is refused before anything is allocated (see :mod:`mandril_envs.sizes`).

    ``env.model`` is the current task's :class:`TabularModel`; ``transition_matrix``,
    ``reward_matrix``, ``initial_state_dist``, ``horizon``, ``state_dim``, ``action_dim``,
    ``feature_matrix``, ``successor_indices`` and ``successor_probs`` read through to it. With
    ``state_space``, ``observation_matrix``, ``obs_dim``, ``obs_dtype``, ``n_actions_taken`` and the
    methods ``initial_state``, ``transition``, ``reward``, ``terminal`` and ``obs_from_state``, the env
    reads like seals' ``TabularModelPOMDP``: imitation's ``MCEIRL(demos, env.unwrapped, reward_net)``
    runs on it directly.
    """

    family: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    obs_types: ClassVar[tuple[str, ...]] = ("index", "onehot", "features")
    #: What a reward model can read of a task (:meth:`~mandril_envs.base.TabularTaskEnv.reward_input`); ``"features"`` everywhere.
    reward_input_kinds: ClassVar[tuple[str, ...]] = ("features",)
    #: The config keys that set the size of a task's model, named when a size is refused.
    size_arguments: ClassVar[tuple[str, ...]] = ()
    #: Every family renders both: ``"rgb_array"`` (a small picture of the task, drawn with numpy; what
    #: SB3's ``make_vec_env`` asks for) and ``"ansi"`` (text).
    metadata: dict[str, Any] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}

    def __init__(self, config: dict, task: Optional[TaskLike], obs_type: str, render_mode: Optional[str]) -> None:
        check_choice("obs_type", obs_type, self.obs_types)
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        self._check_size(config, obs_type)
        self.config: dict = to_plain(config)
        self._noise = self.reward_noise()  # a function of the config: made once, used by every step()
        self.obs_type = obs_type
        self.render_mode = render_mode
        self._state = 0
        self._t = 0
        self._last_action: Optional[int] = None  # the action of the last step of this episode (renders show it)
        self._started = False  # reset() has been called
        self._past_horizon = False  # the episode was truncated; step() now stays put and pays 0
        self._warned_past_horizon = False
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

    def _check_split(self, params: dict, split: str) -> None:
        """Raise a ValueError if valid ``params`` could not have been drawn for ``split`` (the split would leak).

        The default accepts every split: right for families whose splits differ only by their seed
        streams (any valid parameters are possible in either split). Families whose held-out splits
        keep something for themselves (GridWorld: sprite types, sprite combinations) must override it.
        """

    def _model_shape(self, config: dict, obs_type: str) -> Optional[ModelShape]:
        """What one task of this config keeps in memory (``None``: the family does not say, nothing is checked)."""
        return None

    def _check_size(self, config: dict, obs_type: str) -> None:
        """Refuse a config whose task model would not fit in memory, before anything is allocated.

        Families that allocate in their ``__init__`` before calling the base one call it themselves first.

        Raises:
            ValueError: naming the :attr:`size_arguments` and their values, the estimate and the limit.
        """
        shape = self._model_shape(config, obs_type)
        if shape is not None:
            arguments = ", ".join(f"{key}={config[key]!r}" for key in self.size_arguments if key in config)
            check_fits(shape.nbytes, f"{self.family} {arguments}: one task's model and observations ({shape.describe()})")

    @staticmethod
    def _observation_nbytes(obs_type: str, n_states: int, n_features: int) -> int:
        """Bytes of the observation space's bounds and one observation of the base observation types."""
        width = {"index": 0, "onehot": n_states, "features": n_features}.get(obs_type, 0)
        return 3 * 4 * width  # float32 low, high and one observation

    def reward_noise(self) -> RewardNoise:
        """How ``step()`` draws a reward around its mean (noiseless by default); a function of the config
        alone. The same object judges the rewards recorded in a dataset (:mod:`mandril_envs.reward_noise`)."""
        return RewardNoise("none")

    def _sample_reward(self, state: int, action: int, mean: float) -> float:
        """The reward ``step()`` returns, whose expectation is ``mean``: drawn by :meth:`reward_noise`."""
        return self._noise.sample(self.np_random, mean)

    def sample_rewards(self, means: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rewards paid at steps whose mean rewards are ``means`` (any shape), drawn with ``rng``.

        The family's :meth:`reward_noise`, vectorised: ``step()`` pays the first draw of
        ``sample_rewards([mean], np_random)``, and samplers that run many episodes from the known model
        at once (``mandril.maml_rl``) call it with whole batches, so the noise is written once.

        Returns:
            float64 array of the shape of ``means``.
        """
        return self._noise.sample_array(rng, means)

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
        shape = self._model_shape(self.config, self.obs_type)
        nbytes = tasks_nbytes(n, shape.param_numbers if shape is not None else 0)
        check_fits(nbytes, f"sample_tasks n={n} of {self.family}: the tasks and their parameters")  # before any task is drawn
        tasks = []
        for index in range(start, start + n):
            params = to_plain(self._sample_params(task_rng(seed, split, index), split))
            tasks.append(Task(self.family, self.config, split, index, seed, params))
        return tasks

    def check_task(self, task: TaskLike) -> Task:
        """``task`` as a :class:`Task` if this env can install it, else raise (nothing is built).

        Checks the family, the config, the split, the parameters (:meth:`_check_params`) and that the
        parameters are possible in the task's split (:meth:`_check_split`): a ``"train"`` task that
        uses what the held-out splits keep for themselves would leak them into training.

        Raises:
            ValueError / TypeError: naming the first problem.
        """
        task = coerce_task(task)
        if task.family != self.family:
            raise ValueError(f"task is from family {task.family!r}, but this env is {self.family!r}")
        diff = plain_differences(task.config, self.config)
        if diff:
            raise ValueError(f"task config differs from this env's config in {diff}: make the env with the task's config")
        if task.split not in self.splits:
            raise ValueError(f"task split must be one of {list(self.splits)}, got {task.split!r}")
        self._check_params(task.params)
        self._check_split(task.params, task.split)
        return task

    def set_task(self, task: TaskLike) -> None:
        """Install ``task`` (a :class:`Task`, its dict or its JSON, checked by :meth:`check_task`); the
        next ``reset()`` starts in it."""
        task = self.check_task(task)
        self.task = task
        self.model: TabularModel = self._build_model(task.params)
        # a space equal to the one in place is kept, with its seeded generator (a new task per reset
        # must not reset what ``env.action_space.seed(s)`` set up)
        action_space, observation_space = spaces.Discrete(self.model.action_dim), self._observation_space()
        if getattr(self, "action_space", None) != action_space:
            self.action_space = action_space
        if getattr(self, "observation_space", None) != observation_space:
            self.observation_space = observation_space
        self._started = False

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

    @property
    def state_space(self) -> spaces.Discrete:
        """``Discrete(S)``: the states (seals' ``state_space``; the observations are ``observation_space``)."""
        return spaces.Discrete(self.model.state_dim)

    @property
    def observation_matrix(self) -> np.ndarray:
        """``(S, obs_dim)``: row ``s`` is the observation of state ``s`` as a flat vector, a new writable array.

        Row ``s`` equals ``gymnasium.spaces.flatten(observation_space, observation(s))``: the one-hot
        of ``s`` for ``obs_type="index"`` (a ``Discrete`` space flattens to its one-hot, as SB3 and
        imitation feed it to a network) and ``"onehot"``, the feature row for ``"features"``, the
        flattened image for GridWorld's ``"rgb"`` (uint8). float32 otherwise. This is what imitation's
        ``MCEIRL`` hands its reward net for every state at once, so a reward net built on
        ``env.observation_space`` (``BasicRewardNet(env.observation_space, env.action_space, ...)``)
        reads it as it reads the env's observations.
        """
        n_states = self.model.state_dim
        if self.obs_type in ("index", "onehot"):
            check_fits(4 * n_states * n_states, f"observation_matrix of {n_states} one-hot states")
            return np.eye(n_states, dtype=np.float32)
        if self.obs_type == "features":
            return np.array(self.model.feature_matrix, dtype=np.float32)
        width = spaces.flatdim(self.observation_space)
        check_fits(n_states * width * np.dtype(self.observation_space.dtype).itemsize, f"observation_matrix of {n_states} states x {width} values")
        return np.stack([spaces.flatten(self.observation_space, self.observation(s)) for s in range(n_states)])

    @property
    def obs_dim(self) -> int:
        """Length of a row of :attr:`observation_matrix` (``flatdim(observation_space)``)."""
        return int(spaces.flatdim(self.observation_space))

    @property
    def obs_dtype(self) -> np.dtype:
        """The dtype of :attr:`observation_matrix`."""
        return np.dtype(np.float32) if self.obs_type in ("index", "onehot", "features") else np.dtype(self.observation_space.dtype)

    @property
    def n_actions_taken(self) -> int:
        """Steps taken in this episode (seals' name for ``t``)."""
        return self._t

    def initial_state(self) -> int:
        """Draw ``s_0 ~ initial_state_dist`` with the env's ``np_random`` (seals' model interface)."""
        p0 = self.model.initial_state_dist
        return int(self.np_random.choice(p0.shape[0], p=p0))

    def transition(self, state: int, action: int) -> int:
        """Draw ``s' ~ P(. | state, action)`` with the env's ``np_random`` (seals' model interface)."""
        return self.model.sample_next_state(int(state), int(action), self.np_random)

    def reward(self, state: int, action: int, new_state: int) -> float:
        """The mean reward ``r(state)`` or ``r(state, action)`` (seals' model interface; ``new_state`` is unused)."""
        table = self.model.reward_matrix
        return float(table[state] if table.ndim == 1 else table[state, action])

    def terminal(self, state: int, n_actions_taken: int) -> bool:
        """Whether an episode ends after ``n_actions_taken`` steps: at the horizon (seals' model interface;
        the env reports it as ``truncated``, never ``terminated``)."""
        return int(n_actions_taken) >= self.model.horizon

    def obs_from_state(self, state: int) -> Any:
        """The observation of ``state`` (seals' name for :meth:`observation`)."""
        return self.observation(state)

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

    def reward_prior(self) -> RewardPrior:
        """The family's prior over the current task's reward, given what the task shows (its layout,
        features and split), never the task's own draw (:mod:`mandril_envs.priors`). For estimators
        that know the family (the ``bayes`` reference); a reward model sees only :meth:`reward_input`.

        Raises:
            NotImplementedError: the family does not describe its prior.
        """
        raise NotImplementedError(f"{type(self).__name__} does not describe its reward prior (reward_prior)")

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
        self._state = self.initial_state()
        self._t = 0
        self._last_action = None
        self._started = True
        self._past_horizon = False
        self._warned_past_horizon = False
        return self.observation(self._state), {"state": self._state, "t": 0}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        """Pay ``r(s_t[, a_t])`` (sampled around that mean by some families), move by the model, truncate at the horizon.

        After the step that truncates the episode (``t = H``), the episode is over: further steps are
        answered gracefully, as seals' env checks ask, and change nothing: they stay in ``s_H``, pay
        ``0.0`` (nothing is paid after the horizon), return ``terminated=False, truncated=True`` and
        ``info = {"state": s_H, "t": H}``, and warn once per episode. ``reset()`` starts the next
        episode. ``step()`` before the first ``reset()`` (or after a new task is installed) raises
        ``RuntimeError``.
        """
        if not self._started:
            raise RuntimeError("step() called before reset() (a new task needs a reset too): call reset() first")
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action.item()
        if isinstance(action, bool) or not isinstance(action, (int, np.integer)):
            raise TypeError(f"action must be an int in [0, {self.model.action_dim}), got {type(action).__name__} {action!r}")
        if not 0 <= int(action) < self.model.action_dim:
            raise ValueError(f"action must be in [0, {self.model.action_dim}), got {action}")
        action = int(action)
        if self._past_horizon:
            if not self._warned_past_horizon:
                self._warned_past_horizon = True
                gym.logger.warn(
                    f"step() called after the episode was truncated at the horizon H={self.model.horizon}: the episode is over, "
                    "so this step stays in s_H and pays 0; call reset() to start the next episode"
                )
            return self.observation(self._state), 0.0, False, True, {"state": self._state, "t": self._t}
        state = self._state
        reward_table = self.model.reward_matrix
        mean = reward_table[state, action] if reward_table.ndim == 2 else reward_table[state]
        reward = self._sample_reward(state, action, float(mean))
        self._state = self.model.sample_next_state(state, action, self.np_random)
        self._last_action = action
        self._t += 1
        truncated = self._t >= self.model.horizon
        self._past_horizon = truncated
        info = {"state": self._state, "t": self._t}
        return self.observation(self._state), reward, False, truncated, info

    def _end_episode_at(self, state: int, action: int) -> None:
        """Leave the env as ``step()`` leaves it after the ``H``-th step into ``state`` by ``action``: for episodes
        whose steps were drawn from the model directly (:func:`mandril_envs.demos.task_demos`)."""
        self._state, self._last_action, self._t, self._past_horizon = int(state), int(action), self.model.horizon, True

    def render(self) -> Any:
        """``rgb_array``: a ``(height, width, 3)`` uint8 picture of the task and the agent
        (:meth:`_render_rgb`); ``ansi``: a text picture of the current state."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; make the env with render_mode='rgb_array' or 'ansi'")
            return None
        if self.render_mode == "rgb_array":
            return self._render_rgb()
        return self._render_ansi()

    def _render_rgb(self) -> np.ndarray:
        """The current task and state as a ``(height, width, 3)`` uint8 image, drawn with numpy
        (:mod:`mandril_envs.drawing`). By default a ring of the states, coloured by reward, with the
        agent's state ringed and lines to where it can go (:func:`~mandril_envs.drawing.ring_of_states`);
        GridWorld draws its map, Bandit its arms."""
        reward = self.model.reward_matrix
        state_rewards = reward if reward.ndim == 1 else reward.mean(axis=1)
        return drawing.ring_of_states(self.model.successor_indices, self.model.successor_probs, state_rewards, self._state)

    def _render_ansi(self) -> str:
        return f"{self.family} task {self.task.split}/{self.task.index}: t={self._t}/{self.model.horizon} state={self._state}\n"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task.split}/{self.task.index} S={self.model.state_dim} A={self.model.action_dim} H={self.model.horizon}>"

