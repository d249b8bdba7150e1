"""Every Python block of the README and of the hand-written guide (``docs/guide/*.md``) runs on its own, as
written, in a fresh interpreter.

The blocks that need torch's ``mandril`` run in tests/mandril; here the rest. A block that imports an
optional package (stable-baselines3, imitation, Minari) runs where that package is installed: all of
them in the pinned environment (CI leg 1, where a skipped block is a failure), none of them in leg 2
(mandril_envs alone).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide"
_ALGORITHMS = re.compile(r"^\s*(from|import) mandril\b(?!_envs)", flags=re.M)
_IMPORTS = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][A-Za-z0-9_]*)", flags=re.M)


def documents() -> list[Path]:
    """The markdown files whose ```python blocks must run: the README, then the guide's pages (by name)."""
    return [README, *sorted(GUIDE.glob("*.md"))]


def readme_blocks(include_algorithms: bool) -> list[tuple[str, str]]:
    """``(where, block)`` for every ```python block of :func:`documents`, in order (``where``: the file,
    relative to the repository, and the block's number in it); without the ones that need torch's
    ``mandril`` unless asked."""
    blocks = []
    for path in documents():
        found = re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
        blocks += [(f"{path.relative_to(ROOT).as_posix()} block {number}", block) for number, block in enumerate(found)]
    return blocks if include_algorithms else [(where, b) for where, b in blocks if not needs_algorithms(b)]


def needs_algorithms(block: str) -> bool:
    """Whether the block imports ``mandril`` (torch), not just ``mandril_envs``."""
    return bool(_ALGORITHMS.search(block))


def missing_modules(block: str) -> list[str]:
    """The top-level modules the block imports that are not installed here."""
    return sorted({name for name in _IMPORTS.findall(block) if importlib.util.find_spec(name) is None})


def run_block(block: str, cwd: Path, extra: str = "") -> subprocess.CompletedProcess:
    """Run ``block`` (then ``extra``, checks on its results) in a fresh interpreter in ``cwd``, with this
    checkout first on the path, one torch thread and a Minari store inside ``cwd``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "MINARI_DATASETS_PATH": str(cwd / "minari-datasets"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    return subprocess.run([sys.executable, "-c", block + extra], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def check_blocks_run(blocks: list[tuple[str, str]], cwd: Path) -> list[int]:
    """Run each ``(where, block)`` in a fresh interpreter; return the indices of those skipped for a missing package."""
    skipped = []
    for index, (where, block) in enumerate(blocks):
        if missing_modules(block):
            skipped.append(index)
            continue
        result = run_block(block, cwd)
        assert result.returncode == 0, f"{where} failed on its own:\n{block}\n--- stderr ---\n{result.stderr[-4000:]}"
    return skipped


def test_readme_env_tour_runs_block_by_block(tmp_path):
    blocks = readme_blocks(include_algorithms=False)
    assert len(blocks) >= 11
    skipped = check_blocks_run(blocks, tmp_path)
    assert (tmp_path / "reports" / "tour-bandit.npz").is_file()
    if importlib.util.find_spec("imitation") is not None:  # the pinned environment has every optional package
        assert skipped == [], f"blocks {[blocks[i][0] for i in skipped]} were skipped: {[missing_modules(blocks[i][1]) for i in skipped]}"
    assert all(missing_modules(blocks[i][1]) for i in skipped)


def test_the_readme_and_every_guide_page_with_code_are_read():
    where = {w.split(" block ")[0] for w, _ in readme_blocks(include_algorithms=True)}
    assert {"README.md", "docs/guide/tour.md", "docs/guide/ecosystem.md", "docs/guide/methods.md", "docs/guide/families.md"} <= where


def test_the_helpers_tell_what_a_block_needs():
    assert missing_modules("import numpy\nfrom gymnasium import spaces\n") == []
    assert missing_modules("import not_a_module_here\n") == ["not_a_module_here"]
    assert needs_algorithms("import mandril\n") and not needs_algorithms("import mandril_envs\nfrom mandril_envs import demos\n")
