"""The methods page, generated from the registry (:data:`mandril.methods.METHODS`).

Each method: its class's docstring, what it is (kind, output, whether it is prepared on training tasks)
and its config dataclass with every field's type, default and description (the ``Attributes:`` of the
config class and its bases). A new method in the registry gets its section with no code here.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

from mandril_docs.pages import docs_dir, prune, write_if_changed

_ATTRIBUTE = re.compile(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def attribute_docs(cls: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` sections of ``cls`` and its bases (nearest wins)."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        text = inspect.cleandoc(base.__dict__.get("__doc__") or "")
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.strip() != "Attributes:":
                continue
            current = None
            for entry in lines[i + 1 :]:
                if entry.strip() and not entry.startswith(" "):
                    break
                match = _ATTRIBUTE.match(entry.strip())
                if match and entry.startswith("    ") and not entry.startswith("     "):
                    current = match.group(1)
                    docs[current] = match.group(2)
                elif current and entry.strip():
                    docs[current] += " " + entry.strip()
    return docs


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return repr(field.default)
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return repr(field.default_factory())  # type: ignore[misc]
    return "(required)"


def _cell(text: str) -> str:
    """A docstring fragment (reST) as a markdown table cell: roles in MyST's syntax, ``|`` escaped."""
    text = re.sub(r"(?<![\w{]):(\w+):`([^`]+)`", r"{py:\1}`\2`", text)
    return text.replace("|", "\\|").replace("\n", " ")


def config_table(config: type) -> str:
    """A markdown table of a config dataclass's fields: name, type, default, description."""
    docs = attribute_docs(config)
    rows = ["| field | type | default | what it sets |", "|---|---|---|---|"]
    for field in dataclasses.fields(config):
        if field.name.startswith("_"):
            continue
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        rows.append(f"| `{field.name}` | `{_cell(str(kind))}` | `{_cell(_default(field))}` | {_cell(docs.get(field.name, ''))} |")
    return "\n".join(rows)


def generate(app: Any) -> None:
    """Write ``docs/methods/index.md``."""
    from mandril.methods import METHODS

    folder = docs_dir(app) / "methods"
    lines = [
        "# Methods and their configs",
        "",
        "Every method of the registry (`mandril.methods.METHODS`), made by name with "
        "`mandril.make(name, **config)`; each config is a frozen dataclass whose fields are checked "
        "(an unknown key is refused, naming it). Generated from the registry when the docs are built.",
        "",
        "| name | kind | output | prepared on training tasks |",
        "|---|---|---|---|",
    ]
    for name, cls in METHODS.items():
        lines.append(f"| [`{name}`](#method-{name.replace('_', '-')}) | {cls.kind} | {cls.output} | {'yes' if cls.needs_preparation else 'no'} |")
    lines.append("")
    for name, cls in METHODS.items():
        summary = (inspect.getdoc(cls) or "").strip()
        lines += [f"(method-{name.replace('_', '-')})=", f"## `{name}`", ""]
        lines += [f"{{py:class}}`~{cls.__module__}.{cls.__qualname__}`: ", "", "```{eval-rst}", summary, "```", ""]
        config = cls.Config
        if dataclasses.is_dataclass(config):
            lines += [f"Config {{py:class}}`~{config.__module__}.{config.__qualname__}`:", "", config_table(config), ""]
            lines += ["```python", "import mandril", "", f'method = mandril.make("{name}")  # defaults; pass any field above as a keyword', "```", ""]
        else:
            lines += ["No settings.", ""]
    path = folder / "index.md"
    write_if_changed(path, "\n".join(lines))
    prune(folder, {path})
