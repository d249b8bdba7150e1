"""Datasets of expert demonstrations over many tasks, and their file format.

Format (``.npz``, version 1), one file per dataset:

=========== ===================== ===========================================================
array       shape / dtype          content
=========== ===================== ===========================================================
``meta``    0-d unicode            JSON: ``format`` ("mandril_envs.demos"), ``version`` (1),
                                   ``env_id``, ``family``, ``split``, ``task_seed``, ``demo_seed``,
                                   ``expert`` (policy, temperature, epsilon), ``horizon``,
                                   ``state_dim``, ``action_dim``, ``tasks`` (every task's
                                   :class:`~mandril_envs.tasks.Task` dict: family config and params)
``states``  ``(N, M, H+1)`` int64  state indices ``s_0 .. s_H`` of demo ``m`` of task ``n``
``actions`` ``(N, M, H)`` int64    actions ``a_0 .. a_{H-1}``
``rewards`` ``(N, M, H)`` float64  rewards returned by ``step()``
=========== ===================== ===========================================================

The tasks' parameters rebuild each task's true model exactly (``dataset.make_env(n)``), so a method
can be scored against the ground truth. Observations are not stored: any observation type is a
function of the state and the task (``dataset.trajectories(n, obs_type=...)``). For Minari,
``dataset.episode_buffers(n)`` gives each episode as the dict of arrays that
``minari.create_dataset_from_buffers`` takes (observations, actions, rewards, terminations,
truncations), and ``dataset.to_minari(dataset_id, n)`` writes task ``n`` as a Minari dataset whose
env spec carries the task (``pip install 'mandril[minari]'``). Files are written atomically
(temporary file, then rename).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import gymnasium as gym
import numpy as np

from mandril_envs import __version__
from mandril_envs.atomic import atomic_write
from mandril_envs.base import TabularTaskEnv
from mandril_envs.demos import ExpertSettings, Trajectory, expert_policy, rollout
from mandril_envs.registration import check_env_id
from mandril_envs.sizes import check_fits, dataset_nbytes, plan_nbytes
from mandril_envs.tasks import SPLIT_CODES, Task
from mandril_envs.validation import check_int

__all__ = ["DemoDataset", "DatasetError", "collect", "check_collect_size", "check_minari_dataset_id", "FORMAT", "VERSION"]

FORMAT = "mandril_envs.demos"
VERSION = 1
PathLike = Union[str, os.PathLike]

#: Minari metadata of exported datasets, by default. The project has no public address, so its
#: name and version stand for both the author and the code.
MINARI_AUTHOR = "the mandril project (mandril_envs)"
MINARI_AUTHOR_EMAIL = "none given (a mandril_envs export)"
MINARI_CODE_PERMALINK = f"mandril {__version__}: mandril_envs.dataset.DemoDataset.to_minari"
# Minari's naming rule, (env_name-)(dataset_name)(-v(version)), with the parts it needs to list a
# local store (Minari 0.4 parses every folder's name and fails on all of them if one has no version).
_MINARI_ID = re.compile(r"[A-Za-z0-9_]+-[A-Za-z0-9_.-]+?-v[0-9]+")


def check_minari_dataset_id(dataset_id: object) -> str:
    """``dataset_id`` if it follows Minari's naming rule ``env-dataset-vN``, else raise.

    ``env`` is letters, digits and ``_``; ``dataset`` is letters, digits, ``_``, ``.`` and ``-``; ``N``
    is a version number. Minari itself accepts more (no version) at write time, then cannot list or
    show any dataset of the store: a malformed id is refused here before anything is written.
    """
    if not isinstance(dataset_id, str):
        raise TypeError(f"dataset_id must be a string, got {type(dataset_id).__name__} {dataset_id!r:.80}")
    if not _MINARI_ID.fullmatch(dataset_id):
        raise ValueError(
            f"dataset_id must follow Minari's naming rule 'env-dataset-vN' (env: letters, digits, '_'; dataset: letters, "
            f"digits, '_', '.', '-'; N: a version number), e.g. 'gridworld-expert-v0', got {dataset_id!r:.120}"
        )
    return dataset_id


class DatasetError(ValueError):
    """A dataset file is corrupt, malformed or not the one expected; the message names the problem."""


def _progress(iterable: Iterable, total: int, description: str, enabled: bool) -> Iterable:
    """tqdm if installed (it is optional for mandril_envs), else a plain counter on stderr."""
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - exercised only without tqdm

        def plain() -> Iterable:
            for i, item in enumerate(iterable, 1):
                yield item
                if i == total or i % max(1, total // 20) == 0:
                    print(f"\r{description}: {i}/{total}", end="\n" if i == total else "", file=sys.stderr, flush=True)

        return plain()
    return tqdm(iterable, total=total, desc=description, unit="task")


@dataclass(frozen=True)
class DemoDataset:
    """Expert demos of ``N`` tasks, ``M`` demos each, ``H`` steps each.

    Attributes:
        env_id: the registered id the env was made from.
        tasks: ``N`` tasks (each carries its family config and parameters).
        expert: the expert settings.
        task_seed: the seed of the task stream.
        demo_seed: the seed of the demo rollouts (task ``n`` uses a seed derived from it and ``n``).
        states: ``(N, M, H+1)`` int64.
        actions: ``(N, M, H)`` int64.
        rewards: ``(N, M, H)`` float64.
    """

    env_id: str
    tasks: tuple[Task, ...]
    expert: ExpertSettings
    task_seed: int
    demo_seed: int
    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray

    @property
    def n_tasks(self) -> int:
        """``N``."""
        return int(self.states.shape[0])

    @property
    def n_demos(self) -> int:
        """``M``."""
        return int(self.states.shape[1])

    @property
    def horizon(self) -> int:
        """``H``."""
        return int(self.actions.shape[2])

    @property
    def family(self) -> str:
        """The task family."""
        return self.tasks[0].family if self.tasks else ""

    @property
    def split(self) -> str:
        """The split of the tasks."""
        return self.tasks[0].split if self.tasks else ""

    def make_env(self, index: int, **kwargs: Any) -> gym.Env:
        """``gym.make`` the env of task ``index`` with the task's exact config (extra kwargs such as
        ``obs_type`` or ``render_mode`` are passed on)."""
        task = self.tasks[check_int("index", index, 0, self.n_tasks - 1)]
        return gym.make(self.env_id, **{**task.config, **kwargs, "task": task.to_dict()})

    def trajectories(self, index: int, obs_type: str = "index") -> list[Trajectory]:
        """Task ``index``'s demos as :class:`Trajectory` objects with observations of ``obs_type``."""
        env = self.make_env(index, obs_type=obs_type).unwrapped
        assert isinstance(env, TabularTaskEnv)
        out = []
        for states, actions, rewards in zip(self.states[index], self.actions[index], self.rewards[index]):
            observations = np.asarray([env.observation(int(s)) for s in states])
            out.append(Trajectory(states.copy(), actions.copy(), rewards.copy(), observations))
        return out

    def episode_buffers(self, index: int, obs_type: str = "index") -> list[dict[str, np.ndarray]]:
        """Task ``index``'s demos as Minari episode buffers (``observations (H+1, ...)``,
        ``actions (H,)``, ``rewards (H,)``, ``terminations (H,)`` all False, ``truncations (H,)``
        True at the last step only)."""
        buffers = []
        for trajectory in self.trajectories(index, obs_type):
            truncations = np.zeros(self.horizon, bool)
            truncations[-1] = True
            buffers.append(
                {
                    "observations": trajectory.observations,
                    "actions": trajectory.actions,
                    "rewards": trajectory.rewards,
                    "terminations": np.zeros(self.horizon, bool),
                    "truncations": truncations,
                }
            )
        return buffers

    def to_minari(
        self,
        dataset_id: str,
        index: int,
        obs_type: str = "index",
        *,
        author: str = MINARI_AUTHOR,
        author_email: str = MINARI_AUTHOR_EMAIL,
        code_permalink: str = MINARI_CODE_PERMALINK,
    ) -> Any:
        """Task ``index``'s demos as a Minari dataset in the local Minari store (needs the ``minari`` extra).

        The env spec stored with it carries the task (its kwargs), so
        ``minari_dataset.recover_environment()`` rebuilds the exact true model; the same env is the
        evaluation env. Every metadata field Minari asks for is filled (no warnings, and
        ``minari show`` can describe it): ``author``, ``author_email`` and ``code_permalink`` default to
        the project's name and version (it has no public address; pass your own when you publish),
        ``minari_version`` to the installed Minari's ``~=X.Y``. The store is ``MINARI_DATASETS_PATH``
        (default ``~/.minari/datasets``); a dataset whose writing fails is removed, not left half written.

        Args:
            dataset_id: ``env-dataset-vN`` (:func:`check_minari_dataset_id`), not already in the store.
            index: the task.
            obs_type: the observations stored (any of the env's observation types).
            author, author_email, code_permalink: Minari metadata.

        Raises:
            ValueError: a malformed or taken ``dataset_id`` (before anything is written), a bad index.
            ImportError: Minari is not installed.
        """
        dataset_id = check_minari_dataset_id(dataset_id)
        index = check_int("index", index, 0, self.n_tasks - 1)
        for name, value in (("author", author), ("author_email", author_email), ("code_permalink", code_permalink)):
            if not isinstance(value, str) or not value.strip():
                raise TypeError(f"{name} must be a non-empty string, got {value!r}")
        try:
            import minari
            from minari.storage import get_dataset_path
        except ImportError:
            raise ImportError("to_minari needs Minari: pip install 'mandril[minari]'") from None
        root = Path(get_dataset_path(dataset_id))
        if root.exists():
            raise ValueError(f"dataset_id {dataset_id!r} is taken: a Minari dataset already exists at {str(root)!r}")
        env = self.make_env(index, obs_type=obs_type)
        buffers = self.episode_buffers(index, obs_type)
        release = minari.__version__.split(".")[:2]
        try:
            return minari.create_dataset_from_buffers(
                dataset_id,
                buffer=buffers,
                env=env,
                eval_env=env,
                algorithm_name=f"mandril_envs {self.expert.policy} expert (temperature {self.expert.temperature}, epsilon {self.expert.epsilon})",
                author=author,
                author_email=author_email,
                code_permalink=code_permalink,
                minari_version=f"~={'.'.join(release)}",
            )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    # --- file I/O --------------------------------------------------------------------------
    def _meta(self) -> dict:
        env = self.make_env(0).unwrapped if self.tasks else None
        return {
            "format": FORMAT,
            "version": VERSION,
            "env_id": self.env_id,
            "family": self.family,
            "split": self.split,
            "task_seed": self.task_seed,
            "demo_seed": self.demo_seed,
            "expert": {"policy": self.expert.policy, "temperature": self.expert.temperature, "epsilon": self.expert.epsilon},
            "horizon": self.horizon,
            "state_dim": env.state_dim if env is not None else 0,
            "action_dim": env.action_dim if env is not None else 0,
            "tasks": [task.to_dict() for task in self.tasks],
        }

    def save(self, path: PathLike) -> Path:
        """Write the dataset to ``path`` atomically (the file appears whole or not at all)."""
        meta = np.array(json.dumps(self._meta(), sort_keys=True))
        return atomic_write(path, lambda stream: np.savez_compressed(stream, meta=meta, states=self.states, actions=self.actions, rewards=self.rewards))

    @classmethod
    def load(
        cls,
        path: PathLike,
        *,
        env_id: Optional[str] = None,
        family: Optional[str] = None,
        split: Optional[str] = None,
        verify: bool = True,
    ) -> "DemoDataset":
        """Read and check a dataset file.

        Checks the format and version, the meta data, array shapes and dtypes, state and action
        ranges, finiteness of rewards, that the tasks rebuild (and are possible in their split), and
        (``verify``) that every recorded transition and reward could have happened in its task
        (:meth:`verify`). ``env_id``, ``family`` and ``split``, when given, must match the file.

        Raises:
            FileNotFoundError: no such file.
            DatasetError: naming the first problem found.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no dataset file at {str(path)!r}")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
            raise DatasetError(f"{path}: not a readable dataset file ({type(error).__name__}: {error})") from None
        for key in ("meta", "states", "actions", "rewards"):
            if key not in arrays:
                raise DatasetError(f"{path}: missing array {key!r} (found {sorted(arrays)})")
        try:
            meta = json.loads(str(arrays["meta"]))
        except json.JSONDecodeError as error:
            raise DatasetError(f"{path}: meta is not valid JSON: {error}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DatasetError(f"{path}: not a {FORMAT} file (format={meta.get('format') if isinstance(meta, dict) else meta!r})")
        if meta.get("version") != VERSION:
            raise DatasetError(f"{path}: format version {meta.get('version')!r} is not supported (this reader knows {VERSION})")
        required = ("env_id", "family", "split", "task_seed", "demo_seed", "expert", "horizon", "state_dim", "action_dim", "tasks")
        missing = [key for key in required if key not in meta]
        if missing:
            raise DatasetError(f"{path}: meta is missing {missing}")
        try:  # before anything reaches gym.make: an id of the form 'module:Env' would import that module
            check_env_id(meta["env_id"], f"{path}: env_id", allow=() if env_id is None else (env_id,))
        except (TypeError, ValueError) as error:
            raise DatasetError(str(error)) from None
        for name, expected in (("env_id", env_id), ("family", family), ("split", split)):
            if expected is not None and meta[name] != expected:
                raise DatasetError(f"{path}: {name} is {meta[name]!r}, expected {expected!r}")
        try:
            tasks = tuple(Task.from_dict(task) for task in meta["tasks"])
            expert = ExpertSettings(**meta["expert"])
        except (TypeError, ValueError) as error:
            raise DatasetError(f"{path}: bad task or expert entry: {error}") from None
        if any(task.family != meta["family"] or task.split != meta["split"] for task in tasks):
            raise DatasetError(f"{path}: tasks disagree with family {meta['family']!r} / split {meta['split']!r}")
        _check_tasks(path, meta["env_id"], tasks)
        states, actions, rewards = arrays["states"], arrays["actions"], arrays["rewards"]
        n, horizon = len(tasks), meta["horizon"]
        if states.ndim != 3 or actions.ndim != 3 or rewards.ndim != 3:
            raise DatasetError(f"{path}: states/actions/rewards must be 3-D, got {states.shape}, {actions.shape}, {rewards.shape}")
        m = states.shape[1]
        for name, array, shape in (("states", states, (n, m, horizon + 1)), ("actions", actions, (n, m, horizon)), ("rewards", rewards, (n, m, horizon))):
            if array.shape != shape:
                raise DatasetError(f"{path}: {name} has shape {array.shape}, expected {shape} (N tasks, M demos, H={horizon})")
        if not np.issubdtype(states.dtype, np.integer) or not np.issubdtype(actions.dtype, np.integer):
            raise DatasetError(f"{path}: states and actions must be integers, got {states.dtype} and {actions.dtype}")
        if not np.issubdtype(rewards.dtype, np.floating) or not np.all(np.isfinite(rewards)):
            raise DatasetError(f"{path}: rewards must be finite floats")
        if states.size and (states.min() < 0 or states.max() >= meta["state_dim"]):
            raise DatasetError(f"{path}: states must lie in [0, {meta['state_dim']}), got [{states.min()}, {states.max()}]")
        if actions.size and (actions.min() < 0 or actions.max() >= meta["action_dim"]):
            raise DatasetError(f"{path}: actions must lie in [0, {meta['action_dim']}), got [{actions.min()}, {actions.max()}]")
        dataset = cls(meta["env_id"], tasks, expert, meta["task_seed"], meta["demo_seed"], states.astype(np.int64), actions.astype(np.int64), rewards.astype(np.float64))
        if verify:
            dataset.verify(str(path))
        return dataset

    def verify(self, where: Optional[str] = None) -> list[str]:
        """Check every demo against its task's rebuilt true model; return what was verified, in words.

        Transitions: each recorded ``s -> s'`` under ``a`` has non-zero probability. Rewards: each
        recorded reward is one the family's ``step()`` could have returned there, judged by the
        family's :class:`~mandril_envs.reward_noise.RewardNoise` (exact for noiseless families such as
        GridWorld; 0/1 with the right support and a plausible count of ones for Bernoulli bandits;
        within 10 noise standard deviations, and not shifted, for Gaussian noise).

        Args:
            where: how to name the dataset in errors (its file, by default ``"dataset"``).

        Raises:
            DatasetError: naming the task, demo and step of the first demo that could not have happened.
        """
        where = where or "dataset"
        base = self.make_env(0).unwrapped
        assert isinstance(base, TabularTaskEnv)
        noise = base.reward_noise()
        for index, task in enumerate(self.tasks):
            try:
                base.set_task(task)
            except (TypeError, ValueError) as error:
                raise DatasetError(f"{where}: task {index} does not rebuild with env {self.env_id!r}: {error}") from None
            model = base.model
            if model.horizon != self.horizon:
                raise DatasetError(f"{where}: task {index}'s model has horizon {model.horizon}, the demos have {self.horizon} steps")
            for name, array, size in (("states", self.states[index], model.state_dim), ("actions", self.actions[index], model.action_dim)):
                if array.min() < 0 or array.max() >= size:
                    raise DatasetError(f"{where}: task {index}'s {name} must lie in [0, {size}) (its model's size), got [{array.min()}, {array.max()}]")
            s, a, s_next = self.states[index, :, :-1].ravel(), self.actions[index].ravel(), self.states[index, :, 1:].ravel()
            possible = ((model.successor_indices[s, a] == s_next[:, None]) & (model.successor_probs[s, a] > 0)).any(axis=1)
            if not possible.all():
                bad = int(np.flatnonzero(~possible)[0])
                raise DatasetError(
                    f"{where}: task {index} has a transition its model cannot produce: "
                    f"s={s[bad]}, a={a[bad]} -> s'={s_next[bad]} (demo {bad // self.horizon}, step {bad % self.horizon})"
                )
            found = noise.find_implausible(model.state_action_rewards()[s, a], self.rewards[index].ravel())
            if found is not None:
                bad, reason = found
                at = f"demo {bad // self.horizon}, step {bad % self.horizon} (s={s[bad]}, a={a[bad]})" if bad is not None else "its demos"
                raise DatasetError(f"{where}: task {index}, {at}: {reason}")
        return [
            f"transitions: every recorded s -> s' has non-zero probability under its task's rebuilt model ({self.n_tasks * self.n_demos * self.horizon} steps)",
            f"rewards: {noise.describe()}",
        ]


def _check_tasks(path: Path, env_id: str, tasks: tuple[Task, ...]) -> None:
    """Every task must be one the env installs: its config, parameters, and a split that can hold it."""
    if not tasks:
        raise DatasetError(f"{path}: the file holds no tasks")
    try:
        base = gym.make(env_id, **tasks[0].config).unwrapped
    except (gym.error.Error, TypeError, ValueError) as error:
        raise DatasetError(f"{path}: task 0's config does not make env {env_id!r}: {error}") from None
    if not isinstance(base, TabularTaskEnv):
        raise DatasetError(f"{path}: env {env_id!r} is not a mandril_envs env")
    for index, task in enumerate(tasks):
        try:
            base.check_task(task)
        except (TypeError, ValueError) as error:
            raise DatasetError(f"{path}: task {index} ({task.split} split) is refused: {error}") from None


def check_collect_size(env: gym.Env, n_tasks: int, n_demos: int, names: tuple[str, str] = ("n_tasks", "n_demos")) -> int:
    """Refuse a dataset of ``n_tasks x n_demos`` demos of ``env``'s family that would not fit in memory.

    Counts the dataset arrays, the ``N`` tasks' parameters and the expert's ``(H, S, A)`` plan
    (:mod:`mandril_envs.sizes`). ``names`` are how to name the two counts (the CLI says ``--tasks``).

    Returns:
        The estimate in bytes.

    Raises:
        ValueError: naming both counts, the estimate and the limit.
    """
    base = env.unwrapped
    if not isinstance(base, TabularTaskEnv):
        raise TypeError(f"env must be a mandril_envs env, got {type(base).__name__}")
    model = base.model
    shape = base._model_shape(base.config, base.obs_type)
    nbytes = dataset_nbytes(n_tasks, n_demos, model.horizon, shape.param_numbers if shape is not None else 0)
    nbytes += plan_nbytes(model.horizon, model.state_dim, model.action_dim)
    what = (
        f"{names[0]}={n_tasks}, {names[1]}={n_demos} of {base.family} (H={model.horizon}, S={model.state_dim}, A={model.action_dim}): "
        "the dataset arrays, the tasks and the expert's plan"
    )
    return check_fits(nbytes, what)


def collect(
    env_id: str,
    n_tasks: int,
    n_demos: int,
    split: str = "train",
    task_seed: int = 0,
    demo_seed: int = 0,
    expert: ExpertSettings = ExpertSettings(),
    env_kwargs: Optional[dict] = None,
    progress: bool = False,
) -> DemoDataset:
    """Sample ``n_tasks`` tasks of ``split`` and roll out ``n_demos`` expert demos of each.

    Args:
        env_id: a registered id, e.g. ``"mandril_envs/GridWorld-v0"``.
        n_tasks, n_demos: ``N`` and ``M``.
        split: ``"train"``, ``"test"`` (or ``"test_unseen"`` for GridWorld).
        task_seed: seed of the task stream (``sample_tasks(seed=task_seed)``).
        demo_seed: seed of the rollouts; task ``n`` uses ``SeedSequence([demo_seed, split, n])``.
        expert: the expert settings.
        env_kwargs: family config kwargs passed to ``gym.make``.
        progress: show a progress bar.
    """
    n_tasks = check_int("n_tasks", n_tasks, 1)
    n_demos = check_int("n_demos", n_demos, 1)
    env = gym.make(env_id, **(env_kwargs or {}))
    base = env.unwrapped
    if not isinstance(base, TabularTaskEnv):
        raise TypeError(f"env_id {env_id!r} is not a mandril_envs env")
    check_collect_size(env, n_tasks, n_demos)  # before any task is drawn
    tasks = base.sample_tasks(n_tasks, split, seed=task_seed)
    horizon = base.model.horizon
    states = np.empty((n_tasks, n_demos, horizon + 1), np.int64)
    actions = np.empty((n_tasks, n_demos, horizon), np.int64)
    rewards = np.empty((n_tasks, n_demos, horizon), np.float64)
    for i in _progress(range(n_tasks), n_tasks, f"demos {env_id} {split}", progress):
        base.set_task(tasks[i])
        seed = int(np.random.SeedSequence([demo_seed, SPLIT_CODES[split], i]).generate_state(1)[0])
        for j, trajectory in enumerate(rollout(env, expert_policy(env, expert), n_demos, seed)):
            states[i, j], actions[i, j], rewards[i, j] = trajectory.states, trajectory.actions, trajectory.rewards
    return DemoDataset(env_id, tuple(tasks), expert, task_seed, demo_seed, states, actions, rewards)
