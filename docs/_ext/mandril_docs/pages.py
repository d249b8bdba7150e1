"""Writing generated pages: only when their text changed (so Sphinx rereads only what changed)."""

from __future__ import annotations

import shutil
from pathlib import Path


def write_if_changed(path: Path, content: "str | bytes") -> None:
    """Write ``content`` to ``path`` (creating folders) unless the file already holds exactly that."""
    data = content.encode() if isinstance(content, str) else content
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def prune(folder: Path, keep: "set[Path]") -> None:
    """Delete every file under ``folder`` that is not in ``keep`` (pages of things that are gone)."""
    if not folder.exists():
        return
    keep = {p.resolve() for p in keep}
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file() and path.resolve() not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            shutil.rmtree(path)


def docs_dir(app) -> Path:
    """The documentation's source folder."""
    return Path(app.srcdir)


def root_dir(app) -> Path:
    """The repository root (the parent of ``docs/``)."""
    return Path(app.srcdir).parent
