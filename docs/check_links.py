"""Check that every local link and image of the built HTML resolves: ``python docs/check_links.py [docs/_build/html]``.

For each ``href`` and ``src`` of every page (external ``http(s)``/``mailto`` links left alone): the file
must exist, and a ``#fragment`` must be an ``id`` (or ``name``) of the target page. Prints one line per
broken link and exits 1 if there is any, else prints how many links it checked and exits 0.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

SKIP_SCHEMES = ("http", "https", "mailto", "data", "javascript", "ftp")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, "str | None"]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name"):
                self.ids.add(value)
            elif (name == "href" and tag in ("a", "link")) or (name == "src" and tag in ("img", "script", "source", "iframe")):
                self.links.append((tag, value))


def _parse(path: Path, cache: dict) -> _Page:
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = page
    return cache[path]


def broken_links(root: Path) -> tuple[list[str], int]:
    """``(problems, number of links checked)`` for every HTML page under ``root``."""
    cache: dict = {}
    problems, checked = [], 0
    for page_path in sorted(root.rglob("*.html")):
        page = _parse(page_path, cache)
        for tag, link in page.links:
            parts = urlsplit(link)
            if parts.scheme in SKIP_SCHEMES or (parts.scheme and parts.scheme != "file") or parts.netloc:
                continue
            checked += 1
            target = page_path if not parts.path else (page_path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            where = f"{page_path.relative_to(root)}: <{tag}> {link}"
            if not target.exists():
                problems.append(f"{where}: no such file")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parse(target, cache).ids:
                problems.append(f"{where}: no anchor #{parts.fragment}")
    return problems, checked


def main(argv: "list[str] | None" = None) -> int:
    """Check the site in ``argv[0]`` (default ``docs/_build/html``)."""
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else Path(__file__).resolve().parent / "_build" / "html")
    if not (root / "index.html").is_file():
        print(f"check_links: {root} is not a built site (no index.html): run make docs first", file=sys.stderr)
        return 2
    problems, checked = broken_links(root)
    for problem in problems:
        print(problem)
    print(f"check_links: {checked} local links and images in {root}: {len(problems)} broken")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
