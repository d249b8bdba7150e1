"""The held-out tasks a command fits and scores, as :class:`~mandril.methods.FitProblem` s with their truths:
from a dataset (its first ``n`` demos shown, the rest held out for the demo NLL) or sampled from a split
through the evaluation protocol (:func:`mandril.eval.shown_and_heldout_demos`, the benchmark's seeding)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

__all__ = ["Truth", "dataset_problems", "sampled_problems"]


@dataclass(frozen=True)
class Truth:
    """What scoring one task needs: the task, its true model, held-out demos (or ``None``) and its goal state."""

    task: Any
    model: Any
    heldout_states: Optional[np.ndarray]
    heldout_actions: Optional[np.ndarray]
    goal_state: Optional[int]


def _problem(env: Any, input_kind: str, states: np.ndarray, actions: np.ndarray, seed: int) -> Any:
    from mandril.methods import FitProblem, hide_reward

    base = env.unwrapped
    task = base.task
    return FitProblem(hide_reward(base.model), base.reward_input(input_kind), states, actions, seed=seed, label=f"{task.split}/{task.index}")


def dataset_problems(dataset: Any, input_kind: str, n_demos: int, seed: int, tasks: Optional[int] = None, env: Any = None) -> tuple[list, list[Truth]]:
    """The first ``tasks`` (default: all) tasks of ``dataset``, each with its first ``n_demos`` demos shown,
    built in ``env`` (default: the dataset's own).

    Raises:
        ValueError: ``n_demos`` larger than the dataset holds per task.
    """
    if n_demos > dataset.n_demos:
        raise ValueError(f"--demos {n_demos} asks for more demos than the dataset has per task ({dataset.n_demos})")
    env = dataset.make_env(0) if env is None else env
    base = env.unwrapped
    problems, truths = [], []
    for index, task in enumerate(dataset.tasks[: tasks or dataset.n_tasks]):
        base.set_task(task)
        states, actions = dataset.states[index], dataset.actions[index]
        problems.append(_problem(env, input_kind, states[:n_demos], actions[:n_demos], seed))
        held = n_demos < dataset.n_demos
        truths.append(Truth(task, base.model, states[n_demos:] if held else None, actions[n_demos:] if held else None, base.goal_state))
    return problems, truths


def sampled_problems(env: Any, split: str, tasks: int, task_seed: int, n_demos: int, seed: int, input_kind: str) -> tuple[list, list[Truth]]:
    """``tasks`` tasks of ``split`` (the stream ``task_seed``), demos from the evaluation protocol (seed ``seed``)."""
    from mandril.eval import shown_and_heldout_demos

    base = env.unwrapped
    problems, truths = [], []
    for task in base.sample_tasks(tasks, split, seed=task_seed):
        base.set_task(task)
        demos = shown_and_heldout_demos(env, n_demos, seed)
        problems.append(_problem(env, input_kind, demos.states, demos.actions, seed))
        truths.append(Truth(task, base.model, demos.heldout_states, demos.heldout_actions, base.goal_state))
    return problems, truths


def score_and_write(what: str, truths: list[Truth], outputs: list, n_demos: int, out: Optional[str], settings: Optional[dict] = None) -> int:
    """Score every output against its truth, print the summary (and each failure) in a line each, and write
    ``out`` (a ``.npz``, atomically) if given: the learned ``rewards (T, S)``/``(T, S, A)`` and/or
    ``policies (T, H, S, A)`` of the tasks that did not fail, their ``evd``, ``normalized_evd`` and ``tasks``
    (JSON), and the method's ``settings`` (JSON). Returns the exit code: 1 if any fit failed, else 0."""
    import io
    import json

    from mandril.core.io import atomic_write_bytes
    from mandril.eval import score, summarize
    from mandril.methods import FitError

    done = [(truth, output) for truth, output in zip(truths, outputs) if not isinstance(output, FitError)]
    failed = [str(output) for output in outputs if isinstance(output, FitError)]
    scores = [score(t.model, o, t.heldout_states, t.heldout_actions, t.goal_state) for t, o in done]
    if scores:
        normalized = summarize([s.normalized_evd for s in scores])
        raw = summarize([s.evd for s in scores])
        random = float(np.mean([s.optimal_return - s.random_return for s in scores]))
        print(
            f"{what} on {len(scores)} {truths[0].task.split} tasks, {n_demos} demo(s) each: normalized EVD {normalized['mean']:.3f} "
            f"[95% CI {normalized['ci_low']:.3f}, {normalized['ci_high']:.3f}] (0 = the expert, 1 = a uniform random policy); "
            f"EVD {raw['mean']:.3f} [{raw['ci_low']:.3f}, {raw['ci_high']:.3f}], where a uniform random policy scores {random:.2f}"
        )
    for message in failed:
        print(f"failed: {message}")
    if out and not done:
        print(f"nothing written to {out}: every fit failed")
    elif out:
        arrays: dict = {
            "evd": np.array([s.evd for s in scores]),
            "normalized_evd": np.array([s.normalized_evd for s in scores]),
            "tasks": np.array([t.task.to_json() for t, _ in done]),
            "settings": np.array(json.dumps(settings or {}, sort_keys=True)),
        }
        for key, name in (("reward", "rewards"), ("policy", "policies")):
            tables = [getattr(o, key) for _, o in done if getattr(o, key) is not None]
            if tables and len(tables) == len(done):
                arrays[name] = np.stack(tables)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(out, buffer.getvalue())
        print(f"wrote {out}")
    return 1 if failed else 0
