"""Short cross-references: ``:class:`TabularModel``` in any module resolves to the one object of that name.

Docstrings name the project's objects briefly. Sphinx looks a short name up in the current module
and class only; when that fails, this handler looks for objects whose full name ends with
``.<target>`` (Sphinx's own ``.name`` search). It resolves the reference when exactly one object
matches (a re-exported object counts once); otherwise the reference stays broken and nitpicky mode
reports it.
"""

from __future__ import annotations

from typing import Any, Optional

from docutils import nodes
from sphinx.addnodes import pending_xref


def resolve_short(app: Any, env: Any, node: pending_xref, contnode: nodes.Element) -> Optional[nodes.Element]:
    """Resolve a short Python reference that has exactly one suffix match, else leave it to Sphinx."""
    if node.get("refdomain") != "py" or node.get("refspecific"):
        return None
    from mandril_docs.api import ALIASES

    target = node["reftarget"].lstrip("~.")
    domain = env.get_domain("py")
    reftype = node["reftype"]
    module = node.get("py:module") or ""
    for name in (target, f"{module}.{target}"):
        if name in ALIASES:  # a re-exported name, documented where it is defined
            return domain.resolve_xref(env, node["refdoc"], app.builder, reftype, ALIASES[name], node.copy(), contnode)
    types = domain.objtypes_for_role(reftype) or []
    matches = {
        name: obj for name, obj in domain.objects.items()
        if (name == target or name.endswith("." + target)) and obj.objtype in types and not obj.aliased
    }
    if len(matches) > 1 and module:  # several: those of the current module (a family page sets it), if that decides
        matches = {name: obj for name, obj in matches.items() if name.startswith(module + ".")}
    if len(matches) != 1:
        return None
    (name, obj), = matches.items()
    return domain.resolve_xref(env, node["refdoc"], app.builder, reftype, name, node.copy(), contnode)
