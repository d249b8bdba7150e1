"""Files a user was given cannot run code: checkpoints load with weights_only and a checksum, and
env ids read from run files must be registered mandril_envs/ ids."""

from __future__ import annotations

import json
import os

import pytest
import torch

from mandril.cli import main


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    argv = ["train", "mandril", "--env", "mandril_envs/GridWorld-v0", "--env-kwargs", '{"size": 5}', "--reward-model", '{"kind": "conv", "hidden": [4]}',
            "--train-tasks", "4", "--train-demos", "3", "--meta-batch-size", "2", "--n-train-demos", "1", "--n-test-demos", "2",
            "--iterations", "1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    return out


def _copy_run(run_dir, target):
    target.mkdir()
    for name in ("run.json", "prepared.pt"):
        (target / name).write_bytes((run_dir / name).read_bytes())
    return target


def test_adapt_refuses_a_checkpoint_whose_pickle_runs_code(run_dir, tmp_path, capsys):
    run = _copy_run(run_dir, tmp_path / "evil")
    marker = tmp_path / "pwned"
    torch.save({"format": "mandril.MandRIL", "model": _Payload(str(marker))}, run / "prepared.pt")
    assert main(["adapt", "--run", str(run), "--tasks", "1", "--demos", "1"]) == 2
    err = capsys.readouterr().err
    assert "prepared.pt" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


def test_adapt_refuses_a_bit_flipped_checkpoint(run_dir, tmp_path, capsys):
    run = _copy_run(run_dir, tmp_path / "flipped")
    data = bytearray((run / "prepared.pt").read_bytes())
    refused = 0
    for offset in range(len(data) // 3, 2 * len(data) // 3, len(data) // 12):
        damaged = bytearray(data)
        damaged[offset] ^= 0x04
        (run / "prepared.pt").write_bytes(bytes(damaged))
        code = main(["adapt", "--run", str(run), "--tasks", "1", "--demos", "1"])
        err = capsys.readouterr().err
        if code == 2:
            assert "prepared.pt" in err
            refused += 1
    assert refused >= 3


@pytest.mark.parametrize("env_id, message", [("this:Zen-v0", "names a module to import"), ("CartPole-v1", "not a registered mandril_envs/ id")])
def test_run_files_naming_other_envs_are_refused(run_dir, tmp_path, capsys, env_id, message):
    run = _copy_run(run_dir, tmp_path / "other")
    data = json.loads((run / "run.json").read_text())
    data["env_id"] = env_id
    (run / "run.json").write_text(json.dumps(data))
    assert main(["adapt", "--run", str(run), "--tasks", "1"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Beautiful is better" not in captured.out + captured.err


def test_maml_test_refuses_a_checkpoint_whose_pickle_runs_code(tmp_path, capsys):
    marker = tmp_path / "pwned"
    torch.save({"format": "mandril.maml_rl.checkpoint/1", "policy": _Payload(str(marker)), "iteration": 0}, tmp_path / "evil.pt")
    config = tmp_path / "c.toml"
    config.write_text("name = 'x'\n[env]\nid = 'mandril_envs/Bandit-K5-v0'\nkwargs = { horizon = 1 }\n[test]\nn_tasks = 2\n")
    assert main(["maml-rl", "test", "--config", str(config), "--checkpoint", str(tmp_path / "evil.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "evil.pt" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()
