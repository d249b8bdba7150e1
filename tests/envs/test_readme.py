"""The README's Python tour runs as written (the mandril_envs part here; all of it in tests/mandril)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_blocks(include_algorithms: bool) -> list[str]:
    """The README's ```python blocks, in order; without the ones that need torch unless asked."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    if include_algorithms:
        return blocks
    return [b for b in blocks if not re.search(r"^\s*(from|import) mandril\b(?!_envs)", b, flags=re.M)]


def run_blocks(blocks: list[str]) -> dict:
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    return namespace


def test_readme_env_tour_runs(tmp_path, monkeypatch):
    blocks = readme_blocks(include_algorithms=False)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    run_blocks(blocks)
    assert (tmp_path / "reports" / "tour-bandit.npz").is_file()
