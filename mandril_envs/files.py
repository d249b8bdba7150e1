"""Reading files someone hands you: only regular files, of bounded size, with JSON of bounded nesting.

Every reader of a file (datasets, a run's ``run.json``, checkpoints, suites and configs) calls
:func:`check_regular_file` before it opens the path: ``open()`` of a FIFO blocks until a writer comes
(forever), a character device such as ``/dev/zero`` or ``/dev/urandom`` never ends, and a directory
is not a file. :func:`parse_json` bounds how deeply JSON may nest (deep nesting exhausts the parser's
recursion, and no file of this project nests more than a few levels).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any, Optional, Union

__all__ = ["MAX_JSON_DEPTH", "check_regular_file", "read_regular_bytes", "parse_json", "json_depth"]

#: The deepest JSON nesting accepted (a task in a dataset's meta nests 5 levels; a run.json 4).
MAX_JSON_DEPTH = 32

PathLike = Union[str, "os.PathLike[str]"]


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def check_regular_file(path: PathLike, what: str = "file", max_bytes: Optional[int] = None) -> Path:
    """``path`` if it is a regular file (symlinks followed) of at most ``max_bytes``, else raise; nothing is opened.

    Raises:
        FileNotFoundError / PermissionError: from ``os.stat`` (the message names the path).
        IsADirectoryError: a directory.
        ValueError: a FIFO, device or socket (one line naming ``what`` and the path); a file larger than ``max_bytes``.
    """
    path = Path(path)
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{what} {str(path)!r} is a {_kind(info.st_mode)}, not a regular file: reading it could block or never end")
    if max_bytes is not None and info.st_size > max_bytes:
        raise ValueError(f"{what} {str(path)!r} holds {info.st_size:,} bytes, more than the {max_bytes:,} such a file may hold")
    return path


def read_regular_bytes(path: PathLike, what: str = "file", max_bytes: Optional[int] = None) -> bytes:
    """The bytes of a regular file (:func:`check_regular_file` first)."""
    return check_regular_file(path, what, max_bytes).read_bytes()


def json_depth(value: Any) -> int:
    """How deeply ``value`` (parsed JSON) nests: 0 for a scalar, 1 for a flat list or object (no recursion)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
            deepest = max(deepest, depth + 1)
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
            deepest = max(deepest, depth + 1)
    return deepest


def parse_json(text: Union[str, bytes], where: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)`` nested at most ``max_depth`` deep; errors are one ``ValueError``, ``"{where} is not valid JSON: ..."``.

    NaN and infinities (not JSON) are refused too.
    """
    def refuse(token: str) -> Any:
        raise ValueError(f"{where} is not valid JSON: {token} is not a JSON number")

    try:
        value = json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where} is not valid JSON: {error}") from None
    except RecursionError:
        raise ValueError(f"{where} is not valid JSON: nested too deeply (more than {max_depth} levels)") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{where} is not valid JSON: not UTF-8 text ({error.reason})") from None
    if json_depth(value) > max_depth:
        raise ValueError(f"{where} is not valid JSON: nested too deeply (more than {max_depth} levels)")
    return value
