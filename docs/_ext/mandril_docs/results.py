"""The results pages, generated from the committed benchmark results.

Every folder under ``benchmarks/results/`` that holds a markdown file gets a page (``report.md`` or
``summary.md`` first, then every other markdown file as a section), as does ``benchmarks/maml/results/``
and each of its subfolders; so a new published report (``benchmarks/results/standard/``) gets its page
with no code here. Images are copied next to the page: those a markdown file shows stay where it
shows them, the others are shown under the section whose name they start with (``X-curve.png`` under
``X.md``) or at the end. Data files (CSV, JSON, text) are offered as downloads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mandril_docs.pages import docs_dir, prune, root_dir, write_if_changed

#: Where results live (relative to the repository root) and the name of their pages' folder.
SOURCES = (("benchmarks/results", "benchmark"), ("benchmarks/maml/results", "maml"))
#: Main files of a results folder, in order of preference.
MAIN_FILES = ("report.md", "summary.md", "README.md")
IMAGES = (".png", ".gif", ".svg", ".jpg")
DATA = (".csv", ".json", ".txt", ".toml")

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def _fix_headings(text: str, start_level: int) -> str:
    """Headings shifted to begin at ``start_level`` and never to skip a level (as MyST asks)."""
    out, previous, shift = [], start_level - 1, None
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        match = None if fence else _HEADING.match(line)
        if match:
            level = len(match.group(1))
            if shift is None:
                shift = start_level - level
            level = max(start_level, min(level + shift, previous + 1, 6))
            previous = level
            line = "#" * level + " " + match.group(2)
        out.append(line)
    return "\n".join(out)


def _main_file(folder: Path) -> "Path | None":
    for name in MAIN_FILES:
        if (folder / name).is_file():
            return folder / name
    mds = sorted(folder.glob("*.md"))
    return mds[0] if mds else None


def results_folders(root: Path) -> list[tuple[Path, str]]:
    """``(folder, page slug)`` of every folder with a markdown file under each of :data:`SOURCES`."""
    found = []
    for source, slug in SOURCES:
        base = root / source
        if not base.is_dir():
            continue
        for folder in sorted([base, *[p for p in base.rglob("*") if p.is_dir()]]):
            if _main_file(folder) is not None:
                rel = folder.relative_to(base)
                found.append((folder, slug if str(rel) == "." else f"{slug}-{'-'.join(rel.parts)}"))
    return found


def _page(folder: Path, slug: str, out: Path, root: Path) -> tuple[str, set[Path]]:
    written: set[Path] = set()
    assets = out / slug

    def copy(source: Path) -> str:
        target = assets / source.relative_to(folder)
        write_if_changed(target, source.read_bytes())
        written.add(target)
        return f"{slug}/{source.relative_to(folder).as_posix()}"

    def body(md: Path, level: int) -> tuple[str, set[Path]]:
        text = md.read_text()
        shown: set[Path] = set()

        def relink(match: re.Match) -> str:
            target = (md.parent / match.group(1)).resolve()
            if target.is_file():
                shown.add(target)
                return match.group(0).replace(match.group(1), copy(target))
            return match.group(0)

        return _fix_headings(_IMAGE_LINK.sub(relink, text), level), shown

    main = _main_file(folder)
    assert main is not None
    rel = folder.relative_to(root).as_posix()
    text, shown = body(main, 1)
    lines = []
    if not text.lstrip().startswith("# "):
        lines += [f"# `{rel}`", ""]
        text = _fix_headings(text, 2)
    lines += [text, "", f"From `{rel}/{main.name}` in the repository (generated from the committed results when the docs are built).", ""]
    images = sorted(p for p in folder.iterdir() if p.suffix in IMAGES)
    for md in sorted(p for p in folder.glob("*.md") if p != main):
        section, more = body(md, 3)
        shown |= more
        lines += [f"## `{md.stem}`", "", section, ""]
        for image in images:
            if image.resolve() not in shown and image.stem.startswith(md.stem + "-"):
                lines += [f"![{image.stem}]({copy(image)})", ""]
                shown.add(image.resolve())
    rest = [image for image in images if image.resolve() not in shown]
    if rest:
        lines += ["## Figures", ""] + [f"![{image.stem}]({copy(image)})\n" for image in rest]
    data = sorted(p for p in folder.iterdir() if p.suffix in DATA)
    if data:
        lines += ["## Data files", ""] + [f"- {{download}}`{p.name} <{copy(p)}>`" for p in data] + [""]
    return "\n".join(lines), written


def generate(app: Any) -> None:
    """Write ``docs/results/``: an index and a page per results folder."""
    root = root_dir(app)
    out = docs_dir(app) / "results"
    written: set[Path] = set()
    folders = results_folders(root)
    for folder, slug in folders:
        text, files = _page(folder, slug, out, root)
        path = out / f"{slug}.md"
        write_if_changed(path, text)
        written |= files | {path}
    rows = [f"- [`{folder.relative_to(root).as_posix()}`]({slug}.md)" for folder, slug in folders]
    index = out / "index.md"
    write_if_changed(
        index,
        "# Results\n\nThe committed results, one page per folder of `benchmarks/results/` and `benchmarks/maml/results/` "
        "that holds a report (generated when the docs are built; a new folder gets its page). How they were made "
        "and what they say: `benchmarks/README.md` and `benchmarks/maml/README.md` in the repository.\n\n"
        + "\n".join(rows) + "\n\n```{toctree}\n:hidden:\n\n" + "\n".join(slug for _, slug in folders) + "\n```\n",
    )
    written.add(index)
    prune(out, written)
