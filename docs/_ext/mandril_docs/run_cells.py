"""Run a tutorial script cell by cell and record each cell's output (``python -m mandril_docs.run_cells SCRIPT OUT``).

A script is plain Python in the "percent" format: ``# %%`` starts a code cell, ``# %% [markdown]`` a text
cell whose lines are comments (``# `` stripped). Code cells run in one namespace, in order; what each
prints (stdout and stderr) and the matplotlib figures it leaves open are recorded. The first cell that
raises stops the run: its traceback is its output and the exit status is 1. Writes ``OUT`` (JSON) and the
figures next to it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path


def parse_cells(text: str) -> list[tuple[str, str]]:
    """``[(kind, text), ...]`` with kind ``"code"`` or ``"markdown"``, in order; empty cells dropped."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):
            cells.append(("code", [line]))
    out = []
    for kind, lines in cells:
        if kind == "markdown":
            lines = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines]
        body = "\n".join(lines).strip("\n")
        if body.strip():
            out.append((kind, body))
    return out


def run(script: Path, out: Path) -> int:
    """Run ``script``'s cells, write ``out``; 0 if every cell ran, else 1."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    cells = parse_cells(script.read_text())
    namespace: dict = {"__name__": "__main__", "__file__": str(script)}
    records, status, start = [], 0, time.perf_counter()
    for index, (kind, text) in enumerate(cells):
        if kind == "markdown":
            records.append({"kind": kind, "text": text})
            continue
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                exec(compile(text, f"{script.name} (cell {index})", "exec"), namespace)
            except BaseException:  # noqa: BLE001 (any failure is the page's failure)
                traceback.print_exc()
                status = 1
        figures = []
        if "matplotlib.pyplot" in sys.modules:
            import matplotlib.pyplot as plt

            for number in plt.get_fignums():
                name = f"{script.stem}-cell{index}-fig{number}.png"
                plt.figure(number).savefig(out.parent / name, dpi=100, bbox_inches="tight")
                figures.append(name)
            plt.close("all")
        records.append({"kind": kind, "source": text, "output": buffer.getvalue(), "figures": figures})
        if status:
            break
    out.write_text(json.dumps({"cells": records, "seconds": time.perf_counter() - start, "status": status}, indent=1))
    return status


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))
