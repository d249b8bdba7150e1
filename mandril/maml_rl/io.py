"""Run outputs written atomically (nothing is ever left half written): JSON, CSV, torch checkpoints."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import torch

from mandril_envs.atomic import atomic_write

__all__ = ["atomic_write_bytes", "atomic_write_text", "write_json", "write_csv", "read_csv", "save_torch"]

PathLike = Union[str, Path]


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (through the project's one writer, :func:`mandril_envs.atomic.atomic_write`)."""
    atomic_write(path, lambda stream: stream.write(data))


def atomic_write_text(path: PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: PathLike, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: PathLike, rows: Sequence[dict], fieldnames: Sequence[str]) -> None:
    """Atomically write ``rows`` (dicts) as CSV with the given columns."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    atomic_write_text(path, buffer.getvalue())


def read_csv(path: PathLike, convert: Callable[[str], Any] = float) -> list[dict]:
    """Read a CSV written by :func:`write_csv`; values are passed through ``convert``."""
    with open(path, newline="") as handle:
        return [{k: convert(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def save_torch(path: PathLike, obj: Any) -> None:
    """Atomically ``torch.save`` ``obj`` to ``path``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())
