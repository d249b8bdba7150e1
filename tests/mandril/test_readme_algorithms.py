"""The algorithm blocks (those that import ``mandril``) of the README and the guide (``docs/guide/*.md``) run on their
own, each in a fresh interpreter."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("readme_helpers", Path(__file__).resolve().parents[1] / "envs" / "test_readme.py")
readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme)

# what the fit blocks must have produced (checked in the same interpreter, after the block): the methods
# guide's, and the README's ten lines
CHECKS = {
    "tabular = ": "\nassert output.reward.shape == (64,) and tabular.reward.shape == (64,)\n",
    'fit = mandril.make("maxent_linear")': "\nassert fit.reward.shape == (64,)\n",
}


def test_algorithm_blocks_run_on_their_own(tmp_path):
    blocks = [(where, b) for where, b in readme.readme_blocks(include_algorithms=True) if readme.needs_algorithms(b)]
    assert len(blocks) >= 2 and blocks[0][0].startswith("README.md")  # the README's ten lines, the guide's methods tour
    checked = 0
    for where, block in blocks:
        extra = "".join(check for marker, check in CHECKS.items() if marker in block)
        checked += bool(extra)
        result = readme.run_block(block, tmp_path, extra)
        assert result.returncode == 0, f"{where} (an algorithm block) failed on its own:\n{block}\n--- stderr ---\n{result.stderr[-4000:]}"
    assert checked == len(CHECKS)
