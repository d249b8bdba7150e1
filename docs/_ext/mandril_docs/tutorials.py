"""The tutorials: scripts under ``docs/tutorial_scripts/``, executed at build time, output captured into the page.

Each script (percent format, see :mod:`mandril_docs.run_cells`) runs in a fresh interpreter in its own
temporary folder, with a time limit (``mandril_docs_tutorial_timeout`` seconds); its ``assert``
statements are the output checks. A script that fails, times out or leaves a cell's check unmet fails
the build (a warning under ``-W``) and its page shows the traceback. Results are cached under
``docs/_build/tutorial-cache`` by the hash of the script and of every source file of ``mandril`` and
``mandril_envs``, so a rebuild reruns only what changed. The scripts run in parallel (two at a time).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sphinx.util import logging

from mandril_docs.pages import docs_dir, prune, root_dir, write_if_changed

logger = logging.getLogger(__name__)

#: Longest output shown per cell (characters; the rest is cut, saying so).
MAX_OUTPUT = 6000


def _sources_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for package in ("mandril", "mandril_envs", "docs/_ext/mandril_docs"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(script: Path, cache: Path, key: str, root: Path, timeout: float) -> tuple[dict, Path]:
    folder = cache / script.stem
    record = folder / "result.json"
    if record.exists() and (folder / "key").exists() and (folder / "key").read_text() == key:
        return json.loads(record.read_text()), folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "docs" / "_ext"), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "MANDRIL_REPO": str(root)}
    with tempfile.TemporaryDirectory(prefix=f"tutorial-{script.stem}-") as work:
        env["MINARI_DATASETS_PATH"] = str(Path(work) / "minari")
        start = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-m", "mandril_docs.run_cells", str(script), str(record)], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=timeout)
            crashed = done.returncode not in (0, 1) or not record.exists()
            if crashed:
                result = {"cells": [], "status": 2, "seconds": time.perf_counter() - start, "error": (done.stdout + done.stderr)[-4000:]}
            else:
                result = json.loads(record.read_text())
        except subprocess.TimeoutExpired:
            result = {"cells": [], "status": 2, "seconds": timeout, "error": f"timed out after {timeout:g} s"}
    record.write_text(json.dumps(result))
    if result["status"] == 0:
        (folder / "key").write_text(key)
    return result, folder


def _page(script: Path, result: dict, figures: Path, out: Path, root: Path) -> tuple[str, set[Path]]:
    written: set[Path] = set()
    lines: list[str] = []
    for cell in result["cells"]:
        if cell["kind"] == "markdown":
            lines += [cell["text"], ""]
            continue
        lines += ["```python", cell["source"], "```", ""]
        output = cell["output"].rstrip()
        if output:
            if len(output) > MAX_OUTPUT:
                output = output[:MAX_OUTPUT] + f"\n... ({len(output) - MAX_OUTPUT} more characters)"
            lines += ["```text", output.replace("```", "'''"), "```", ""]
        for name in cell["figures"]:
            target = out / "img" / name
            write_if_changed(target, (figures / name).read_bytes())
            written.add(target)
            lines += [f"![figure](img/{name})", ""]
    if result["status"]:
        lines += ["```text", "THIS TUTORIAL FAILED WHEN THE DOCS WERE BUILT", result.get("error", ""), "```", ""]
    rel = script.relative_to(root).as_posix()
    lines += ["---", "", f"Executed when these docs were built, in {result['seconds']:.0f} s on one CPU core; the "
              f"script is `{rel}` in the repository (run it yourself: `python {rel}` from an empty folder).", ""]
    if not lines[0].startswith("# "):
        lines = [f"# {script.stem}", ""] + lines
    return "\n".join(lines), written


def generate(app: Any) -> None:
    """Run every tutorial script (cached) and write ``docs/tutorials/``."""
    root = root_dir(app)
    scripts = sorted((docs_dir(app) / "tutorial_scripts").glob("*.py"))
    out = docs_dir(app) / "tutorials"
    cache = Path(app.outdir).parent / "tutorial-cache"
    sources = _sources_hash(root)
    timeout = float(app.config.mandril_docs_tutorial_timeout)
    keys = {s: hashlib.sha256((sources + s.read_text()).encode()).hexdigest() for s in scripts}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda s: _run(s, cache, keys[s], root, timeout), scripts))
    written: set[Path] = set()
    titles = []
    for script, (result, folder) in zip(scripts, results):
        text, files = _page(script, result, folder, out, root)
        path = out / f"{script.stem}.md"
        write_if_changed(path, text)
        written |= files | {path}
        titles.append(script.stem)
        logger.info(f"[mandril_docs] tutorial {script.name}: {'ok' if result['status'] == 0 else 'FAILED'} in {result['seconds']:.1f} s")
        if result["status"]:
            failed = next((c for c in reversed(result["cells"]) if c["kind"] == "code"), None)
            detail = (failed["output"] if failed else result.get("error", "")).strip().splitlines()
            logger.warning(f"tutorial {script.name} failed: {detail[-1] if detail else 'no output'}", type="mandril_docs", subtype="tutorial",
                           location=str(script))
    index = out / "index.md"
    write_if_changed(
        index,
        "# Tutorials\n\nEach tutorial is a script in `docs/tutorial_scripts/`, run when the docs are built (on one CPU core, "
        "in well under a minute each); what you see below each block is what it printed then, and its `assert`s "
        "passed. A tutorial that fails fails the docs build.\n\n```{toctree}\n:maxdepth: 1\n\n" + "\n".join(titles) + "\n```\n",
    )
    written.add(index)
    prune(out, written)
