"""Release hygiene: one version source, the license, the citation, the changelog, py.typed."""

import re
import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
from pathlib import Path

import mandril_envs
from mandril_envs import _version

ROOT = Path(__file__).resolve().parents[2]


def test_one_version_source():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "mandril_envs._version.__version__"}
    assert mandril_envs.__version__ == _version.__version__ == "0.2.0"
    assert re.search(r'^__version__ = "0\.2\.0"$', (ROOT / "mandril" / "__init__.py").read_text(), flags=re.M) is None  # no second copy
    from mandril_envs.dataset import MINARI_CODE_PERMALINK

    assert MINARI_CODE_PERMALINK.startswith(f"mandril {mandril_envs.__version__}:")


def test_license_citation_changelog_and_py_typed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == {"text": "MIT"} and (ROOT / "LICENSE").read_text().startswith("MIT License")
    citation = (ROOT / "CITATION.cff").read_text()
    assert "cff-version: 1.2.0" in citation and f'version: "{mandril_envs.__version__}"' in citation and "license: MIT" in citation
    assert "Learning a Prior over Intent via Meta-Inverse Reinforcement Learning" in citation and "year: 2019" in citation
    assert re.search(r"family-names: Xu\s+given-names: Kelvin", citation)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{mandril_envs.__version__}]" in changelog and "## [0.1.0]" in changelog
    for package in ("mandril", "mandril_envs"):
        assert (ROOT / package / "py.typed").is_file() and project["tool"]["setuptools"]["package-data"][package] == ["py.typed"]
