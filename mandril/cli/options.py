"""Command-line options made from a method's dataclass config: one ``--field-name`` per field, its help
taken from the config's docstring, its default shown, its value checked by the config itself."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import typing
from typing import Any, Iterable, Mapping

from mandril.core.config import dataclass_to_dict

__all__ = [
    "HelpFormatter", "reward_model_help", "field_docs", "add_config_options", "given_config", "changed_fields", "int_list", "positive_int", "non_negative_int",
    "int_at_least", "int_between", "thread_count", "torch_device", "check_device",
]


def reward_model_help() -> str:
    """A sentence for ``--help``: the reward-model kinds, what each reads, and what the families offer."""
    from mandril.rewards.spec import INPUT_KIND_OF

    kinds = "; ".join(f"{kind} reads {', '.join(inputs)}" for kind, inputs in INPUT_KIND_OF.items())
    return (f"Reward-model kinds (--reward-model '{{\"kind\": ...}}'): {kinds}. Input kinds a family offers: "
            "env.unwrapped.reward_input_kinds (the GridWorlds: features, map, rgb; the others: features). Without "
            "--reward-model/--input-kind a method reads what the family offers (a conv net becomes an MLP on the features).")


def field_docs(cls: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` sections of ``cls`` and its bases (Google style)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        text = klass.__doc__ or ""
        if "Attributes:" not in text:
            continue
        current: list[str] = []
        for line in text.split("Attributes:", 1)[1].splitlines():
            match = re.match(r"^\s{4,8}([a-z_][a-z0-9_, ]*):\s*(.*)$", line)
            if match:
                current = [name.strip() for name in match.group(1).split(",")]
                for name in current:
                    docs[name] = match.group(2).strip()
            elif line.strip() and current:
                for name in current:
                    docs[name] += " " + line.strip()
            elif not line.strip() and current and docs.get(current[0]):
                current = []
    return {name: re.sub(r"``([^`]*)``", r"\1", text) for name, text in docs.items()}


def int_list(text: str) -> tuple[int, ...]:
    """argparse type: ``"1,2,4"`` -> ``(1, 2, 4)``."""
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, e.g. 32,32; got {text!r}") from None


def int_at_least(minimum: int) -> Any:
    """argparse type: an integer ``>= minimum`` (the error says which)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int >= {minimum}"
    parse.__doc__ = f"``text`` as an integer >= {minimum}, else ``argparse.ArgumentTypeError`` saying which."
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def int_between(minimum: int, maximum: int, why: str = "") -> Any:
    """argparse type: an integer in ``[minimum, maximum]`` (the error says which, and why the maximum)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer between {minimum} and {maximum:,}, got {text!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be an integer between {minimum} and {maximum:,}{f' ({why})' if why else ''}, got {value}")
        return value

    parse.__name__ = f"int in [{minimum}, {maximum}]"
    parse.__doc__ = f"``text`` as an integer in [{minimum}, {maximum}], else ``argparse.ArgumentTypeError`` saying which."
    return parse


def _thread_count() -> Any:
    from mandril.core.config import MAX_THREADS

    return int_between(1, MAX_THREADS, "the one cap on torch threads of every command and suite")


#: argparse type of every ``--threads``: 1 .. :data:`mandril.core.config.MAX_THREADS`.
thread_count = _thread_count()


def check_device(text: str, where: str = "--device") -> str:
    """``text`` if torch can run these kernels there: ``cpu``, or ``cuda`` / ``cuda:N`` when a GPU is present.

    Raises:
        ValueError: one line naming ``where``, the value and the devices allowed here.
    """
    import torch

    allowed = ["cpu"]
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:
        allowed += ["cuda"] + [f"cuda:{i}" for i in range(count)]
    if text not in allowed:
        reason = "" if count else " (no CUDA device is available here)"
        raise ValueError(f"{where} must be one of {allowed}, the devices these kernels run on{reason}, got {text!r:.40}")
    return text


def torch_device(text: str) -> str:
    """argparse type of every ``--device`` (:func:`check_device`)."""
    try:
        return check_device(text, "device")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("device ")) from None


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"must be JSON, e.g. '{{\"kind\": \"conv\", \"hidden\": [32, 32]}}': {error}") from None


def _option_for(hint: Any) -> dict:
    origin = typing.get_origin(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if hint is int:
        return {"type": int, "metavar": "INT"}
    if hint is float:
        return {"type": float, "metavar": "FLOAT"}
    if hint is str:
        return {"type": str, "metavar": "TEXT"}
    if origin is tuple:
        return {"type": int_list, "metavar": "N,N,..."}
    return {"type": _json_value, "metavar": "JSON"}


def _shown(value: Any) -> str:
    value = dataclass_to_dict(value)
    if isinstance(value, (dict, list)) and not isinstance(value, str):
        return json.dumps(value) if isinstance(value, dict) else ",".join(map(str, value))
    return str(value)


def add_config_options(parser: argparse.ArgumentParser, cls: type, exclude: Iterable[str] = ()) -> None:
    """One option per field of the dataclass ``cls`` (defaults suppressed: only what is typed is set)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    group = parser.add_argument_group(f"settings ({cls.__name__}; checked like a suite file's table)")
    defaults = cls()
    for f in dataclasses.fields(cls):
        if f.name in set(exclude) or f.name.startswith("_"):
            continue
        help_text = docs.get(f.name, f.name.replace("_", " ")).rstrip(".")
        group.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f"config__{f.name}", default=argparse.SUPPRESS,
            help=f"{help_text} (default: {_shown(getattr(defaults, f.name))})", **_option_for(hints[f.name]),
        )


def given_config(args: argparse.Namespace) -> dict:
    """The config fields the user typed (as plain data for :func:`mandril.core.build_dataclass`)."""
    return {key[len("config__"):]: dataclass_to_dict(value) for key, value in vars(args).items() if key.startswith("config__")}


def changed_fields(given: Mapping[str, Any], saved: Mapping[str, Any]) -> list[str]:
    """The typed fields whose value differs from the saved config's."""
    return sorted(k for k, v in given.items() if dataclass_to_dict(v) != saved.get(k))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, but not for required options, flags, or options without a default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        no_default = action.default is None or action.default is argparse.SUPPRESS or action.default is False
        if action.required or no_default or isinstance(action, argparse._StoreTrueAction) or "(default:" in text:
            return text
        return super()._get_help_string(action)
