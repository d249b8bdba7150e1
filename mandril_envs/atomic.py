"""Atomic, durable file writes: the file appears whole or not at all (temporary file, then rename),
and once :func:`atomic_write` returns it survives a power loss (the temporary file is fsynced before
the rename, its folder after it: a rename that is never fsynced can leave a zero-length file).

The temporary file sits next to the target as ``.NAME.PID.RANDOM.tmp``. A process killed while
writing (SIGKILL cannot be caught) leaves its temporary behind; the next write to the same path
removes such leftovers of processes that no longer run. The finished file gets the permissions
any new file of this process would get (``0o666`` less the umask), like ``open(path, "w")``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

__all__ = ["atomic_write", "fsync_directory"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Remove ``.NAME.PID.*.tmp`` files next to ``path`` left by processes that are gone."""
    prefix = f".{path.name}."
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    except OSError:
        return
    for candidate in candidates:
        pid_text = candidate.name[len(prefix) :].split(".", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _process_alive(int(pid_text)):
            candidate.unlink(missing_ok=True)


def fsync_directory(folder: Union[str, os.PathLike]) -> None:
    """Make the entries of ``folder`` (a rename, a new file) durable; a no-op where folders cannot be
    opened (Windows) or the file system does not sync folders."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        handle = os.open(folder, flags)
    except OSError:  # Windows: folders cannot be opened; their entries are durable with the files
        return
    try:
        os.fsync(handle)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(handle)


def _make_folder(folder: Path) -> None:
    """``mkdir -p`` whose new entries are durable (each new folder's parent is fsynced)."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    folder.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_directory(created.parent)


def _claim(temporary: Path, path: Path) -> None:
    """Move ``temporary`` to ``path`` only if ``path`` does not exist (FileExistsError otherwise)."""
    try:
        os.link(temporary, path)  # atomic: of several racing creators exactly one succeeds
    except FileExistsError:
        raise
    except OSError as error:  # a file system without hard links: claim the name with O_EXCL, then fill it
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.replace(temporary, path)
        return
    os.unlink(temporary)


def atomic_write(path: Union[str, os.PathLike], write: Callable[[BinaryIO], None], exclusive: bool = False) -> Path:
    """Call ``write(stream)`` on a temporary file next to ``path``, fsync it, rename it onto ``path``,
    then fsync the folder: when this returns the file is whole and durable.

    With ``exclusive``, ``path`` must not exist: the temporary file is hard-linked to it (an atomic
    create that fails if the name is taken), so of several processes racing to create the same
    file exactly one wins, and its file is whole.

    On any error the temporary file is removed and ``path`` is left as it was.

    Raises:
        IsADirectoryError: ``path`` is an existing directory.
        FileExistsError: ``exclusive`` and ``path`` exists (another process created it first).
        NotADirectoryError / PermissionError / OSError: its folder cannot be made or written.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {str(path)!r}: it is a directory")
    _make_folder(path.parent)
    _remove_stale_temporaries(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        if exclusive:
            _claim(Path(temporary), path)
        else:
            os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path
