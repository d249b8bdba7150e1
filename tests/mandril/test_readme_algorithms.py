"""Every Python block of the README runs as written, the algorithm tour included."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("readme_helpers", Path(__file__).resolve().parents[1] / "envs" / "test_readme.py")
readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme)


def test_whole_readme_runs(tmp_path, monkeypatch):
    blocks = readme.readme_blocks(include_algorithms=True)
    assert len(blocks) > len(readme.readme_blocks(include_algorithms=False))
    monkeypatch.chdir(tmp_path)
    namespace = readme.run_blocks(blocks)
    assert namespace["output"].reward.shape == (64,) and namespace["tabular"].reward.shape == (64,)
