"""The one checkpoint format of mandril: torch-serialised plain data, checksummed, loaded without pickle code.

A checkpoint file is ``torch.save`` of an envelope ``{"format": "mandril.checkpoint", "version": 1,
"kind": KIND, "sha256": HEX, "payload": BYTES}``, where ``BYTES`` is ``torch.save`` of the payload
(a dict of tensors, numbers, strings, lists and dicts) and ``HEX`` its SHA-256. Both levels are
read with ``torch.load(weights_only=True)``, which refuses any pickled object other than tensors and
plain containers, so a file someone hands you cannot run code. The checksum catches bit flips and
truncation that torch itself does not (it does not check the zip CRCs): a damaged file is refused
with an error naming it instead of loading silently and failing much later.

Writes are atomic (temporary file, then rename), through :func:`mandril.core.io.atomic_write_bytes`.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any, Union

import torch

from mandril.core.io import atomic_write_bytes

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "ENVELOPE_FORMAT", "ENVELOPE_VERSION"]

ENVELOPE_FORMAT = "mandril.checkpoint"
ENVELOPE_VERSION = 1

PathLike = Union[str, "os.PathLike[str]"]


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, damaged, unsafe or of another kind; the message names the file."""


def _serialise(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _safe_load(data: bytes, path: Path, what: str) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds (UnpicklingError, RuntimeError, EOFError...)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: {what} is not a readable mandril checkpoint ({type(error).__name__}: {reason[:200]})") from None


def save_checkpoint(path: PathLike, kind: str, payload: dict) -> Path:
    """Write ``payload`` (plain data and tensors only) as a checkpoint of ``kind``, atomically.

    Args:
        path: the file to write (its folder is created).
        kind: what the payload is, e.g. ``"mandril.MandRIL"``; :func:`load_checkpoint` checks it.
        payload: a dict of tensors, numbers, strings, bytes, ``None``, lists, tuples and dicts.

    Returns:
        The path written.

    Raises:
        TypeError: if ``kind`` is not a non-empty string or ``payload`` not a dict, or it holds an
            object that could not be read back with ``weights_only=True``.
    """
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"kind must be a non-empty string, got {kind!r}")
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    body = _serialise(payload)
    try:  # refuse to write what could not be loaded safely
        torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as error:
        raise TypeError(f"checkpoint payload of {kind!r} holds objects that weights_only loading refuses: {error}") from None
    envelope = {"format": ENVELOPE_FORMAT, "version": ENVELOPE_VERSION, "kind": kind, "sha256": hashlib.sha256(body).hexdigest(), "payload": body}
    return atomic_write_bytes(path, _serialise(envelope))


def load_checkpoint(path: PathLike, kind: str) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` and check that it is whole and of ``kind``.

    Returns:
        The payload dict.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is not a mandril checkpoint, is damaged (checksum mismatch,
            truncation), holds anything but plain data (it would need pickle code to load), or is of
            another kind; the message names the file.
    """
    from mandril_envs.files import read_regular_bytes

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint file at {str(path)!r}")
    try:  # a FIFO or a device would block or never end
        data = read_regular_bytes(path, "checkpoint")
    except (ValueError, IsADirectoryError) as error:
        raise CheckpointError(str(error) if isinstance(error, ValueError) else f"{path}: is a directory, not a checkpoint") from None
    envelope = _safe_load(data, path, "the file")
    if not isinstance(envelope, dict) or envelope.get("format") != ENVELOPE_FORMAT:
        raise CheckpointError(f"{path}: not a mandril checkpoint (no {ENVELOPE_FORMAT!r} envelope)")
    if envelope.get("version") != ENVELOPE_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {envelope.get('version')!r} is not supported (this reader knows {ENVELOPE_VERSION})")
    body, digest = envelope.get("payload"), envelope.get("sha256")
    if not isinstance(body, bytes) or not isinstance(digest, str):
        raise CheckpointError(f"{path}: the checkpoint envelope is malformed (payload or checksum missing)")
    if hashlib.sha256(body).hexdigest() != digest:
        raise CheckpointError(f"{path}: checksum mismatch: the file is damaged (its payload does not match the SHA-256 stored with it)")
    if envelope.get("kind") != kind:
        raise CheckpointError(f"{path}: a {envelope.get('kind')!r} checkpoint, not a {kind!r} one")
    payload = _safe_load(body, path, "the payload")
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: the checkpoint payload is a {type(payload).__name__}, not a dict")
    return payload
