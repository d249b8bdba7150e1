"""Scoring IRL methods on held-out tasks: the grid of method x split x n_demos x task x seed.

A method is any callable ``fit(model, inputs, states, actions) -> reward table`` (see
:class:`IRLMethod`); every one is scored by :func:`mandril.metrics.score` against the same true
model, so neural and tabular methods are compared on equal terms. For each (split, task, seed) the
demos are drawn once (``max(n_demos)`` soft-expert episodes) and each ``n`` uses the first ``n``,
so the settings are nested and paired across methods.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Protocol, Sequence, Union

import gymnasium as gym
import numpy as np

from mandril.functional import NonFiniteLossError
from mandril.irl_data import task_inputs
from mandril.metrics import score, summarize
from mandril_envs.atomic import atomic_write
from mandril_envs.demos import ExpertSettings, expert_policy, rollout
from mandril_envs.model import TabularModel
from mandril_envs.tasks import SPLIT_CODES

__all__ = ["IRLMethod", "EvaluationConfig", "evaluate", "summarize_records", "write_records", "plot_evd"]

PathLike = Union[str, os.PathLike]


class IRLMethod(Protocol):
    """Learn a reward table for one task from its demos."""

    def __call__(self, model: TabularModel, inputs: np.ndarray, states: np.ndarray, actions: np.ndarray) -> np.ndarray: ...


@dataclass
class EvaluationConfig:
    """Which held-out tasks and demo counts to score.

    Attributes:
        env_id, env_kwargs: the family.
        splits: held-out splits, e.g. ``("test", "test_unseen")``.
        n_demos: demo counts to score (nested: each uses the first ``n`` of the same demos).
        n_tasks: tasks per split.
        seeds: demo seeds (each gives a fresh set of demos of the same tasks).
        task_seed: seed of the held-out task stream.
        expert: the demonstrator.
        input_kind: what the reward models read (:data:`mandril.irl_data.INPUT_KINDS`).
    """

    env_id: str = "mandril_envs/GridWorld-v0"
    env_kwargs: dict = field(default_factory=dict)
    splits: tuple[str, ...] = ("test", "test_unseen")
    n_demos: tuple[int, ...] = (1, 2, 4, 8)
    n_tasks: int = 20
    seeds: tuple[int, ...] = (0,)
    task_seed: int = 1
    expert: ExpertSettings = field(default_factory=ExpertSettings)
    input_kind: str = "map"

    def __post_init__(self) -> None:
        if not self.n_demos or min(self.n_demos) < 1:
            raise ValueError(f"n_demos must be positive ints, got {self.n_demos!r}")
        if self.n_tasks < 1:
            raise ValueError(f"n_tasks must be >= 1, got {self.n_tasks}")
        if not self.seeds:
            raise ValueError("seeds must not be empty")


def evaluate(methods: dict[str, IRLMethod], config: EvaluationConfig, progress: bool = True) -> list[dict]:
    """Score every method on every (split, task, seed, n); returns one record per combination.

    Each record has ``method, split, task, seed, n_demos, seconds, failed`` and the fields of
    :class:`mandril.metrics.Scores`. A fit that diverges (:class:`NonFiniteLossError`) is recorded
    with ``failed = 1`` and scored as the all-zero reward (no information), not dropped.
    """
    from tqdm.auto import tqdm

    env = gym.make(config.env_id, **config.env_kwargs)
    base: Any = env.unwrapped
    records: list[dict] = []
    total = len(config.splits) * config.n_tasks * len(config.seeds) * len(config.n_demos) * len(methods)
    bar = tqdm(total=total, desc="evaluate", disable=not progress, unit="fit")
    most = max(config.n_demos)
    for split in config.splits:
        for task in base.sample_tasks(config.n_tasks, split, seed=config.task_seed):
            base.set_task(task)
            model, inputs = base.model, task_inputs(env, config.input_kind)
            goal = base.goal_state
            for seed in config.seeds:
                demo_seed = int(np.random.SeedSequence([seed, SPLIT_CODES[split], task.index, 0xE7A1]).generate_state(1)[0])
                trajectories = rollout(env, expert_policy(env, config.expert), most, seed=demo_seed)
                states = np.stack([t.states for t in trajectories])
                actions = np.stack([t.actions for t in trajectories])
                for n in config.n_demos:
                    for name, method in methods.items():
                        start = time.perf_counter()
                        failed = 0
                        try:
                            reward = method(model, inputs, states[:n], actions[:n])
                        except NonFiniteLossError:
                            # a diverged fit is scored as a reward that carries no information
                            reward, failed = np.zeros(model.state_dim), 1
                        seconds = time.perf_counter() - start
                        scores = score(model, reward, goal_state=goal).as_dict()
                        records.append({"method": name, "split": split, "task": task.index, "seed": seed, "n_demos": n, "seconds": seconds, "failed": failed, **scores})
                        bar.update(1)
    bar.close()
    return records


def summarize_records(records: Sequence[dict], metric: str = "evd", seed: int = 0) -> list[dict]:
    """Mean, IQM and 95% bootstrap CI of ``metric`` per (method, split, n_demos), over tasks and
    seeds, with the number of failed (diverged) fits."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        if record.get(metric) is not None:
            groups.setdefault((record["method"], record["split"], record["n_demos"]), []).append(record)
    ordered = sorted(groups.items(), key=lambda item: (item[0][1], item[0][0], item[0][2]))
    return [
        {"method": m, "split": s, "n_demos": n, "metric": metric, **summarize([float(r[metric]) for r in rows], seed=seed), "failed": sum(int(r.get("failed", 0)) for r in rows)}
        for (m, s, n), rows in ordered
    ]


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda stream: stream.write(text.encode()))


def write_records(records: Sequence[dict], path: PathLike) -> Path:
    """Write records as CSV (``.csv``) or JSON (anything else), atomically."""
    path = Path(path)
    if path.suffix == ".csv":
        import io

        buffer = io.StringIO()
        names: list[str] = []
        for record in records:
            names += [k for k in record if k not in names]
        writer = csv.DictWriter(buffer, fieldnames=names)
        writer.writeheader()
        writer.writerows(records)
        _atomic_write_text(path, buffer.getvalue())
    else:
        _atomic_write_text(path, json.dumps(list(records), indent=1))
    return path


def plot_evd(summary: Iterable[dict], path: PathLike, title: str = "") -> Path:
    """EVD (mean with 95% CI) against the number of demos, one panel per split, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = list(summary)
    splits = sorted({row["split"] for row in summary})
    figure, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4), squeeze=False)
    for axis, split in zip(axes[0], splits):
        for method in sorted({row["method"] for row in summary}):
            rows = sorted((r for r in summary if r["split"] == split and r["method"] == method), key=lambda r: r["n_demos"])
            if not rows:
                continue
            n = [r["n_demos"] for r in rows]
            axis.plot(n, [r["mean"] for r in rows], marker="o", label=method)
            axis.fill_between(n, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], alpha=0.2)
        axis.set_xscale("log", base=2)
        axis.set_xticks(sorted({r["n_demos"] for r in summary}))
        axis.set_xticklabels([str(x) for x in sorted({r["n_demos"] for r in summary})])
        axis.set_xlabel("demonstrations of the new task")
        axis.set_ylabel(f"{summary[0]['metric']} (lower is better)")
        axis.set_title(split)
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
