"""Where IRL methods get their tasks and demos: reward-model inputs, meta-batches, task sources.

A :class:`MetaBatch` is what one meta-iteration (or one fine-tuning step) consumes: the dynamics of
``B`` tasks as a :class:`mandril.planning.TaskBatch`, each task's reward-model input, and the
empirical visitation of a training set of ``K`` demos and a disjoint test set of ``K'`` demos.

Two sources make them, with explicit ``numpy.random.Generator`` draws (so a checkpointed generator
state resumes the exact same stream):

* :class:`DatasetSource`: a fixed pool of tasks with ``M`` demos each (a
  :class:`mandril_envs.dataset.DemoDataset`); each draw picks ``B`` tasks and splits their demos
  at random into ``K`` train and ``K'`` test demos.
* :class:`GeneratedSource`: fresh tasks from the env's train split on every draw, with expert
  demos rolled out through the env (``mandril_envs.demos``) on the fly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional, Protocol, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from mandril.planning import TaskBatch, empirical_visitation
from mandril_envs.base import TabularTaskEnv
from mandril_envs.dataset import DemoDataset
from mandril_envs.demos import ExpertSettings, Trajectory, expert_policy, rollout
from mandril_envs.model import TabularModel

__all__ = ["INPUT_KINDS", "task_inputs", "MetaBatch", "TaskSource", "DatasetSource", "GeneratedSource", "demo_visitation"]

#: What a reward model reads of a task: its feature matrix ``(S, F)``, its map features
#: ``(F, N, N)`` (GridWorld) or its map image ``(3, 5N, 5N)`` in [0, 1] (GridWorld, no agent).
INPUT_KINDS = ("features", "map", "rgb")


def task_inputs(env: gym.Env, kind: str) -> np.ndarray:
    """The reward-model input of the env's current task (``env.unwrapped.reward_input(kind)``; see :data:`INPUT_KINDS`)."""
    base = env.unwrapped
    if not isinstance(base, TabularTaskEnv):
        raise TypeError(f"env must be a mandril_envs env, got {type(base).__name__}")
    if kind not in INPUT_KINDS:
        raise ValueError(f"input kind must be one of {list(INPUT_KINDS)}, got {kind!r}")
    if kind not in base.reward_input_kinds:
        raise ValueError(f"input kind {kind!r} is not offered by family {base.family!r}: it offers {list(base.reward_input_kinds)}")
    return base.reward_input(kind)


def demo_visitation(model: TabularModel, states: np.ndarray, actions: np.ndarray, state_action: bool = False) -> np.ndarray:
    """``mu_D`` of demos given as arrays ``states (M, H+1)``, ``actions (M, H)`` (checked by
    :func:`mandril.planning.empirical_visitation`)."""
    states, actions = np.asarray(states), np.asarray(actions)
    if states.ndim != 2 or actions.ndim != 2:
        raise ValueError(f"demos must be states (M, H+1) and actions (M, H), got shapes {states.shape} and {actions.shape}")
    if len(states) != len(actions):
        raise ValueError(f"demo sets disagree: {len(states)} state sequences but {len(actions)} action sequences")
    if states.shape[1] != actions.shape[1] + 1:
        raise ValueError(f"demos must be states (M, H+1) and actions (M, H), got shapes {states.shape} and {actions.shape}")
    demos = [Trajectory(s, a, np.zeros(a.shape[0]), s) for s, a in zip(states, actions)]
    return empirical_visitation(model, demos, state_action=state_action)


@dataclass(frozen=True)
class MetaBatch:
    """``B`` tasks ready for the kernels.

    Attributes:
        tasks: the dynamics, a :class:`TaskBatch` of ``B`` tasks.
        models: the ``B`` true models (for scoring).
        inputs: ``(B, ...)`` reward-model inputs.
        train_visitation: ``(B, S)`` (or ``(B, S, A)``) empirical visitation of the ``K`` train demos.
        test_visitation: the same for the ``K'`` test demos (``None`` when there are none).
        train_start: ``(B, S)`` empirical distribution of the train demos' first states.
        test_start: the same for the test demos (``None`` when there are none).
    """

    tasks: TaskBatch
    models: tuple[TabularModel, ...]
    inputs: Tensor
    train_visitation: Tensor
    test_visitation: Optional[Tensor]
    train_start: Tensor
    test_start: Optional[Tensor]

    def tasks_from(self, start: Tensor) -> TaskBatch:
        """The batch's dynamics with ``start (B, S)`` as the initial-state distribution (e.g. the demos' own)."""
        t = self.tasks
        return TaskBatch(t.successor_indices, t.successor_probs, start.to(t.dtype), t.horizon, t.layout)

    @cached_property
    def train_tasks(self) -> TaskBatch:
        """The dynamics started from the train demos' first states (built once per batch, reused by every inner step)."""
        return self.tasks_from(self.train_start)

    @cached_property
    def test_tasks(self) -> TaskBatch:
        """The dynamics started from the test demos' first states."""
        if self.test_start is None:
            raise ValueError("this batch has no test demos")
        return self.tasks_from(self.test_start)


def make_batch(
    models: Sequence[TabularModel],
    inputs: Sequence[np.ndarray],
    train: Sequence[tuple[np.ndarray, np.ndarray]],
    test: Optional[Sequence[tuple[np.ndarray, np.ndarray]]] = None,
    state_action: bool = False,
    dtype: torch.dtype = torch.float64,
) -> MetaBatch:
    """Assemble a :class:`MetaBatch` from per-task models, inputs and ``(states, actions)`` demo arrays."""
    if not (len(models) == len(inputs) == len(train)) or (test is not None and len(test) != len(models)):
        raise ValueError(f"mismatched batch: {len(models)} models, {len(inputs)} inputs, {len(train)} train demo sets" + ("" if test is None else f", {len(test)} test demo sets"))
    tasks = TaskBatch.from_models(models, dtype=dtype)
    n_states = tasks.n_states

    def visitation(demo_sets: Sequence[tuple[np.ndarray, np.ndarray]]) -> Tensor:
        return torch.as_tensor(np.stack([demo_visitation(m, s, a, state_action) for m, (s, a) in zip(models, demo_sets)]), dtype=dtype)

    def starts(demo_sets: Sequence[tuple[np.ndarray, np.ndarray]]) -> Tensor:
        return torch.as_tensor(np.stack([np.bincount(np.asarray(s)[:, 0], minlength=n_states) / len(s) for s, _ in demo_sets]), dtype=dtype)

    return MetaBatch(
        tasks,
        tuple(models),
        torch.as_tensor(np.stack(inputs), dtype=dtype),
        visitation(train),
        None if test is None else visitation(test),
        starts(train),
        None if test is None else starts(test),
    )


class TaskSource(Protocol):
    """Anything that draws meta-batches with an explicit generator."""

    def sample(self, batch_size: int, n_train: int, n_test: int, rng: np.random.Generator) -> MetaBatch: ...


class DatasetSource:
    """A fixed pool of tasks with their demos (a :class:`DemoDataset`).

    Args:
        dataset: the pool; every task needs at least ``n_train + n_test`` demos.
        input_kind: what the reward model reads (:data:`INPUT_KINDS`).
        state_action: count state-action visitation (for state-action reward models).
        dtype: torch dtype of the batches.
    """

    def __init__(self, dataset: DemoDataset, input_kind: str = "features", state_action: bool = False, dtype: torch.dtype = torch.float64) -> None:
        if dataset.n_tasks == 0:
            raise ValueError("dataset has no tasks")
        env = dataset.make_env(0)
        base = env.unwrapped
        self.dataset = dataset
        self.models: list[TabularModel] = []
        self.inputs: list[np.ndarray] = []
        for task in dataset.tasks:
            base.set_task(task)
            self.models.append(base.model)
            self.inputs.append(task_inputs(env, input_kind))
        self.state_action = state_action
        self.dtype = dtype

    def sample(self, batch_size: int, n_train: int, n_test: int, rng: np.random.Generator) -> MetaBatch:
        """``batch_size`` tasks drawn without replacement (with, if the pool is smaller), demos split at random."""
        if n_train + n_test > self.dataset.n_demos:
            raise ValueError(f"n_train + n_test = {n_train + n_test} demos per task, but the dataset has {self.dataset.n_demos}")
        replace = batch_size > self.dataset.n_tasks
        chosen = rng.choice(self.dataset.n_tasks, batch_size, replace=replace)
        train, test = [], []
        for index in chosen:
            order = rng.permutation(self.dataset.n_demos)
            states, actions = self.dataset.states[index], self.dataset.actions[index]
            train.append((states[order[:n_train]], actions[order[:n_train]]))
            test.append((states[order[n_train : n_train + n_test]], actions[order[n_train : n_train + n_test]]))
        return make_batch(
            [self.models[i] for i in chosen], [self.inputs[i] for i in chosen], train, test if n_test else None, self.state_action, self.dtype
        )


class GeneratedSource:
    """Fresh training tasks on every draw, with expert demos rolled out through the env.

    Task indices are drawn from ``rng`` over ``[0, n_tasks)`` of the env's ``split`` stream
    ``task_seed`` (``n_tasks=None``: effectively unlimited, ``2**31``).
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: Optional[dict] = None,
        split: str = "train",
        task_seed: int = 0,
        n_tasks: Optional[int] = None,
        expert: ExpertSettings = ExpertSettings(),
        input_kind: str = "features",
        state_action: bool = False,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.env = gym.make(env_id, **(env_kwargs or {}))
        self.base: Any = self.env.unwrapped
        if not isinstance(self.base, TabularTaskEnv):
            raise TypeError(f"env_id {env_id!r} is not a mandril_envs env")
        task_inputs(self.env, input_kind)  # fail early on a bad kind
        self.split, self.task_seed = split, task_seed
        self.n_tasks = 2**31 if n_tasks is None else int(n_tasks)
        self.expert, self.input_kind, self.state_action, self.dtype = expert, input_kind, state_action, dtype

    def sample(self, batch_size: int, n_train: int, n_test: int, rng: np.random.Generator) -> MetaBatch:
        """``batch_size`` fresh tasks, ``n_train + n_test`` demos each."""
        models, inputs, train, test = [], [], [], []
        for index in rng.integers(0, self.n_tasks, batch_size):
            self.base.set_task(self.base.sample_tasks(1, self.split, seed=self.task_seed, start=int(index))[0])
            trajectories = rollout(self.env, expert_policy(self.env, self.expert), n_train + n_test, seed=int(rng.integers(2**31)))
            states = np.stack([t.states for t in trajectories])
            actions = np.stack([t.actions for t in trajectories])
            models.append(self.base.model)
            inputs.append(task_inputs(self.env, self.input_kind))
            train.append((states[:n_train], actions[:n_train]))
            test.append((states[n_train:], actions[n_train:]))
        return make_batch(models, inputs, train, test if n_test else None, self.state_action, self.dtype)
