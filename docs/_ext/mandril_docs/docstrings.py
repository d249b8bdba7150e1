"""Docstring hooks: the envs' ``## Section`` headings become rubrics in the API reference."""

from __future__ import annotations

import builtins
import re
import sys
from typing import Any, Callable

_HEADING = re.compile(r"^(\s*)##\s+(\S.*)$")


def section_headings(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Turn each ``## Title`` line of a docstring into ``.. rubric:: Title`` (in place)."""
    for i, line in enumerate(lines):
        match = _HEADING.match(line)
        if match:
            lines[i] = f"{match.group(1)}.. rubric:: {match.group(2).strip()}"
            if i + 1 < len(lines) and lines[i + 1].strip():
                lines.insert(i + 1, "")


def split_sections(doc: str) -> tuple[str, list[tuple[str, str]]]:
    """A docstring cut at its ``## Title`` lines: ``(summary, [(title, body), ...])``, bodies dedented."""
    import inspect

    text = inspect.cleandoc(doc or "")
    summary: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match:
            sections.append((match.group(2).strip(), []))
        elif sections:
            sections[-1][1].append(line)
        else:
            summary.append(line)
    return "\n".join(summary).strip(), [(title, "\n".join(body).strip()) for title, body in sections]


_SECTION = re.compile(r"^(\s*)(Returns|Yields|Raises):\s*$")
_PROSE = re.compile(r"\s")


def _is_type(text: str, names: "Callable[[str], bool]" = lambda name: True) -> bool:
    """Whether ``text`` (what precedes a field's colon) reads as a type rather than prose: no words outside
    brackets but type names, the first of which ``names`` knows (a builtin or a name of the module)."""
    text = text.strip().strip("`")
    first = re.match(r"[A-Za-z_][\w.]*", text)
    if first is None or not names(first.group(0).split(".")[0]):
        return False
    depth, flat = 0, []
    for char in text:
        depth += char in "[("
        depth -= char in "])"
        if depth == 0 and char not in "])":
            flat.append(char)
    flat_text = re.sub(r"\s*(\||,|\bor\b)\s*", "|", "".join(flat))
    return bool(text) and not _PROSE.search(flat_text) and "/" not in flat_text


def prose_fields(lines: list[str], names: "Callable[[str], bool]" = lambda name: True) -> None:
    """Rewrite, in place, the sections napoleon would misread in this project's docstrings.

    The project writes ``Returns:`` as prose (``"what it is: details"``) and ``Raises:`` entries as
    ``"ValueError / TypeError: when"``. Napoleon would take the text before the colon for a type (a
    broken cross-reference): a prose ``Returns:``/``Yields:`` section becomes a ``:returns:`` field with
    the same text, and a ``Raises:`` entry naming several exceptions one ``:raises X:`` field per exception.
    """
    i = 0
    while i < len(lines):
        match = _SECTION.match(lines[i])
        if not match:
            i += 1
            continue
        indent, kind = match.group(1), match.group(2)
        end = i + 1
        while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > len(indent)):
            end += 1
        body = lines[i + 1 : end]
        while body and not body[-1].strip():
            body.pop()
        end = i + 1 + len(body)  # trailing blank lines stay
        first = next((line for line in body if line.strip()), "")
        found = re.search(r"(?<!:):(\s|$)", first.strip())
        head, colon = (first.strip()[: found.start()], True) if found else (first.strip(), False)
        if kind in ("Returns", "Yields"):
            if colon and not _is_type(head, names):
                text = [line.strip() for line in body if line.strip()]
                field = [f"{indent}:{kind.lower()}: {text[0]}"] + [f"{indent}    {line}" for line in text[1:]]
                lines[i:end] = field
                end = i + len(field)
        else:
            entries: list[tuple[str, list[str]]] = []
            entry_indent = len(first) - len(first.lstrip())
            for line in body:
                if line.strip() and len(line) - len(line.lstrip()) == entry_indent:
                    entries.append((line.strip(), []))
                elif entries:
                    entries[-1][1].append(line.strip())
            if any("/" in entry.partition(":")[0] for entry, _ in entries):
                fields = []
                for entry, more in entries:
                    names, _, text = entry.partition(":")
                    text = " ".join([text.strip(), *[m for m in more if m]])
                    for name in [n.strip() for n in names.split("/")]:
                        fields.append(f"{indent}:raises {name}: {text}")
                lines[i:end] = fields
                end = i + len(fields)
        i = end


def install_napoleon_wrapper(app: Any) -> None:
    """Run napoleon on every docstring except those of attributes, constants and properties.

    Those are prose in this project, where napoleon would read the words before a first colon as a
    type; their types come from the annotations. :func:`prose_fields` runs first on the others.
    """
    from sphinx.ext import napoleon

    for listener in list(app.events.listeners.get("autodoc-process-docstring", [])):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)

    def process(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
        if what in ("attribute", "data", "property"):
            return
        module = sys.modules.get(getattr(obj, "__module__", None) or "")
        known = set(vars(builtins)) | set(vars(module)) if module is not None else set(vars(builtins))
        prose_fields(lines, known.__contains__)
        napoleon._process_docstring(app, what, name, obj, options, lines)

    app.connect("autodoc-process-docstring", process, priority=500)
