"""Wrappers for training across tasks: a new task at every reset (meta-RL, RL^2-style training).

``gym.make(id)`` installs one task (``train/0``) and keeps it across resets. :class:`TaskPerReset`
draws a new task of a split at every ``reset``, reproducibly from the reset's seed, and reports it in
``info["task"]``. Vector envs built from it hold a different task in each sub-env (each sub-env is
reset with its own seed) and draw a new one whenever a sub-env resets:

    env = TaskPerReset(gym.make("mandril_envs/Bandit-K10-v0"), split="train")
    venv = gym.vector.SyncVectorEnv([lambda: TaskPerReset(gym.make(env_id), "train") for _ in range(8)])
    venv = make_vec_env(env_id, n_envs=8, wrapper_class=TaskPerReset, wrapper_kwargs={"split": "train"})  # SB3
"""

from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np

from mandril_envs.base import TabularTaskEnv
from mandril_envs.tasks import Task
from mandril_envs.validation import check_choice, check_int

__all__ = ["TaskPerReset", "TASK_INDEX_LIMIT"]

#: Without ``n_tasks``, task indices are drawn uniformly from ``[0, TASK_INDEX_LIMIT)``.
TASK_INDEX_LIMIT = 2**31 - 1
# The task draws use their own stream of the reset seed, apart from the env's np_random (s_0, steps).
_TASK_STREAM = 0x7A5C


class TaskPerReset(gym.Wrapper):
    """Installs a new task of ``split`` at every ``reset``, drawn from a generator seeded by the reset's seed.

    ``reset(seed=s)`` seeds the task generator from ``s`` (on a stream of its own: the env's
    ``np_random``, which draws ``s_0`` and the steps, is seeded by ``s`` as usual) and draws a task
    index; ``reset()`` without a seed draws the next index from the same generator (from fresh
    entropy if the env was never reset with a seed, as gymnasium does for ``np_random``). The task is
    ``sample_tasks(1, split, seed=task_seed, start=index)``, so the same seed gives the same task and
    the same episode on any machine, and held-out splits stay disjoint from ``"train"``. ``info["task"]``
    is the installed :class:`~mandril_envs.tasks.Task` (``.split``, ``.index``, ``.to_json()``).
    ``reset(options={"task": task})`` installs that task instead of drawing one.

    Args:
        env: an env of this suite (its ``unwrapped`` env a :class:`TabularTaskEnv`).
        split: the split the tasks come from (one of the family's ``splits``).
        n_tasks: draw among the first ``n_tasks`` tasks of the split (a fixed pool, e.g. the training
            tasks of a benchmark); ``None`` (default): any task of the split's stream (indices
            uniform in ``[0, 2**31 - 1)``, so two draws practically never repeat).
        task_seed: the seed of the task stream (``sample_tasks``' ``seed``; 0, as ``gym.make`` and
            the dataset tools use by default).

    Raises:
        TypeError: ``env`` is not an env of this suite.
        ValueError: naming ``split``, ``n_tasks`` or ``task_seed`` and what is allowed.
    """

    def __init__(self, env: gym.Env, split: str = "train", n_tasks: Optional[int] = None, task_seed: int = 0) -> None:
        base = env.unwrapped
        if not isinstance(base, TabularTaskEnv):
            raise TypeError(f"env must be a mandril_envs env (its unwrapped env a TabularTaskEnv), got {type(base).__name__}")
        super().__init__(env)
        self.split = check_choice("split", split, base.splits)
        self.n_tasks = None if n_tasks is None else check_int("n_tasks", n_tasks, 1)
        self.task_seed = check_int("task_seed", task_seed, 0)
        self._task_rng: Optional[np.random.Generator] = None

    def draw_task(self) -> Task:
        """The next task of the draw stream (:meth:`reset` calls it; call ``reset(seed=...)`` first to seed it)."""
        if self._task_rng is None:
            self._task_rng = np.random.default_rng()
        index = int(self._task_rng.integers(self.n_tasks if self.n_tasks is not None else TASK_INDEX_LIMIT))
        base = self.env.unwrapped
        assert isinstance(base, TabularTaskEnv)
        return base.sample_tasks(1, self.split, seed=self.task_seed, start=index)[0]

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> tuple[Any, dict]:
        """Draw and install a task, then reset the env in it; ``info["task"]`` is the task."""
        if seed is not None:
            seed = check_int("seed", seed, 0)
            self._task_rng = np.random.default_rng(np.random.SeedSequence([seed, _TASK_STREAM]))
        options = dict(options or {})
        if "task" not in options:
            options["task"] = self.draw_task()
        obs, info = self.env.reset(seed=seed, options=options)
        base = self.env.unwrapped
        assert isinstance(base, TabularTaskEnv)
        return obs, {**info, "task": base.task}
