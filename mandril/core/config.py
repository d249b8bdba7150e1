"""The one loader from plain data (a parsed TOML file, keyword arguments) to typed, validated dataclasses.

:func:`build_dataclass` checks every key against the dataclass's fields (unknown keys are refused
with the key and the allowed ones named), checks every value against the field's type hint
(``bool``, ``int``, ``float``, ``str``, ``dict``, ``tuple[T, ...]``, ``Optional[T]``, nested
dataclasses), converts lists to tuples, and only then calls the constructor, whose
``__post_init__`` checks ranges. So ``iterations = "ten"`` is refused at load time naming the key,
not deep inside a run.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
import json
from pathlib import Path
from typing import Any, Mapping, TypeVar, Union

__all__ = ["build_dataclass", "dataclass_to_dict", "load_toml", "toml_value", "coerce_value", "check_ints", "check_at_most", "check_numbers", "MAX_COUNT", "MAX_THREADS", "MAX_TOML_BYTES"]

#: The largest count (iterations, steps, batch sizes, demos) any setting may hold unless a tighter
#: bound is given: beyond it a run would not finish (or its bookkeeping alone would fill memory).
MAX_COUNT = 10_000_000
#: The most torch threads any command or suite may ask for (one cap everywhere; far more threads than
#: cores only contend, and torch's thread pool crashes at about 100000).
MAX_THREADS = 256
#: The largest suite, sweep or config file read (they are a few KB).
MAX_TOML_BYTES = 16 * 2**20

T = TypeVar("T")


def coerce_value(where: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the type hint ``hint`` and return it in the field's type.

    Raises:
        TypeError: naming ``where``, the value and the type wanted.
        ValueError: for a non-finite float.
    """
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        concrete = [option for option in options if option is not type(None)]
        if len(concrete) == 1:
            return coerce_value(where, value, concrete[0])
        for option in concrete:
            try:
                return coerce_value(where, value, option)
            except (TypeError, ValueError):
                continue
        raise TypeError(f"{where} must be one of {[getattr(o, '__name__', str(o)) for o in concrete]}, got {type(value).__name__} {value!r:.80}")
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{where} must be true or false, got {type(value).__name__} {value!r:.80}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{where} must be an integer, got {type(value).__name__} {value!r:.80}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where} must be a number, got {type(value).__name__} {value!r:.80}")
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"{where} must be a string, got {type(value).__name__} {value!r:.80}")
        return value
    if hint is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise TypeError(f"{where} must be a table, got {type(value).__name__} {value!r:.80}")
        return dict(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{where} must be a list, got {type(value).__name__} {value!r:.80}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce_value(f"{where}[{i}]", item, args[0]) for i, item in enumerate(value))
        if len(args) != len(value):
            raise TypeError(f"{where} must be a list of {len(args)} entries, got {len(value)}")
        return tuple(coerce_value(f"{where}[{i}]", item, arg) for i, (item, arg) in enumerate(zip(value, args)))
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        return build_dataclass(hint, value, where)
    raise TypeError(f"{where}: unsupported type hint {hint!r}")  # pragma: no cover - a programming error


def build_dataclass(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """``cls(**data)`` after checking every key and value (see the module docstring).

    Args:
        cls: a dataclass.
        data: plain data, e.g. a TOML table.
        where: how to name this table in errors (``"[maxent]"``; empty for the top level of a file).

    Raises:
        ValueError: unknown keys (naming them and the allowed ones) or a value out of range.
        TypeError: a value of the wrong type.
    """
    label = where or "top level"
    if not isinstance(data, Mapping):
        raise TypeError(f"{label} must be a table, got {type(data).__name__} {data!r:.80}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")]
    unknown = sorted(set(map(str, data)) - set(names))
    if unknown:
        raise ValueError(f"{label}: unknown key{'s' if len(unknown) > 1 else ''} {unknown}; allowed: {sorted(names)}")
    kwargs = {name: coerce_value(_field_label(where, name, hints[name]), value, hints[name]) for name, value in data.items()}
    return cls(**kwargs)


def _field_label(where: str, name: str, hint: Any) -> str:
    """How errors name a field: ``steps``, ``[maml] fast_lr``, a nested table as ``[maml]``."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return f"{where}.{name}" if where.startswith("[") else f"[{name}]"
    return f"{where} {name}" if where else name


def dataclass_to_dict(obj: Any) -> Any:
    """A dataclass (or containers of them) as plain JSON/TOML data: tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: dataclass_to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not f.name.startswith("_")}
    if isinstance(obj, Mapping):
        return {str(k): dataclass_to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [dataclass_to_dict(v) for v in obj]
    return obj


def load_toml(path: Union[str, Path]) -> dict:
    """Parse a TOML file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a regular file of at most :data:`MAX_TOML_BYTES` (a FIFO, a device, a
            directory), or not valid TOML (the message names the file and the position).
    """
    from mandril_envs.files import check_regular_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    try:
        check_regular_file(path, "TOML file", MAX_TOML_BYTES)  # a FIFO or a device would block or never end
    except IsADirectoryError:
        raise ValueError(f"{str(path)!r} is a directory, not a TOML file") from None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text (UTF-8) file") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:
        raise ValueError(f"{path}: not valid TOML: nested too deeply") from None


def check_ints(config: Any, **minimums: int) -> None:
    """For a config's ``__post_init__``: each named field must be an int of at least its minimum (and,
    ``seed`` aside, at most :data:`MAX_COUNT`).

    Raises:
        ValueError: ``"<name> must be an int >= <minimum>, got <value>"`` (or ``<= MAX_COUNT``).
    """
    for name, minimum in minimums.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
        if name != "seed" and value > MAX_COUNT:
            raise ValueError(f"{name} must be an int <= {MAX_COUNT:,}, got {value!r}")


def check_at_most(config: Any, reason: str = "", **maximums: int) -> None:
    """For a config's ``__post_init__``: each named int field must be at most its maximum.

    Raises:
        ValueError: ``"<name> must be <= <maximum> (<reason>), got <value>"``.
    """
    for name, maximum in maximums.items():
        value = getattr(config, name)
        if isinstance(value, int) and value > maximum:
            raise ValueError(f"{name} must be <= {maximum:,}{f' ({reason})' if reason else ''}, got {value!r}")


def check_numbers(config: Any, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()) -> None:
    """For a config's ``__post_init__``: the ``positive`` fields must be finite numbers > 0, the
    ``non_negative`` ones finite numbers >= 0.

    Raises:
        ValueError: ``"<name> must be a finite number > 0, got <value>"`` (or ``>= 0``).
    """
    for names, strict in ((positive, True), (non_negative, False)):
        for name in names:
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or (strict and value == 0):
                raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} 0, got {value!r}")


def toml_value(value: Any) -> str:
    """``value`` (a bool, int, float, str, list or dict of them) as an inline TOML value that
    :func:`load_toml` reads back equal (floats by ``repr``: ``nan`` and ``inf`` included).

    Raises:
        TypeError: anything else.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")
