"""Files a user was given must not run code: env ids read from datasets are checked before gym.make."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import mandril_envs
from mandril_envs.cli import main as cli_main
from mandril_envs.dataset import DatasetError, DemoDataset, collect


def _with_env_id(source, path, env_id):
    with np.load(source) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["meta"]))
    meta["env_id"] = env_id
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return collect("mandril_envs/Bandit-K5-v0", 2, 2).save(tmp_path_factory.mktemp("d") / "d.npz")


@pytest.mark.parametrize(
    "env_id, message",
    [
        ("this:Zen-v0", "names a module to import"),
        ("evilmod:GridWorld-v0", "names a module to import"),
        ("CartPole-v1", "is not a registered mandril_envs/ id"),
        ("mandril_envs/Nope-v0", "is not a registered mandril_envs/ id"),
    ],
)
def test_dataset_env_ids_must_be_registered_suite_ids(saved, tmp_path, capsys, env_id, message):
    path = _with_env_id(saved, tmp_path / "bad.npz", env_id)
    with pytest.raises(DatasetError, match=message):
        DemoDataset.load(path)
    assert cli_main(["demos", "info", str(path)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "Beautiful is better than ugly" not in captured.out + captured.err


def test_a_module_named_by_a_dataset_in_the_current_folder_is_never_imported(saved, tmp_path):
    marker = tmp_path / "evil-ran"
    (tmp_path / "evilmod.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    path = _with_env_id(saved, tmp_path / "bad.npz", "evilmod:GridWorld-v0")
    result = subprocess.run([sys.executable, "-m", "mandril_envs.cli", "demos", "info", str(path)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2 and "names a module to import" in result.stderr
    assert not marker.exists()


def test_an_explicitly_trusted_id_is_accepted_and_registered_ids_pass(saved):
    assert DemoDataset.load(saved).env_id == "mandril_envs/Bandit-K5-v0"
    assert mandril_envs.check_env_id("mandril_envs/GridWorld-v0") == "mandril_envs/GridWorld-v0"
    assert mandril_envs.check_env_id("x:Y-v0", allow=["x:Y-v0"]) == "x:Y-v0"
    with pytest.raises(TypeError, match="env id must be a string"):
        mandril_envs.check_env_id(5)
