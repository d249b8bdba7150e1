"""Run outputs written atomically and durably (nothing is ever left half written or lost to a power
cut after the write returned): text, JSON, CSV.

Every writer goes through the project's one primitive, :func:`mandril_envs.atomic.atomic_write`
(temporary file in the same folder, fsynced, renamed, folder fsynced; ``exclusive=True`` creates the
file only if no other process did); torch checkpoints go through :mod:`mandril.core.checkpoint`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence, Union

from mandril_envs.atomic import atomic_write

__all__ = ["atomic_write_bytes", "atomic_write_text", "write_json", "write_csv", "read_csv", "check_writable_dir", "check_writable_file"]

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write_bytes(path: PathLike, data: bytes, exclusive: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically and durably; with ``exclusive``, only if ``path`` does not
    exist (``FileExistsError`` otherwise, also when another process creates it at the same moment)."""
    return atomic_write(path, lambda stream: stream.write(data), exclusive=exclusive)


def atomic_write_text(path: PathLike, text: str, exclusive: bool = False) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"), exclusive=exclusive)


def write_json(path: PathLike, data: Any, exclusive: bool = False) -> Path:
    """Atomically write ``data`` as indented JSON (NaN and infinities are refused: they are not JSON)."""
    return atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n", exclusive=exclusive)


def write_csv(path: PathLike, rows: Sequence[dict], fieldnames: Sequence[str] | None = None) -> Path:
    """Atomically write ``rows`` (dicts) as CSV; the columns default to every key, in first-seen order."""
    if fieldnames is None:
        names: list[str] = []
        for row in rows:
            names += [key for key in row if key not in names]
        fieldnames = names
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return atomic_write_text(path, buffer.getvalue())


def read_csv(path: PathLike, convert: Callable[[str], Any] = float) -> list[dict]:
    """Read a CSV written by :func:`write_csv`; values are passed through ``convert``."""
    with open(path, newline="") as handle:
        return [{k: convert(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _can_create_in(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (``os.access`` says yes to root on read-only
    or virtual file systems such as ``/proc``): a temporary file is made and removed."""
    import tempfile

    try:
        handle, name = tempfile.mkstemp(prefix=".mandril-write-check.", dir=folder)
    except OSError:
        return False
    os.close(handle)
    os.unlink(name)
    return True


def check_writable_dir(path: PathLike, what: str = "--out") -> Path:
    """``path`` as a directory that exists or can be made and written, checked before any work.

    Raises:
        ValueError: it is a file, lies under a file, or its nearest existing folder is not writable.
    """
    path = Path(path)
    existing = _nearest_existing(path)
    if existing == path and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a file, not a directory")
    if existing != path and not existing.is_dir():
        raise ValueError(f"{what} {str(path)!r} lies under {str(existing)!r}, which is a file")
    if not os.access(existing, os.W_OK | os.X_OK) or not _can_create_in(existing):
        raise ValueError(f"{what} {str(path)!r}: {str(existing)!r} is not writable")
    return path


def check_writable_file(path: PathLike, what: str = "--out") -> Path:
    """``path`` as a file that can be written (atomically, next to where it goes), checked before any work.

    Raises:
        ValueError: it is a directory, lies under a file, or its folder is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a directory, not a file")
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise ValueError(f"{what} {str(path)!r} lies under {str(existing)!r}, which is a file")
    if not os.access(existing, os.W_OK | os.X_OK) or not _can_create_in(existing):
        raise ValueError(f"{what} {str(path)!r}: {str(existing)!r} is not writable")
    if path.exists() and not path.is_file():
        raise ValueError(f"{what} {str(path)!r} exists and is not a regular file (a FIFO, a device?)")
    return path
