"""Where meta-training gets its tasks and demos, with explicit ``numpy.random.Generator`` draws (so a
checkpointed generator state resumes the exact same stream):

* :class:`DatasetSource`: a fixed pool of tasks with ``M`` demos each (a
  :class:`mandril_envs.dataset.DemoDataset`); each draw picks ``B`` tasks and splits their demos
  at random into ``K`` train and ``K'`` test demos.
* :class:`GeneratedSource`: fresh tasks from the env's train split on every draw, with expert
  demos rolled out through the env (``mandril_envs.demos``) on the fly.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

import gymnasium as gym
import numpy as np
import torch

from mandril.data.batch import MetaBatch, make_batch
from mandril.planning import TaskBatch
from mandril.data.inputs import task_inputs
from mandril_envs.base import TabularTaskEnv
from mandril_envs.dataset import DemoDataset
from mandril_envs.demos import ExpertSettings, expert_policy, rollout
from mandril_envs.model import TabularModel
from mandril_envs.registration import check_env_id

__all__ = ["TaskSource", "DatasetSource", "GeneratedSource"]


class TaskSource(Protocol):
    """Anything that draws meta-batches with an explicit generator."""

    def sample(self, batch_size: int, n_train: int, n_test: int, rng: np.random.Generator) -> MetaBatch:
        """``batch_size`` tasks, each with ``n_train`` demos to adapt on and ``n_test`` to score the adaptation, drawn with ``rng``."""
        ...


class DatasetSource:
    """A fixed pool of tasks with their demos (a :class:`DemoDataset`).

    Args:
        dataset: the pool; every task needs at least ``n_train + n_test`` demos.
        input_kind: what the reward model reads (:data:`INPUT_KINDS`).
        state_action: count state-action visitation (for state-action reward models); ``None``
            (default): when the family's rewards are state-action rewards.
        dtype: torch dtype of the batches.
    """

    def __init__(
        self, dataset: DemoDataset, input_kind: str = "features", state_action: Optional[bool] = None, dtype: torch.dtype = torch.float64, device: Any = None
    ) -> None:
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
        self.input_kind = input_kind
        self.state_action = self.models[0].state_action_reward if state_action is None else bool(state_action)
        self.dtype, self.device = dtype, device
        # every demo's visitation counts and first state, once (the dataset was checked when loaded)
        n_states, n_actions = self.models[0].state_dim, self.models[0].action_dim
        states, actions = dataset.states[:, :, :-1], dataset.actions
        flat = states * n_actions + actions if self.state_action else states
        width = n_states * n_actions if self.state_action else n_states
        n, m, horizon = flat.shape
        counts = np.zeros((n * m, width))
        np.add.at(counts, (np.repeat(np.arange(n * m), horizon), flat.reshape(-1)), 1.0)
        self._counts = counts.reshape(n, m, *((n_states, n_actions) if self.state_action else (n_states,)))
        self._first = dataset.states[:, :, 0]
        self._inputs = torch.as_tensor(np.stack(self.inputs), dtype=dtype, device=device)
        # the pool's dynamics, stacked and checked once, where every task has the same successor width
        # (a meta-batch of them then holds the very tensors from_models would stack; else it is stacked per draw)
        same_width = len({m.n_successors for m in self.models}) == 1
        self._pool = TaskBatch.from_models(self.models, dtype=dtype, device=device, layout="sparse") if same_width else None

    def sample(self, batch_size: int, n_train: int, n_test: int, rng: np.random.Generator) -> MetaBatch:
        """``batch_size`` tasks drawn without replacement (with, if the pool is smaller), demos split at random."""
        if n_train + n_test > self.dataset.n_demos:
            raise ValueError(f"n_train + n_test = {n_train + n_test} demos per task, but the dataset has {self.dataset.n_demos}")
        replace = batch_size > self.dataset.n_tasks
        chosen = rng.choice(self.dataset.n_tasks, batch_size, replace=replace)
        orders = np.stack([rng.permutation(self.dataset.n_demos) for _ in chosen])
        n_states = self.models[0].state_dim

        def part(columns: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            rows = chosen[:, None]
            visitation = self._counts[rows, columns].sum(axis=1) / columns.shape[1]
            first = self._first[rows, columns]
            start = np.stack([np.bincount(f, minlength=n_states) for f in first]) / columns.shape[1]
            return torch.as_tensor(visitation, dtype=self.dtype, device=self.device), torch.as_tensor(start, dtype=self.dtype, device=self.device)

        train_visitation, train_start = part(orders[:, :n_train])
        test_visitation, test_start = part(orders[:, n_train : n_train + n_test]) if n_test else (None, None)
        index = torch.as_tensor(chosen, dtype=torch.long, device=self._inputs.device)
        if self._pool is not None:  # on the device of the inputs, like the pool
            tasks = self._pool.select(index, layout="auto")
        else:
            tasks = TaskBatch.from_models([self.models[i] for i in chosen], dtype=self.dtype, device=self.device)
        return MetaBatch(tasks, tuple(self.models[i] for i in chosen), self._inputs[index], train_visitation, test_visitation, train_start, test_start)


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
        self.env = gym.make(check_env_id(env_id, "env_id"), **(env_kwargs or {}))
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
