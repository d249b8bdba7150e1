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
import struct
import sys
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import gymnasium as gym
import numpy as np

from mandril_envs import __version__
from mandril_envs.atomic import atomic_write
from mandril_envs.base import TabularTaskEnv
from mandril_envs.demos import ExpertSettings, Trajectory, task_demos
from mandril_envs.env_settings import check_env_id_config, make_env
from mandril_envs.files import check_regular_file, parse_json
from mandril_envs.model import TabularModel
from mandril_envs.registration import check_env_id
from mandril_envs.sizes import check_fits, dataset_nbytes, plan_nbytes
from mandril_envs.tasks import Task, plain_differences
from mandril_envs.validation import check_int

__all__ = ["DemoDataset", "DatasetError", "collect", "check_collect_size", "check_minari_dataset_id", "FORMAT", "VERSION"]

#: The ``format`` field of every dataset file this module writes (a file with another is refused).
FORMAT = "mandril_envs.demos"
#: The format version this module writes and reads.
VERSION = 1
PathLike = Union[str, os.PathLike]

#: Minari metadata of exported datasets, by default. The project has no public address, so its
#: name and version stand for both the author and the code.
MINARI_AUTHOR = "the mandril project (mandril_envs)"
MINARI_AUTHOR_EMAIL = "none given (a mandril_envs export)"
MINARI_CODE_PERMALINK = f"mandril {__version__}: mandril_envs.dataset.DemoDataset.to_minari"
# Minari's naming rule, (env_name-)(dataset_name)(-v(version)), with the parts it needs to list a
# local store (Minari 0.4 parses every folder's name and fails on all of them if one has no version),
# and only characters both 0.4 and 0.5 accept (0.5 refuses '.').
_MINARI_ID = re.compile(r"[A-Za-z0-9_]+-[A-Za-z0-9_-]+?-v[0-9]+")


def check_minari_dataset_id(dataset_id: object) -> str:
    """``dataset_id`` if it follows Minari's naming rule ``env-dataset-vN``, else raise.

    ``env`` is letters, digits and ``_``; ``dataset`` is letters, digits, ``_`` and ``-``; ``N`` is a
    version number: ids that Minari 0.4 and 0.5 both read. Minari 0.4 accepts more (no version) at
    write time, then cannot list or show any dataset of the store: a malformed id is refused here
    before anything is written.
    """
    if not isinstance(dataset_id, str):
        raise TypeError(f"dataset_id must be a string, got {type(dataset_id).__name__} {dataset_id!r:.80}")
    if not _MINARI_ID.fullmatch(dataset_id):
        raise ValueError(
            f"dataset_id must follow Minari's naming rule 'env-dataset-vN' (env: letters, digits, '_'; dataset: letters, "
            f"digits, '_', '-'; N: a version number), e.g. 'gridworld-expert-v0', got {dataset_id!r:.120}"
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

    def episode_buffers(self, index: int, obs_type: str = "index") -> list[dict[str, Any]]:
        """Task ``index``'s demos as Minari episode buffers, one dict per demo: ``observations (H+1, ...)``,
        ``actions (H,)``, ``rewards (H,)``, ``terminations (H,)`` all False, ``truncations (H,)``
        True at the last step only, and ``infos`` as the env reports them, ``{"state": (H+1,) int64,
        "t": (H+1,) int64}`` (the state indices whatever the observation type). Minari 0.4 takes these
        dicts; :meth:`to_minari` turns them into Minari 0.5's ``EpisodeBuffer`` where that is what it takes."""
        buffers = []
        steps = np.arange(self.horizon + 1, dtype=np.int64)
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
                    "infos": {"state": trajectory.states.astype(np.int64), "t": steps.copy()},
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

        Works with Minari 0.4.3 (gymnasium 0.29) and 0.5.x (gymnasium 1.x): what the installed
        Minari takes is read from its signature (:mod:`mandril_envs.minari_export`). The env spec
        stored with it carries the task (its kwargs), so ``minari_dataset.recover_environment()``
        rebuilds the exact true model; the same env is the evaluation env. Each episode's ``infos``
        hold the state indices and time steps (``{"state": (H+1,), "t": (H+1,)}``). Every metadata
        field Minari asks for is filled (no warnings): ``author``, ``author_email`` and
        ``code_permalink`` default to the project's name and version (it has no public address; pass
        your own when you publish); Minari 0.4 gets ``minari_version`` ``~=X.Y`` of the installed
        Minari, 0.5 a ``description`` and the ``requirements`` (``mandril>=`` this version). On 0.5
        ``minari show DATASET_ID`` describes it; 0.4.3's ``minari show`` fails on every local dataset
        (its own bug). The store is ``MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``); a
        dataset whose writing fails is removed, not left half written.

        Args:
            dataset_id: ``env-dataset-vN`` (:func:`check_minari_dataset_id`), not already in the store.
            index: the task.
            obs_type: the observations stored (any of the env's observation types).
            author, author_email, code_permalink: Minari metadata.

        Raises:
            ValueError: a malformed or taken ``dataset_id`` (before anything is written), a bad index.
            ImportError: Minari is not installed.
        """
        from mandril_envs import minari_export

        dataset_id = check_minari_dataset_id(dataset_id)
        index = check_int("index", index, 0, self.n_tasks - 1)
        for name, value in (("author", author), ("author_email", author_email), ("code_permalink", code_permalink)):
            if not isinstance(value, str) or not value.strip():
                raise TypeError(f"{name} must be a non-empty string, got {value!r}")
        minari = minari_export.import_minari()
        from minari.storage import get_dataset_path

        root = Path(get_dataset_path(dataset_id))
        if root.exists():
            raise ValueError(f"dataset_id {dataset_id!r} is taken: a Minari dataset already exists at {str(root)!r}")
        expert = f"mandril_envs {self.expert.policy} expert (temperature {self.expert.temperature}, epsilon {self.expert.epsilon})"
        task = self.tasks[index]
        description = (
            f"{self.n_demos} demos of {self.horizon} steps by the {expert} on task {task.split}/{task.index} (task seed "
            f"{task.seed}) of {self.env_id}, written by mandril {__version__} (mandril_envs.dataset.DemoDataset.to_minari). "
            "The env spec's kwargs carry the task, so recover_environment() rebuilds its exact model; infos['state'] "
            "holds the state indices."
        )
        release = ".".join(minari.__version__.split(".")[:2])
        return minari_export.create_dataset(
            dataset_id,
            self.episode_buffers(index, obs_type),
            self.make_env(index, obs_type=obs_type),
            {"algorithm_name": expert, "author": author, "author_email": author_email, "code_permalink": code_permalink},
            {"minari_version": f"~={release}", "description": description, "requirements": [f"mandril>={__version__}"]},
        )

    def to_imitation(self, index: int, obs_type: str = "index") -> list[Any]:
        """Task ``index``'s demos as imitation ``TrajectoryWithRew`` objects (needs imitation installed).

        Each is :meth:`Trajectory.to_imitation` of a demo: observations of ``obs_type`` (``(H+1, ...)``),
        actions, rewards, ``terminal=False`` (episodes are truncated at the horizon). With the default
        ``"index"`` observations they are what imitation's ``MCEIRL`` counts states from; with
        ``self.make_env(index).unwrapped`` as its env it runs on the task's exact model.
        """
        index = check_int("index", index, 0, self.n_tasks - 1)
        return [trajectory.to_imitation() for trajectory in self.trajectories(index, obs_type)]

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

        Checks, in order and before anything large is allocated: that the path is a regular file
        (a FIFO or a device is refused before ``open()``); that it is a zip (``.npz``) archive of
        exactly the four arrays, their dtypes, and that their declared sizes are what their
        compressed bytes can hold (stored, or deflated at most 1032-fold) and fit in memory; the
        meta data (format, version, every field's type, JSON nested at most 32 deep); the demo
        arrays' declared shapes against the meta data's tasks and horizon; the env id (a registered
        ``mandril_envs/`` id that makes the tasks' family and whose registered kwargs their config
        agrees with, before anything reaches ``gym.make``); that every task rebuilds with one family
        config and is possible in its split; array ranges; finite rewards; and (``verify``) that
        every recorded transition and reward could have happened in its task (:meth:`verify`).
        ``env_id``, ``family`` and ``split``, when given, must match the file.

        Raises:
            OSError: the file cannot be read: ``FileNotFoundError`` (no such file),
                ``IsADirectoryError``, ``PermissionError``.
            DatasetError: naming the file and the first problem found, in one line.
        """
        path = Path(path)
        arrays, meta = _read_arrays(path)
        try:  # before anything reaches gym.make: an id of the form 'module:Env' would import that module
            check_env_id(meta["env_id"], f"{path}: env_id", allow=() if env_id is None else (env_id,))
        except (TypeError, ValueError) as error:
            raise DatasetError(str(error)) from None
        for name, expected in (("env_id", env_id), ("family", family), ("split", split)):
            if expected is not None and meta[name] != expected:
                raise DatasetError(f"{path}: {name} is {meta[name]!r}, expected {expected!r}")
        tasks = _read_tasks(path, meta)
        try:
            expert = ExpertSettings(**meta["expert"])
        except (TypeError, ValueError) as error:
            raise DatasetError(f"{path}: meta['expert'] is refused: {error}") from None
        model = _rebuild_tasks(path, meta, tasks)
        states, actions, rewards = _check_arrays(path, arrays, len(tasks), model)
        dataset = cls(meta["env_id"], tasks, expert, meta["task_seed"], meta["demo_seed"], states, actions, rewards)
        if verify:
            dataset.verify(str(path))
        return dataset

    def verify(self, where: Optional[str] = None) -> list[str]:
        """Check every demo against its task's rebuilt true model; return what was verified, in words.

        Transitions: each recorded ``s -> s'`` under ``a`` has non-zero probability. Rewards: each
        recorded reward is one the family's ``step()`` could have returned there, judged by the
        family's :class:`~mandril_envs.reward_noise.RewardNoise` (exact for noiseless families such as
        GridWorld; 0/1 with the right support and a plausible count of ones for Bernoulli bandits;
        within 10 noise standard deviations, and not shifted, for Gaussian noise), and the sums of
        the rewards per state-action pair (arm) of each task, per task and of the whole dataset
        pass Chernoff tail bounds at a false-alarm rate below 1e-9 for the whole file
        (:meth:`RewardNoise.find_implausible_sums <mandril_envs.reward_noise.RewardNoise.find_implausible_sums>`).

        Args:
            where: how to name the dataset in errors (its file, by default ``"dataset"``).

        Raises:
            DatasetError: naming the task, demo and step of the first demo that could not have happened.
        """
        where = where or "dataset"
        base = self.make_env(0).unwrapped
        assert isinstance(base, TabularTaskEnv)
        noise = base.reward_noise()
        n_sums = self.n_tasks * (base.model.state_dim * base.model.action_dim + 1) + 1  # per pair, per task, the dataset: the Bonferroni divisor
        totals = np.zeros(3)  # pulls, expected, observed of the whole dataset (RewardNoise.group_sums)
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
            means, rewards = model.state_action_rewards()[s, a], self.rewards[index].ravel()
            found = noise.find_implausible_group(means, rewards, s * model.action_dim + a, n_sums)
            if found is not None:
                pair, reason = found
                raise DatasetError(f"{where}: task {index}, s={pair // model.action_dim}, a={pair % model.action_dim}: {reason}")
            sums = np.concatenate(noise.group_sums(means, rewards, np.zeros(s.size, np.int64), 1))
            found = noise.find_implausible_sums(*sums, n_sums)
            if found is not None:
                raise DatasetError(f"{where}: task {index}, its demos: {found[1]}")
            totals += sums
        found = noise.find_implausible_sums(*totals, n_sums)
        if found is not None:
            raise DatasetError(f"{where}: the rewards of all {self.n_tasks} tasks: {found[1]}")
        return [
            f"transitions: every recorded s -> s' has non-zero probability under its task's rebuilt model ({self.n_tasks * self.n_demos * self.horizon} steps)",
            f"rewards: {noise.describe()}",
        ]


# --- reading a dataset file: each step names the file and the problem in one line ------------
_ARRAYS: dict[str, tuple[str, str]] = {  # name -> (dtype kinds allowed, what they are)
    "meta": ("U", "a unicode string"),
    "states": ("iu", "integers"),
    "actions": ("iu", "integers"),
    "rewards": ("f", "floats"),
}
# What reading a damaged archive or .npy member can raise (zlib: a damaged deflate stream;
# NotImplementedError: an unknown compression method; RuntimeError: a member flagged as encrypted;
# TokenError / SyntaxError: numpy parsing a damaged .npy header; struct.error: a short zip record).
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError, OverflowError,
    tokenize.TokenError, SyntaxError, struct.error,
)
_META_TYPES: dict[str, tuple[type, str]] = {
    "format": (str, "a string"),
    "version": (int, "an int"),
    "env_id": (str, "a string"),
    "family": (str, "a string"),
    "split": (str, "a string"),
    "task_seed": (int, "an int >= 0"),
    "demo_seed": (int, "an int >= 0"),
    "expert": (dict, "an object with keys ['epsilon', 'policy', 'temperature']"),
    "horizon": (int, "an int >= 1"),
    "state_dim": (int, "an int >= 1"),
    "action_dim": (int, "an int >= 1"),
    "tasks": (list, "a non-empty list of tasks"),
}
_META_MINIMUM = {"task_seed": 0, "demo_seed": 0, "horizon": 1, "state_dim": 1, "action_dim": 1}


def _check_declared_shapes(path: Path, shapes: dict[str, tuple[int, ...]], n_tasks: int, horizon: int) -> None:
    """Before the demo arrays are read: their declared shapes must be ``(N, M, H+1)``, ``(N, M, H)``,
    ``(N, M, H)`` for the meta data's ``N`` tasks and horizon ``H``, one ``M >= 1`` for all three."""
    m = shapes["states"][1] if len(shapes["states"]) == 3 else 0
    expected = {"states": (n_tasks, m, horizon + 1), "actions": (n_tasks, m, horizon), "rewards": (n_tasks, m, horizon)}
    for name, shape in expected.items():
        if tuple(shapes[name]) != shape:
            raise DatasetError(f"{path}: {name} declares shape {tuple(shapes[name])}, expected {shape} (N={n_tasks} tasks in meta, M demos, H={horizon})")
    if m == 0:
        raise DatasetError(f"{path}: the file holds no demos (M = 0)")


def _read_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The demo arrays and the meta data of a dataset file: every array's dtype and declared size are
    checked (against its compressed bytes and the memory) and the demo arrays' shapes against the meta
    data, all before any demo array is read."""
    try:
        check_regular_file(path, "dataset")  # a FIFO or a device would block open() or never end
    except ValueError as error:
        raise DatasetError(str(error)) from None
    with open(path, "rb") as stream:  # OSError: missing, a directory, no permission
        head = stream.read(12)
        if head[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
            start = f"it starts with {head!r}" if head else "it is empty"
            raise DatasetError(f"{path}: not a dataset file: not a zip (.npz) archive ({start})")
        stream.seek(0)
        try:
            with zipfile.ZipFile(stream) as archive:
                infos = archive.infolist()
                members = {info.filename: info for info in infos}
                names = sorted(name[:-4] if name.endswith(".npy") else name for name in members)
                twice = sorted({info.filename for info in infos if [i.filename for i in infos].count(info.filename) > 1})
                if twice:
                    raise DatasetError(f"{path}: the archive holds {twice} more than once (a dataset file holds each array once)")
                for key in _ARRAYS:
                    if f"{key}.npy" not in members:
                        raise DatasetError(f"{path}: missing array {key!r} (found {names})")
                unexpected = sorted(set(names) - set(_ARRAYS))
                if unexpected or len(members) != len(_ARRAYS):
                    raise DatasetError(f"{path}: unexpected arrays {unexpected or names} (a dataset file holds exactly {sorted(_ARRAYS)})")
                size = os.fstat(stream.fileno()).st_size
                headers = {key: _member_header(path, archive, members[f"{key}.npy"], key, size) for key in _ARRAYS}
                meta = _read_meta(path, _read_member(path, archive, members["meta.npy"], "meta", *headers["meta"]))
                _check_declared_shapes(path, {key: shape for key, (shape, _) in headers.items()}, len(meta["tasks"]), meta["horizon"])
                arrays = {key: _read_member(path, archive, members[f"{key}.npy"], key, *headers[key]) for key in _ARRAYS if key != "meta"}
                return arrays, meta
        except DatasetError:
            raise
        except _ARCHIVE_ERRORS as error:
            raise DatasetError(f"{path}: not a readable dataset file: the zip archive is damaged or truncated ({type(error).__name__}: {error})") from None


#: The most deflate can expand data (258-byte matches from 2-bit codes: 1032 to 1, RFC 1951).
MAX_DEFLATE_RATIO = 1032


def _member_header(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, archive_bytes: int) -> tuple[tuple[int, ...], np.dtype]:
    """A member's declared ``(shape, dtype)``, checked against its kind and against what its bytes can hold."""
    kinds, what = _ARRAYS[key]
    try:
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f".npy format version {version} is not one numpy writes for a dataset")
            header_bytes = member.tell()
    except _ARCHIVE_ERRORS as error:
        raise DatasetError(f"{path}: array {key!r} is not a readable .npy array ({type(error).__name__}: {error})") from None
    if dtype.hasobject:
        raise DatasetError(f"{path}: array {key!r} holds Python objects (pickled data), which a dataset never does; it must hold {what}")
    if dtype.kind not in kinds or (key == "meta" and shape != ()):
        raise DatasetError(f"{path}: array {key!r} must hold {what}{' (0-d)' if key == 'meta' else ''}, got dtype {dtype} shape {shape}")
    if any(n < 0 for n in shape):
        raise DatasetError(f"{path}: array {key!r} declares a negative shape {shape}")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > info.file_size - header_bytes:
        raise DatasetError(f"{path}: array {key!r} declares shape {shape} ({nbytes} bytes) but holds {info.file_size - header_bytes} bytes")
    # what the member declares must be what its compressed bytes can hold: numpy stores or deflates, and
    # deflate expands at most MAX_DEFLATE_RATIO-fold, so a small file cannot make the reader allocate much more
    ceiling = info.compress_size if info.compress_type == zipfile.ZIP_STORED else MAX_DEFLATE_RATIO * info.compress_size + 1024
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.file_size > ceiling or info.compress_size > archive_bytes:
        raise DatasetError(
            f"{path}: array {key!r} declares {info.file_size} bytes from {info.compress_size} compressed ones (method {info.compress_type}) "
            f"in a file of {archive_bytes}: more than stored or deflated data can hold (deflate expands at most {MAX_DEFLATE_RATIO}-fold)"
        )
    return shape, dtype


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    try:
        check_fits(nbytes, f"{path}: array {key!r} of shape {shape} {dtype}")
        with archive.open(info) as member:
            return np.lib.format.read_array(member, allow_pickle=False)
    except _ARCHIVE_ERRORS as error:
        raise DatasetError(f"{path}: array {key!r} is damaged ({type(error).__name__}: {error})") from None


def _read_meta(path: Path, array: np.ndarray) -> dict:
    """The meta JSON, with every field of the right type."""
    try:
        meta = parse_json(str(array[()]), f"{path}: meta")
    except ValueError as error:
        raise DatasetError(str(error)) from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: meta must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{path}: not a {FORMAT} file (meta['format'] is {meta.get('format')!r:.80})")
    if meta.get("version") != VERSION or isinstance(meta.get("version"), bool):
        raise DatasetError(f"{path}: format version {meta.get('version')!r:.80} is not supported (this reader knows {VERSION})")
    missing = [key for key in _META_TYPES if key not in meta]
    if missing:
        raise DatasetError(f"{path}: meta is missing {missing}")
    unknown = sorted(set(meta) - set(_META_TYPES))
    if unknown:
        raise DatasetError(f"{path}: meta has unknown keys {unknown} (allowed: {sorted(_META_TYPES)})")
    for key, (kind, what) in _META_TYPES.items():
        value = meta[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < _META_MINIMUM.get(key, value)):
            raise DatasetError(f"{path}: meta[{key!r}] must be {what}, got {type(value).__name__} {value!r:.80}")
    if not meta["tasks"]:
        raise DatasetError(f"{path}: meta['tasks'] is empty: a dataset holds at least one task")
    if set(meta["expert"]) != {"epsilon", "policy", "temperature"}:
        raise DatasetError(f"{path}: meta['expert'] must have exactly the keys ['epsilon', 'policy', 'temperature'], got {sorted(meta['expert'])}")
    return meta


def _read_tasks(path: Path, meta: dict) -> tuple[Task, ...]:
    tasks = []
    for index, data in enumerate(meta["tasks"]):
        try:
            task = Task.from_dict(data)
        except (TypeError, ValueError) as error:
            raise DatasetError(f"{path}: meta['tasks'][{index}] is not a task: {error}") from None
        if task.family != meta["family"] or task.split != meta["split"]:
            raise DatasetError(
                f"{path}: task {index} is a {task.family!r} task of split {task.split!r}, but meta says family {meta['family']!r}, split {meta['split']!r}"
            )
        diff = plain_differences(task.config, tasks[0].config) if tasks else []
        if diff:
            raise DatasetError(f"{path}: task {index}'s config differs from task 0's in {diff}: a dataset holds tasks of one family config")
        tasks.append(task)
    return tuple(tasks)


def _rebuild_tasks(path: Path, meta: dict, tasks: tuple[Task, ...]) -> TabularModel:
    """Make the env of the tasks' config; every task must be one it installs (its split can hold it).
    Returns task 0's model; the file's (S, A, H) must be the model's."""
    try:  # the id must make the tasks' family (then, once the config is known valid, agree with it)
        check_env_id_config(meta["env_id"], tasks[0].family, {}, f"{path}: env_id")
    except ValueError as error:
        raise DatasetError(str(error)) from None
    try:
        base = gym.make(meta["env_id"], **tasks[0].config, task=tasks[0].to_dict()).unwrapped
    except (gym.error.Error, TypeError, ValueError) as error:
        raise DatasetError(f"{path}: task 0 ({tasks[0].split} split) is refused: {error}") from None
    try:  # an id edited to another variant of the family (Bandit-K50-v0 for 5-arm tasks) is refused
        check_env_id_config(meta["env_id"], tasks[0].family, tasks[0].config, f"{path}: env_id")
    except ValueError as error:
        raise DatasetError(str(error)) from None
    if not isinstance(base, TabularTaskEnv):
        raise DatasetError(f"{path}: env {meta['env_id']!r} is not a mandril_envs env")
    for index, task in enumerate(tasks):
        try:
            base.check_task(task)
        except (TypeError, ValueError) as error:
            raise DatasetError(f"{path}: task {index} ({task.split} split) is refused: {error}") from None
    model = base.model
    declared = (meta["state_dim"], meta["action_dim"], meta["horizon"])
    if (model.state_dim, model.action_dim, model.horizon) != declared:
        raise DatasetError(f"{path}: meta says (S, A, H) = {declared}, but its tasks' model has {(model.state_dim, model.action_dim, model.horizon)}")
    return model


def _check_arrays(path: Path, arrays: dict[str, np.ndarray], n_tasks: int, model: TabularModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shapes ``(N, M, H+1)``, ``(N, M, H)``, ``(N, M, H)`` with ``M >= 1``; ranges; finite rewards."""
    states, actions, rewards = arrays["states"], arrays["actions"], arrays["rewards"]
    horizon = model.horizon
    if states.ndim != 3 or actions.ndim != 3 or rewards.ndim != 3:
        raise DatasetError(f"{path}: states/actions/rewards must be 3-D, got shapes {states.shape}, {actions.shape}, {rewards.shape}")
    m = states.shape[1]
    for name, array, shape in (("states", states, (n_tasks, m, horizon + 1)), ("actions", actions, (n_tasks, m, horizon)), ("rewards", rewards, (n_tasks, m, horizon))):
        if array.shape != shape:
            raise DatasetError(f"{path}: {name} has shape {array.shape}, expected {shape} (N tasks, M demos, H={horizon})")
    if m == 0:
        raise DatasetError(f"{path}: the file holds no demos (M = 0)")
    for name, array, size in (("states", states, model.state_dim), ("actions", actions, model.action_dim)):
        if array.min() < 0 or array.max() >= size:
            raise DatasetError(f"{path}: {name} must lie in [0, {size}), got [{array.min()}, {array.max()}]")
    if not np.all(np.isfinite(rewards)):
        raise DatasetError(f"{path}: rewards must be finite, got NaN or inf")
    return states.astype(np.int64, copy=False), actions.astype(np.int64, copy=False), rewards.astype(np.float64, copy=False)


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
        demo_seed: the demo stream: each task's demos come from :func:`mandril_envs.demos.task_demos`
            (seeded by the task's identity), the one seeding function of datasets, the benchmark and ``mandril adapt``.
        expert: the expert settings.
        env_kwargs: family config kwargs passed to ``gym.make``.
        progress: show a progress bar.
    """
    n_tasks = check_int("n_tasks", n_tasks, 1)
    n_demos = check_int("n_demos", n_demos, 1)
    env = make_env(env_id, env_kwargs, "env_kwargs", trusted_ids=(env_id,))  # no wrapper that would corrupt the demos (autoreset, an early TimeLimit)
    base = env.unwrapped
    check_env_id_config(env_id, base.family, base.config, "env_id")  # the file's id must describe its tasks
    check_collect_size(env, n_tasks, n_demos)  # before any task is drawn
    tasks = base.sample_tasks(n_tasks, split, seed=task_seed)
    horizon = base.model.horizon
    states = np.empty((n_tasks, n_demos, horizon + 1), np.int64)
    actions = np.empty((n_tasks, n_demos, horizon), np.int64)
    rewards = np.empty((n_tasks, n_demos, horizon), np.float64)
    for i in _progress(range(n_tasks), n_tasks, f"demos {env_id} {split}", progress):
        base.set_task(tasks[i])
        states[i], actions[i], rewards[i] = task_demos(env, n_demos, demo_seed, expert)
    return DemoDataset(env_id, tuple(tasks), expert, task_seed, demo_seed, states, actions, rewards)
