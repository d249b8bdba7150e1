"""The API reference: a page per public module of ``mandril_envs`` and ``mandril``, and the docstring check.

Modules are found by walking the packages (a new module gets its page); private modules (a name part
that starts with ``_``) and ``__main__`` are left out. The check fails the build (a warning, under
``-W``) on every public name without a docstring: each member of a module's ``__all__`` (or, without
``__all__``, each public class and function defined there), each public method and property of those
classes (a docstring inherited from a base class counts), and each module-level constant listed in
``__all__`` and assigned in that module (documented by a ``#:`` comment or a string after it).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Optional

from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

from mandril_docs.pages import docs_dir, prune, write_if_changed

logger = logging.getLogger(__name__)

#: The packages whose modules are documented.
PACKAGES = ("mandril_envs", "mandril")

#: Re-exported names -> where they are documented (``mandril.eval.score`` -> ``mandril.eval.metrics.score``),
#: filled by :func:`generate`; :mod:`mandril_docs.refs` resolves references through it.
ALIASES: dict[str, str] = {}


def public_modules(package: str) -> list[str]:
    """Every public module of ``package`` (itself first), sorted; private parts and ``__main__`` left out."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts):
            continue
        names.append(info.name)
    return sorted(names)


def _children(module: str, modules: list[str]) -> list[str]:
    depth = module.count(".") + 1
    return [m for m in modules if m.startswith(module + ".") and m.count(".") == depth]


def _title(module: str) -> str:
    return f"``{module}``\n" + "=" * (len(module) + 4)


def own_members(module_name: str, documented: "set[str]") -> tuple[list[str], list[tuple[str, str]]]:
    """The public names the module's page documents, and those it re-exports from another documented module.

    Public names are ``__all__`` (else every public class and function defined there); a class or
    function belongs to the module that defines it (``__module__``), unless that module is private; a
    constant to the module that assigns it. Returns ``(own names, [(name, defining module), ...])``.
    """
    module = importlib.import_module(module_name)
    explicit = getattr(module, "__all__", None)
    if explicit is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_") and _is_code(v) and getattr(v, "__module__", None) == module_name]
    else:
        names = [n for n in explicit if hasattr(module, n)]
    assigned = _assigned_names(module)
    own, reexported = [], []
    for name in names:
        value = getattr(module, name)
        if inspect.ismodule(value):
            continue
        if _is_code(value):
            owner = getattr(value, "__module__", module_name)
            if owner != module_name and owner in documented:
                reexported.append((name, f"{owner}.{getattr(value, '__qualname__', name)}"))
                continue
            own.append(name)
        elif name in assigned:
            own.append(name)
        else:
            source = next((m for m in sorted(documented) if m.startswith(module_name + ".") and name in _assigned_names(importlib.import_module(m))), None)
            if source is not None:
                reexported.append((name, f"{source}.{name}"))
    return own, reexported


def _module_page(module: str, modules: list[str]) -> str:
    own, reexported = own_members(module, set(modules))
    ALIASES.update({f"{module}.{name}": target for name, target in reexported})
    lines = [_title(module), "", f".. automodule:: {module}"]
    lines += [f"   :members: {', '.join(own)}", ""] if own else ["   :no-members:", ""]
    if reexported:
        lines += ["Also importable from here: " + ", ".join(f":py:obj:`{name} <{target}>`" for name, target in reexported) + ".", ""]
    children = _children(module, modules)
    if children:
        lines += [".. toctree::", "   :maxdepth: 1", "   :caption: Modules", ""] + [f"   {child}" for child in children] + [""]
    return "\n".join(lines)


def generate(app: Any) -> None:
    """Write ``docs/api/`` (a page per module and an index) and check every public name's docstring."""
    folder = docs_dir(app) / "api"
    written: set[Path] = set()
    modules = [m for package in PACKAGES for m in public_modules(package)]
    for module in modules:
        path = folder / f"{module}.rst"
        write_if_changed(path, _module_page(module, modules))
        written.add(path)
        for where, problem in undocumented(module):
            logger.warning(f"undocumented public name: {where}: {problem}", type="mandril_docs", subtype="undocumented")
    tops = list(PACKAGES)
    index = folder / "index.md"
    write_if_changed(
        index,
        "# API reference\n\nGenerated from the docstrings of every public module (a module, class or function whose "
        "name starts with `_` is private). `mandril_envs` needs only numpy and gymnasium; `mandril` needs torch.\n\n"
        "```{toctree}\n:maxdepth: 2\n\n" + "\n".join(tops) + "\n```\n",
    )
    written.add(index)
    prune(folder, written)


def _is_code(value: Any) -> bool:
    """A class or a function (a decorated one too: ``functools.lru_cache`` wraps a function)."""
    try:
        return inspect.isclass(value) or inspect.isfunction(inspect.unwrap(value))
    except ValueError:  # a cycle of __wrapped__
        return False


def _assigned_names(module: ModuleType) -> set[str]:
    """Names assigned at the top level of the module's source (``X = ...``, ``X: T = ...``)."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name):
                names.add(target.id)
    return names


def _member_doc(cls: type, name: str) -> Optional[str]:
    """The docstring of ``cls.name`` (a method or property), inherited from the first base that has one."""
    for base in cls.__mro__:
        if name in vars(base):
            value = vars(base)[name]
            if isinstance(value, property):
                doc = value.__doc__ if value.__doc__ is not None else getattr(value.fget, "__doc__", None)
            else:
                doc = getattr(getattr(value, "__func__", value), "__doc__", None)
            if doc and doc.strip():
                return doc
    return None


def _public_members(cls: type) -> Iterator[str]:
    for name, value in vars(cls).items():
        if name.startswith("_") or inspect.isclass(value):
            continue
        if isinstance(value, (property, staticmethod, classmethod)) or inspect.isfunction(value):
            yield name


def undocumented(module_name: str) -> list[tuple[str, str]]:
    """``(where, what)`` for every public name of the module without a docstring (see the module docstring)."""
    module = importlib.import_module(module_name)
    problems: list[tuple[str, str]] = []
    if not (module.__doc__ or "").strip():
        problems.append((module_name, "the module has no docstring"))
    explicit = getattr(module, "__all__", None)
    if explicit is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_") and _is_code(v) and getattr(v, "__module__", None) == module_name]
    else:
        names = list(explicit)
    try:
        attr_docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
    except Exception:  # noqa: BLE001 (no source: nothing to check)
        attr_docs = {}
    assigned = _assigned_names(module)
    for name in names:
        if not hasattr(module, name):
            problems.append((f"{module_name}.{name}", "listed in __all__ but not defined"))
            continue
        value = getattr(module, name)
        if _is_code(value) or inspect.ismodule(value):
            if getattr(value, "__module__", module_name) != module_name and not inspect.ismodule(value):
                continue  # re-exported: checked where it is defined
            if not (value.__doc__ or "").strip():
                problems.append((f"{module_name}.{name}", "no docstring"))
            if inspect.isclass(value):
                for member in _public_members(value):
                    if _member_doc(value, member) is None:
                        problems.append((f"{module_name}.{name}.{member}", "no docstring"))
        elif name in assigned and ("", name) not in attr_docs:
            problems.append((f"{module_name}.{name}", "a constant in __all__ without a #: comment"))
    return problems
