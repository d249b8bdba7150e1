"""Tasks: plain, JSON-serialisable data that fully determine one member of a task family.

A task is a function of ``(family config, split, index, seed)``: the per-task parameters are drawn
from a generator seeded by ``SeedSequence([seed, split code, index])``, so the same four things
always give the same task, on any machine.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Union

import numpy as np

__all__ = ["Task", "TaskLike", "task_rng", "SPLIT_CODES", "to_plain", "same_plain", "plain_differences"]

#: The code of each split in the task seed sequence (kept stable across versions).
SPLIT_CODES: dict[str, int] = {"train": 0, "test": 1, "test_unseen": 2}


def to_plain(value: Any) -> Any:
    """Convert numpy scalars/arrays and tuples inside ``value`` to plain JSON types."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def same_plain(a: Any, b: Any) -> bool:
    """Equality of plain JSON data that tells ``True`` from ``1``: ``1 == 1.0`` (JSON has one number
    type), but a bool equals only a bool, and NaN equals nothing."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_plain(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_plain(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def plain_differences(a: dict, b: dict) -> list[str]:
    """The keys whose values differ between two plain dicts (by :func:`same_plain`), sorted."""
    return sorted(str(k) for k in set(a) | set(b) if k not in a or k not in b or not same_plain(a[k], b[k]))


def task_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator a task's parameters are drawn from."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_CODES[split], int(index)]))


@dataclass(frozen=True)
class Task:
    """One task of a family.

    Attributes:
        family: the family name, e.g. ``"GridWorld"``.
        config: the family configuration (the env kwargs that define the family), plain JSON data.
        split: ``"train"``, ``"test"`` or (GridWorld) ``"test_unseen"``.
        index: the task's index in its split.
        seed: the seed of the task stream.
        params: the per-task parameters, plain JSON data (lists, numbers, strings).
    """

    family: str
    config: dict = field(default_factory=dict)
    split: str = "train"
    index: int = 0
    seed: int = 0
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The task as plain JSON data."""
        return to_plain(asdict(self))

    def to_json(self) -> str:
        """The task as a JSON string (round-trips exactly through :meth:`from_json`)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Task":
        """Parse a task from plain data, naming the first field that is missing or of the wrong type."""
        if not isinstance(data, Mapping):
            raise TypeError(f"task must be a Task or a mapping, got {type(data).__name__}")
        expected = {"family": str, "config": dict, "split": str, "index": int, "seed": int, "params": dict}
        unknown = sorted(set(data) - set(expected))
        if unknown:
            raise ValueError(f"task has unknown keys {unknown}; allowed keys are {sorted(expected)}")
        missing = sorted(set(expected) - set(data))
        if missing:
            raise ValueError(f"task is missing keys {missing}")
        for key, kind in expected.items():
            value = data[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise TypeError(f"task[{key!r}] must be {kind.__name__}, got {type(value).__name__} {value!r:.80}")
        if data["split"] not in SPLIT_CODES:
            raise ValueError(f"task['split'] must be one of {sorted(SPLIT_CODES)}, got {data['split']!r}")
        if data["index"] < 0 or data["seed"] < 0:
            raise ValueError(f"task index and seed must be >= 0, got index={data['index']}, seed={data['seed']}")
        return cls(**{key: to_plain(data[key]) for key in expected})

    @classmethod
    def from_json(cls, text: str) -> "Task":
        """Parse a task from JSON text."""
        if not isinstance(text, (str, bytes, bytearray)):
            raise TypeError(f"task JSON must be a string, got {type(text).__name__}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"task JSON is malformed: {error}") from None
        except RecursionError:
            raise ValueError("task JSON is malformed: nested too deeply") from None
        except UnicodeDecodeError as error:
            raise ValueError(f"task JSON is malformed: not UTF-8 text ({error.reason})") from None
        return cls.from_dict(data)


#: What task arguments accept: a :class:`Task`, its dict (``Task.to_dict()``) or its JSON text.
TaskLike = Union[Task, Mapping[str, Any], str]


def coerce_task(task: TaskLike) -> Task:
    """Accept a :class:`Task`, its dict form or its JSON text."""
    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        return Task.from_json(task)
    return Task.from_dict(task)
