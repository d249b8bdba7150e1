"""Demos as the kernels consume them: empirical visitation and :class:`MetaBatch` (``B`` tasks, their
inputs, and the visitation and start distribution of a train and a test set of demos).

The likelihood every MaxEnt-family method fits (:data:`LIKELIHOODS`):

* ``"start"`` (default): start-conditioned. ``E[mu]`` and ``log Z`` are computed from the demos' own
  empirical first-state distribution, so the loss is the likelihood of the demos' actions given
  where they started. With one or a few demos it is bounded below by zero per step.
* ``"p0"``: the textbook MaxEnt likelihood with the model's ``initial_state_dist``. With few demos
  it has no lower bound: a reward can pay the demos' start states arbitrarily much relative to
  states the model starts in, and fits drift to losses of ``-1e8``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from mandril.planning import TaskBatch, empirical_visitation
from mandril_envs.demos import Trajectory
from mandril_envs.model import TabularModel

__all__ = ["LIKELIHOODS", "check_likelihood", "demo_visitation", "start_distribution", "MetaBatch", "make_batch"]

#: The MaxEnt likelihoods: ``"start"`` (conditioned on the demos' own first states) and ``"p0"`` (the textbook one).
LIKELIHOODS = ("start", "p0")


def check_likelihood(likelihood: str) -> str:
    """``likelihood`` if it is one of :data:`LIKELIHOODS`, else a ValueError naming it."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {list(LIKELIHOODS)} ('start': conditioned on the demos' own first states; 'p0': the model's), got {likelihood!r}")
    return likelihood


def start_distribution(states: np.ndarray, n_states: int) -> np.ndarray:
    """``(S,)``: the empirical distribution of the first states of demos ``states (M, H+1)``."""
    first = np.asarray(states)[:, 0]
    return np.bincount(first, minlength=n_states).astype(np.float64) / len(first)


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
        """The batch's dynamics with ``start (B, S)`` as the initial-state distribution (e.g. the demos' own);
        it shares their operators, so the train and test likelihoods build them once."""
        return self.tasks.with_start(start.to(self.tasks.dtype))

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

    def select(self, indices: Sequence[int]) -> "MetaBatch":
        """The sub-batch of the tasks at ``indices`` (positions in this batch)."""
        index = list(indices)
        rows = torch.as_tensor(index, dtype=torch.long, device=self.inputs.device)
        pick = lambda x: None if x is None else x[rows]  # noqa: E731
        return MetaBatch(
            self.tasks.select(index),
            tuple(self.models[i] for i in index),
            self.inputs[rows],
            self.train_visitation[rows],
            pick(self.test_visitation),
            self.train_start[rows],
            pick(self.test_start),
        )

    def likelihood_tasks(self, split: str, likelihood: str) -> TaskBatch:
        """The dynamics the likelihood of the ``split`` (``"train"``/``"test"``) demos is computed on:
        started from those demos' own first states (``"start"``) or from the models' ``p0`` (``"p0"``)."""
        if check_likelihood(likelihood) == "p0":
            return self.tasks
        return self.train_tasks if split == "train" else self.test_tasks

    def visitation(self, split: str) -> Tensor:
        """``mu_D`` of the ``split`` demos."""
        if split == "train":
            return self.train_visitation
        if self.test_visitation is None:
            raise ValueError("this batch has no test demos")
        return self.test_visitation


def make_batch(
    models: Sequence[TabularModel],
    inputs: Sequence[np.ndarray],
    train: Sequence[tuple[np.ndarray, np.ndarray]],
    test: Optional[Sequence[tuple[np.ndarray, np.ndarray]]] = None,
    state_action: bool = False,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
) -> MetaBatch:
    """Assemble a :class:`MetaBatch` from per-task models, inputs and ``(states, actions)`` demo arrays (on ``device``)."""
    if not (len(models) == len(inputs) == len(train)) or (test is not None and len(test) != len(models)):
        raise ValueError(f"mismatched batch: {len(models)} models, {len(inputs)} inputs, {len(train)} train demo sets" + ("" if test is None else f", {len(test)} test demo sets"))
    tasks = TaskBatch.from_models(models, dtype=dtype, device=device)
    n_states = tasks.n_states

    def visitation(demo_sets: Sequence[tuple[np.ndarray, np.ndarray]]) -> Tensor:
        return torch.as_tensor(np.stack([demo_visitation(m, s, a, state_action) for m, (s, a) in zip(models, demo_sets)]), dtype=dtype, device=device)

    def starts(demo_sets: Sequence[tuple[np.ndarray, np.ndarray]]) -> Tensor:
        return torch.as_tensor(np.stack([start_distribution(s, n_states) for s, _ in demo_sets]), dtype=dtype, device=device)

    return MetaBatch(
        tasks,
        tuple(models),
        torch.as_tensor(np.stack(inputs), dtype=dtype, device=device),
        visitation(train),
        None if test is None else visitation(test),
        starts(train),
        None if test is None else starts(test),
    )
