"""Settings a method gets by default on a family: its reward model must read an input the family offers.

Every neural method defaults to the MandRIL paper's fully convolutional net on a GridWorld's map. A family
without a map (the random MDPs, the bandits) offers only the feature matrix, so there the same method reads
the features with an MLP of the same widths; a linear or tabular model reads the features anyway. What a
family offers is the env's knowledge (``env.unwrapped.reward_input_kinds``), not a branch per family here.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from mandril.core.config import dataclass_to_dict

__all__ = ["family_defaults"]


def family_defaults(method_class: type, input_kinds: tuple[str, ...], given: Any = ()) -> dict:
    """The settings to give ``method_class`` (a registered method) on a family offering ``input_kinds``:
    ``{}`` when its default reward model reads one of them, or when the user chose the model or its input
    (``reward_model`` or ``input_kind`` among the ``given`` settings: their choice stands, and is checked as
    given), else ``{"reward_model": {... "kind": "mlp"}, "input_kind": "features"}`` (a conv net becomes an
    MLP of the same widths on the features).

    Raises:
        ValueError: the family offers no input the method's default model (or an MLP) could read.
    """
    names = {f.name for f in fields(method_class.Config)}
    if "input_kind" not in names or "reward_model" not in names or {"input_kind", "reward_model"} & set(given):
        return {}
    default: Any = method_class.Config()
    if default.input_kind in input_kinds:
        return {}
    if "features" not in input_kinds:
        raise ValueError(f"{method_class.name} reads {default.input_kind!r} by default; the family offers {list(input_kinds)}: set input_kind and reward_model")
    spec = dataclass_to_dict(default.reward_model)
    if spec["kind"] == "conv":
        spec["kind"] = "mlp"
    return {"reward_model": spec, "input_kind": "features"}
