"""Without Minari, the export says which extra to install, before anything is written (both CI legs)."""

import sys

import pytest

from mandril_envs import minari_export
from mandril_envs.dataset import collect


def test_export_without_minari_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "minari", None)  # what an environment without Minari looks like to `import minari`
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    dataset = collect("mandril_envs/Bandit-v0", 1, 2)
    with pytest.raises(ImportError, match=r"Minari export needs Minari: pip install 'mandril\[minari\]'"):
        dataset.to_minari("bandit-expert-v0", 0)
    with pytest.raises(ImportError, match=r"mandril\[minari\]"):
        minari_export.accepted_fields()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="naming rule"):  # a malformed id is refused first, Minari or not
        dataset.to_minari("bandit", 0)
