"""Argument checks that raise errors naming the argument, the value and what is allowed."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as int if it is an integer in ``[minimum, maximum]``, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (hasattr(value, "__index__") and not isinstance(value, float)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(name: str, value: Any, minimum: float | None = None, maximum: float | None = None, *, strict_min: bool = False) -> float:
    """Return ``value`` as a finite float in the allowed range, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value < minimum or (strict_min and value == minimum)):
        raise ValueError(f"{name} must be {'>' if strict_min else '>='} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_probability(name: str, value: Any) -> float:
    """A probability in ``[0, 1]``."""
    return check_float(name, value, 0.0, 1.0)


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` if it is one of ``allowed``, else raise."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def check_float_sequence(name: str, value: Any, length: int | None = None) -> list[float]:
    """A sequence of finite floats (of ``length`` if given)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(value).__name__} {value!r}")
    items = [check_float(f"{name}[{i}]", item) for i, item in enumerate(value)]
    if length is not None and len(items) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(items)}")
    return items


def check_number_array(name: str, value: Any, shape: tuple[int, ...], *, integer: bool = False) -> np.ndarray:
    """Nested lists (or an array) of plain numbers of exactly ``shape``, as a float64 (or int64) array.

    Booleans, strings, ``None`` and ragged nesting are refused (``np.asarray`` alone would turn
    ``True`` into ``1`` and ``[[1, 2], [3]]`` into an object array).

    Raises:
        TypeError: an entry that is not a number (an int when ``integer``), naming its index.
        ValueError: a different or ragged shape; a non-finite entry; an int too large for int64.
    """
    try:
        entries = np.array(value, dtype=object)
    except ValueError:  # numpy refuses some ragged nestings even as objects
        raise ValueError(f"{name} must be nested lists of shape {shape}, got a ragged nesting") from None
    if entries.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {entries.shape}")
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    for index, entry in zip(np.ndindex(*shape), entries.flat):
        if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, kinds):
            raise TypeError(f"{name}{list(index)} must be {'an int' if integer else 'a number'}, got {type(entry).__name__} {entry!r:.40}")
    if integer:
        try:
            return entries.astype(np.int64)
        except OverflowError:
            raise ValueError(f"{name} has an entry too large for int64") from None
    try:
        array = entries.astype(np.float64)
    except OverflowError:
        raise ValueError(f"{name} has an entry too large for float64") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {float(array[~np.isfinite(array)][0])}")
    return array
