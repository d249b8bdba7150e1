"""The one checkpoint format of mandril: torch-serialised plain data, checksummed, loaded without pickle code.

A checkpoint file is ``torch.save`` of an envelope ``{"format": "mandril.checkpoint", "version": 1,
"kind": KIND, "sha256": HEX, "payload": BYTES, "metadata": {...}}``, where ``BYTES`` is ``torch.save``
of the payload (a dict of tensors, numbers, strings, lists and dicts), ``HEX`` its SHA-256, and
``metadata`` (optional, plain strings and numbers) says whom the checkpoint belongs to, e.g. the
benchmark preparation it was trained for: :func:`load_checkpoint` refuses a checkpoint whose
metadata differs from what the caller expects (a file copied under another preparation's name). Both levels are
read with ``torch.load(weights_only=True)``, which refuses any pickled object other than tensors and
plain containers, so a file someone hands you cannot run code. The checksum catches bit flips and
truncation that torch itself does not (it does not check the zip CRCs): a damaged file is refused
with an error naming it instead of loading silently and failing much later. A payload whose
floating-point tensors hold NaN, infinities or absurd magnitudes (above :data:`MAX_ABS_WEIGHT`) is
refused too, naming the tensor: such a state was written by a diverged run, or edited. No refusal
ever suggests loading without ``weights_only`` (torch's own messages do; they are rephrased).

Writes are atomic (temporary file, then rename), through :func:`mandril.core.io.atomic_write_bytes`.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch

from mandril.core.io import atomic_write_bytes

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "state_to_bytes", "state_from_bytes", "ENVELOPE_FORMAT", "ENVELOPE_VERSION", "MAX_ABS_WEIGHT"]

#: The ``format`` field of every checkpoint envelope (a file with another is refused).
ENVELOPE_FORMAT = "mandril.checkpoint"
#: The envelope version this module writes and reads.
ENVELOPE_VERSION = 1

#: The largest magnitude a floating-point tensor of a checkpoint may hold: beyond it, squaring a
#: value overflows float32 (3.4e38), so the state can only be a diverged run's or an edited file.
MAX_ABS_WEIGHT = 1e24

PathLike = Union[str, "os.PathLike[str]"]


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, damaged, unsafe or of another kind; the message names the file."""


def state_to_bytes(state: Any) -> bytes:
    """``state`` (tensors and plain data) as the bytes ``torch.save`` writes; :func:`state_from_bytes` reads them back."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _reason(error: BaseException) -> str:
    """Why torch refused to load, in one line that never suggests turning ``weights_only`` off."""
    text = str(error)
    unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsupported:
        return f"it holds a pickled {unsupported.group(1)}, which only running pickle code could rebuild; a checkpoint holds plain data and tensors only"
    detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    detail_text = detail.group(1).strip()[:80] if detail else ""
    if re.search(r"Unsupported class|REDUCE|BUILD|global", detail_text, re.I):
        return f"it holds pickled objects other than plain data and tensors, which are never loaded ({detail_text})"
    if "Weights only load failed" in text or isinstance(error, (pickle.UnpicklingError, KeyError, EOFError, UnicodeDecodeError)):
        return "not a torch file: damaged, or something else under a checkpoint's name" + (f" ({detail_text})" if detail_text else "")
    first = text.strip().splitlines()[0] if text.strip() else ""
    if "central directory" in first or "zip archive" in first:
        return "not a complete torch file (truncated or damaged)"
    if "weights_only" in text or "safe_globals" in text:  # any other advice of torch's: not passed on
        return f"{type(error).__name__} while loading it"
    return f"{type(error).__name__}: {first[:160]}" if first else type(error).__name__


def _safe_load(data: bytes, path: Union[Path, str], what: str) -> Any:
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols of crafted files; the error says it
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds (UnpicklingError, RuntimeError, EOFError...)
        raise CheckpointError(f"{path}: {what} is not a readable mandril checkpoint ({_reason(error)})") from None


def state_from_bytes(data: bytes, source: str = "bytes") -> Any:
    """Bytes of :func:`state_to_bytes`, read back bit for bit with ``weights_only=True`` (no code in them can run).

    Raises:
        CheckpointError: naming ``source``, when the bytes are not a torch file or hold pickled objects.
    """
    return _safe_load(data, source, "the state")


def _check_values(value: Any, path: Path, where: str = "payload") -> None:
    """Refuse NaN, infinities and magnitudes above :data:`MAX_ABS_WEIGHT` in floating-point tensors, naming the tensor."""
    if isinstance(value, torch.Tensor):
        if (value.is_floating_point() or value.is_complex()) and value.numel():
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                raise CheckpointError(f"{path}: tensor {where} holds {int((~finite).sum())} non-finite values (NaN or infinity): a diverged run's state, refused")
            largest = float(value.abs().max())
            if largest > MAX_ABS_WEIGHT:
                raise CheckpointError(f"{path}: tensor {where} holds a value of magnitude {largest:.3g}, above {MAX_ABS_WEIGHT:.0e}: absurd for a trained state, refused")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(item, path, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_values(item, path, f"{where}[{index}]")


def _check_metadata(metadata: Any) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in metadata.items()):
        raise TypeError(f"checkpoint metadata must be a dict of strings to strings or numbers, got {metadata!r}")
    return dict(metadata)


def save_checkpoint(path: PathLike, kind: str, payload: dict, metadata: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``payload`` (plain data and tensors only) as a checkpoint of ``kind``, atomically.

    Args:
        path: the file to write (its folder is created).
        kind: what the payload is, e.g. ``"mandril.MandRIL"``; :func:`load_checkpoint` checks it.
        payload: a dict of tensors, numbers, strings, bytes, ``None``, lists, tuples and dicts.
        metadata: whom the checkpoint belongs to (strings and numbers), checked by :func:`load_checkpoint`.

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
    metadata = _check_metadata(metadata)
    body = state_to_bytes(payload)
    try:  # refuse to write what could not be loaded safely
        torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as error:
        raise TypeError(f"checkpoint payload of {kind!r} holds objects that weights_only loading refuses: {_reason(error)}") from None
    envelope = {"format": ENVELOPE_FORMAT, "version": ENVELOPE_VERSION, "kind": kind, "sha256": hashlib.sha256(body).hexdigest(), "payload": body, "metadata": metadata}
    return atomic_write_bytes(path, state_to_bytes(envelope))


def load_checkpoint(path: PathLike, kind: str, metadata: Optional[Mapping[str, Any]] = None) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` and check that it is whole, of ``kind``, and
    (when ``metadata`` is given) that its metadata holds every item of ``metadata``.

    Returns:
        The payload dict.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is not a mandril checkpoint, is damaged (checksum mismatch,
            truncation), holds anything but plain data (it would need pickle code to load), is of
            another kind, belongs to another owner (metadata), or holds non-finite or absurd
            floating-point values; the message names the file (and the tensor).
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
    if metadata is not None:
        stored = envelope.get("metadata")
        stored = stored if isinstance(stored, dict) else {}
        for key, expected in _check_metadata(metadata).items():
            if key not in stored:
                raise CheckpointError(f"{path}: the checkpoint does not say its {key} (expected {expected!r}): written for something else, or by an older mandril")
            if stored[key] != expected:
                raise CheckpointError(f"{path}: the checkpoint belongs to {key} {stored[key]!r}, not {expected!r}")
    payload = _safe_load(body, path, "the payload")
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: the checkpoint payload is a {type(payload).__name__}, not a dict")
    _check_values(payload, path)
    return payload
