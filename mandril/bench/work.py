"""What a worker does: a preparation, or a unit of cells. Pure functions of plain inputs, so any
backend (this process, a process pool, Ray) runs them and gets the same results.

A unit's records, one per cell (see :func:`run_unit`), hold every key of the cell, the scores, the
method's diagnostics, the wall time and the error if the fit failed; no absolute paths. The driver
stamps each with the suite's digest and the unit's id when it writes them
(:meth:`mandril.bench.store.RunStore.write_unit`), and every reader checks them.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from mandril.bench.cells import Preparation, Unit, cell_seed
from mandril.bench.store import PREPARATION_FAILED
from mandril.bench.suite import VALIDATION_SPLIT, VALIDATION_START, Suite, suite_from_dict

__all__ = ["run_preparation", "run_unit", "unit_problems", "held_out_tasks", "training_pool", "PackedState", "RECORD_KEYS"]

#: The keys of every record, in order.
RECORD_KEYS = (
    "suite", "family", "env_id", "split", "method", "config_hash", "seed", "task", "n_demos", "error", "seconds",
    "evd", "normalized_evd", "optimal_return", "learned_return", "random_return", "demo_nll", "success",
    "policy_evd", "policy_normalized_evd", "info",
)


@lru_cache(maxsize=4)
def _suite(text: str) -> Suite:
    import json

    return suite_from_dict(json.loads(text))


def suite_of(suite_data: dict) -> Suite:
    """The suite of plain data, parsed once per process."""
    import json

    return _suite(json.dumps(suite_data, sort_keys=True))


@lru_cache(maxsize=8)
def _pool(env_id: str, kwargs_json: str, n_tasks: int, n_demos: int, task_seed: int, demo_seed: int, expert_json: str) -> Any:
    import json

    from mandril_envs.dataset import collect
    from mandril_envs.demos import ExpertSettings

    return collect(env_id, n_tasks, n_demos, "train", task_seed, demo_seed, ExpertSettings(**json.loads(expert_json)), json.loads(kwargs_json))


def training_pool(suite: Suite, family: str) -> Any:
    """The family's training pool (a :class:`~mandril_envs.dataset.DemoDataset`), built once per process."""
    import json
    from dataclasses import asdict

    spec = suite.families[family]
    pool = spec.train
    return _pool(spec.env_id, json.dumps(spec.env_kwargs, sort_keys=True), pool.n_tasks, pool.n_demos, pool.task_seed, pool.demo_seed, json.dumps(asdict(spec.expert)))


def held_out_tasks(base: Any, split: str, n_tasks: int, task_seed: int) -> list:
    """The first ``n_tasks`` held-out tasks of ``split`` (``"validation"``: train-split tasks no training pool reaches)."""
    if split == VALIDATION_SPLIT:
        return base.sample_tasks(n_tasks, "train", seed=task_seed, start=VALIDATION_START)
    return base.sample_tasks(n_tasks, split, seed=task_seed)


def _error_text(error: BaseException) -> str:
    """``Type: message``; for an unexpected kind of error (a bug), where it was raised."""
    from mandril.methods import FitError

    text = f"{type(error).__name__}: {error}"
    if not isinstance(error, (ValueError, TypeError, FitError)) and error.__traceback__ is not None:
        frame = traceback.extract_tb(error.__traceback__)[-1]
        text += f" (in {frame.name}, {frame.filename.rsplit('/', 1)[-1]} line {frame.lineno})"
    return text


@dataclass(frozen=True)
class PackedState:
    """A prepared state as the bytes ``torch.save`` writes, for a local pool's workers.

    Tensors pickled for a process pool travel as shared-memory file descriptors that the driver's resource
    sharer thread hands out; a worker killed in that handshake (out of memory, say) makes that thread print
    tracebacks beside the run's one-line error. Bytes carry the same values (``torch.load`` with
    ``weights_only=True`` reads them back bit for bit) through the plain pipe.
    """

    data: bytes

    @classmethod
    def pack(cls, state: dict) -> "PackedState":
        """``state`` (tensors and plain data) as bytes."""
        from mandril.core.checkpoint import state_to_bytes

        return cls(state_to_bytes(state))

    def unpack(self) -> dict:
        """The state, read back with ``weights_only=True`` (no code in it can run)."""
        from mandril.core.checkpoint import state_from_bytes

        return state_from_bytes(self.data, "a prepared state sent to a worker")


def run_preparation(suite_data: dict, preparation: Preparation, checkpoint: Optional[str] = None, progress: bool = False, device: Optional[str] = None) -> dict:
    """Prepare one method on one family's training pool.

    The training checkpoint (``checkpoint``, a path) is bound to the preparation (its metadata holds
    :attr:`Preparation.owner`): one that cannot be continued (damaged, of another preparation, not
    fitting the model) is discarded, and the preparation trained from the start; ``notes`` says so.

    Returns:
        ``{"id", "state": method.state_dict() or None, "seconds", "error": None or text, "notes": [lines]}``.
    """
    import torch

    from mandril.core.checkpoint import CheckpointError

    start = time.perf_counter()
    notes: list[str] = []
    try:
        suite = suite_of(suite_data)
        torch.set_num_threads(suite.threads)
        pool = training_pool(suite, preparation.family)
        for attempt in (1, 2):
            method = suite.make_method(preparation.method, preparation.family, preparation.seed)
            if device is not None:
                method.to(device)
            try:
                method.prepare(pool, checkpoint=checkpoint, checkpoint_metadata=preparation.owner, progress=progress)
                break
            except CheckpointError as error:
                if attempt == 2 or checkpoint is None or not Path(checkpoint).exists():
                    raise
                Path(checkpoint).unlink()
                notes.append(f"discarded the training checkpoint of {preparation.id} ({error}); training it from the start")
        return {"id": preparation.id, "state": method.state_dict(), "seconds": time.perf_counter() - start, "error": None, "notes": notes}
    except Exception as error:  # recorded, and the units that need it fail with it; the rest go on
        return {"id": preparation.id, "state": None, "seconds": time.perf_counter() - start, "error": _error_text(error), "notes": notes}


def _each_held_out(env_id: str, kwargs_json: str, split: str, n_tasks: int, task_seed: int) -> Iterator[tuple[Any, Any]]:
    """``(env, task)`` for the first ``n_tasks`` held-out tasks of ``split``, the env (one ``gym.make``) set to each
    task in turn (``env.unwrapped`` is the task's base env while the loop body runs)."""
    import json

    import gymnasium as gym

    env = gym.make(env_id, **json.loads(kwargs_json))
    for task in held_out_tasks(env.unwrapped, split, n_tasks, task_seed):
        env.unwrapped.set_task(task)
        yield env, task


@lru_cache(maxsize=32)
def _held_out(env_id: str, kwargs_json: str, split: str, n_tasks: int, task_seed: int, seed: int, expert: Any, n_most: int) -> tuple:
    """``((task, model, goal state, TaskDemos with n_most shown), ...)`` for the first ``n_tasks`` held-out tasks of
    ``split``: planned and rolled out once per process and shared by every unit of those tasks and run (each
    method, each ``n <= n_most``)."""
    from mandril.eval import shown_and_heldout_demos

    return tuple(
        (task, env.unwrapped.model, env.unwrapped.goal_state, shown_and_heldout_demos(env, n_most, seed, expert.settings()))
        for env, task in _each_held_out(env_id, kwargs_json, split, n_tasks, task_seed)
    )


@lru_cache(maxsize=32)
def _held_out_reads(env_id: str, kwargs_json: str, split: str, n_tasks: int, task_seed: int, input_kind: str, with_prior: bool) -> tuple:
    """``((reward input, prior or None), ...)`` of the same tasks, for methods that read ``input_kind`` (and the
    family's prior when ``with_prior``): once per process and kind, without planning or demos."""
    return tuple(
        (env.unwrapped.reward_input(input_kind), env.unwrapped.reward_prior() if with_prior else None)
        for env, _ in _each_held_out(env_id, kwargs_json, split, n_tasks, task_seed)
    )


def unit_problems(suite: Suite, unit: Unit, method: Any) -> tuple[list, list[tuple]]:
    """The cells of ``unit`` as ``method`` fits them: one :class:`~mandril.methods.FitProblem` per held-out task
    (its demos from the evaluation protocol, the reward hidden unless the method is a reference that reads it,
    the family's prior for methods that read it, the cell's seed) and its truth ``(task index, true model,
    demos, goal state)`` for scoring. The one place the harness and the speed benchmarks build them.

    The tasks and their demos are made once per process for the most demos the family shows (and what each kind
    of method reads, once per kind) and shared by the units of a run (:meth:`~mandril.eval.protocol.TaskDemos.first`:
    the same demos as a draw of ``unit.n_demos``); each unit gets its own copies of the arrays a method reads."""
    import json

    from mandril.methods import FitProblem, hide_reward

    spec = suite.families[unit.family]
    n_most = max(unit.n_demos, *suite.family_n_demos(unit.family))
    tasks = (spec.env_id, json.dumps(spec.env_kwargs, sort_keys=True), unit.split, unit.n_tasks, spec.task_seed)
    drawn = _held_out(*tasks, unit.seed, spec.expert, n_most)
    reads = _held_out_reads(*tasks, method.input_kind, method.reads_reward_prior)
    problems, truths = [], []
    for (task, true_model, goal, most), (inputs, prior) in zip(drawn, reads):
        demos = most.first(unit.n_demos)
        model = true_model if method.reads_true_reward else hide_reward(true_model)
        problems.append(FitProblem(model, np.array(inputs), demos.states, demos.actions, cell_seed(unit, task.index), f"{unit.split}/{task.index}", prior))
        truths.append((task.index, true_model, demos, goal))
    return problems, truths


def run_unit(suite_data: dict, unit: Unit, state: Optional[dict] = None, preparation_error: Optional[str] = None, device: Optional[str] = None) -> list[dict]:
    """Score one unit's cells; one record per cell (see :data:`RECORD_KEYS`)."""
    import torch

    from mandril.eval import score
    from mandril.methods import FitError

    suite = suite_of(suite_data)
    spec = suite.families[unit.family]
    base_record = {"suite": suite.name, "family": unit.family, "env_id": spec.env_id, "split": unit.split, "method": unit.method,
                   "config_hash": unit.config_hash, "seed": unit.seed, "n_demos": unit.n_demos}

    def failed(task: int, message: str, seconds: float = 0.0) -> dict:
        return {**{key: None for key in RECORD_KEYS}, **base_record, "task": task, "error": message, "seconds": seconds, "info": {}}

    if preparation_error is not None:
        start = VALIDATION_START if unit.split == VALIDATION_SPLIT else 0
        return [failed(start + t, f"{PREPARATION_FAILED}{preparation_error}") for t in range(unit.n_tasks)]
    start = time.perf_counter()
    try:
        torch.set_num_threads(suite.threads)
        method = suite.make_method(unit.method, unit.family, unit.seed, unit.n_demos)
        if device is not None:
            method.to(device)
        if unit.needs_preparation:
            method.load_state_dict(state.unpack() if isinstance(state, PackedState) else state)
        problems, truths = unit_problems(suite, unit, method)
        fit_start = time.perf_counter()
        outputs = method.fit_batch(problems)
        per_cell = (time.perf_counter() - fit_start) / max(1, len(problems))
    except Exception as error:  # a bug or bad settings: every cell of the unit records it
        first = VALIDATION_START if unit.split == VALIDATION_SPLIT else 0
        return [failed(first + t, _error_text(error), (time.perf_counter() - start) / max(1, unit.n_tasks)) for t in range(unit.n_tasks)]
    records = []
    for (index, model, demos, goal), output in zip(truths, outputs):
        if isinstance(output, FitError):
            records.append(failed(index, str(output), per_cell))
            continue
        try:
            scores = score(model, output, demos.heldout_states, demos.heldout_actions, goal).as_dict()
        except ValueError as error:  # a task that cannot be scored (e.g. optimal and uniform returns equal): an error, never a score
            records.append(failed(index, f"scoring: {error}", per_cell))
            continue
        info = {k: v for k, v in output.info.items() if k != "seconds"}
        records.append({**base_record, "task": index, "error": None, "seconds": float(output.info.get("seconds", per_cell)), **scores, "info": info})
    return [{key: record.get(key) for key in RECORD_KEYS} for record in records]
