"""The README's algorithm blocks (those that import ``mandril``) run on their own, each in a fresh interpreter."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("readme_helpers", Path(__file__).resolve().parents[1] / "envs" / "test_readme.py")
readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme)

# what the tour's fit block must have produced (checked in the same interpreter, after the block)
CHECKS = {"tabular = ": "\nassert output.reward.shape == (64,) and tabular.reward.shape == (64,)\n"}


def test_algorithm_blocks_run_on_their_own(tmp_path):
    blocks = [b for b in readme.readme_blocks(include_algorithms=True) if readme.needs_algorithms(b)]
    assert len(blocks) >= 1
    checked = 0
    for index, block in enumerate(blocks):
        extra = "".join(check for marker, check in CHECKS.items() if marker in block)
        checked += bool(extra)
        result = readme.run_block(block, tmp_path, extra)
        assert result.returncode == 0, f"README algorithm block {index} failed on its own:\n{block}\n--- stderr ---\n{result.stderr[-4000:]}"
    assert checked == len(CHECKS)
