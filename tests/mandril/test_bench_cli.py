"""The harness and the IRL command line, end to end on tiny settings."""

import json

import numpy as np
import pytest

from mandril.bench import load_suite, run_suite
from mandril.cli import main

TINY_SUITE = """
name = "tiny"
env_id = "mandril_envs/GridWorld-v0"
env_kwargs = {size = 5}
input_kind = "map"
iterations = 3
pretrain_iterations = 2
[reward_model]
kind = "conv"
hidden = [4]
[train]
n_tasks = 6
n_demos = 4
[mandril]
meta_batch_size = 2
n_train_demos = 1
n_test_demos = 2
inner_lr = 0.03
adapt_steps = 1
[maxent]
steps = 3
[evaluation]
splits = ["test", "test_unseen"]
n_demos = [1, 2]
n_tasks = 2
seeds = [0]
"""


def test_suite_runs_end_to_end(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SUITE)
    suite = load_suite(path)
    assert suite.evaluation.env_kwargs == {"size": 5} and suite.evaluation.input_kind == "map"
    result = run_suite(suite, tmp_path / "out", progress=False)
    out = tmp_path / "out"
    for name in ("records.csv", "summary.csv", "training.csv", "evd.png", "report.md"):
        assert (out / name).is_file(), name
    rows = (out / "records.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3 * 2 * 2 * 2  # methods x splits x tasks x n_demos
    assert {r["method"] for r in result["summary"]} == {"mandril", "pretrain_finetune", "maxent"}
    assert all(r["mean"] >= 0 for r in result["summary"])
    assert "| mandril |" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "text, message",
    [
        ('name = "x"\nbogus = 1', "unknown keys \\['bogus'\\]"),
        ('name = "x"\n[mandril]\ninner_lr = -1', "inner_lr must be a finite number > 0"),
        ('name = "x"\nmethods = ["airl2"]', "methods must be a non-empty list"),
        ('name = "x"\n[reward_model]\nkind = "transformer"', "reward model kind must be one of"),
        ('name = "x"\n[train\n', "not valid TOML"),
    ],
)
def test_bad_suites_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises((ValueError, TypeError), match=message):
        load_suite(path)


def test_cli_bad_suite_exits_2(tmp_path, capsys):
    assert main(["bench", "--suite", str(tmp_path / "missing.toml"), "--quiet"]) == 2
    assert "no suite file" in capsys.readouterr().err


def test_cli_train_resume_and_adapt(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "mandril", "--env", "mandril_envs/GridWorld-v0", "--env-kwargs", '{"size": 5}', "--hidden", "4",
              "--train-tasks", "6", "--train-demos", "4", "--meta-batch-size", "2", "--n-train-demos", "1", "--n-test-demos", "2",
              "--inner-lr", "0.03", "--adapt-steps", "1", "--checkpoint-every", "2", "--out", str(out), "--quiet"]
    assert main(common + ["--iterations", "2"]) == 0
    assert main(common + ["--iterations", "2"]) == 2  # refuses to overwrite a run
    assert "pass --resume" in capsys.readouterr().err
    assert main(common + ["--iterations", "4", "--resume"]) == 0
    lines = (out / "metrics.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2", "3"]
    run = json.loads((out / "run.json").read_text())
    assert run["env_kwargs"] == {"size": 5} and run["reward_model"]["kind"] == "conv"
    scores = tmp_path / "scores.npz"
    assert main(["adapt", "--run", str(out), "--tasks", "2", "--demos", "1", "--out", str(scores)]) == 0
    assert "EVD mean" in capsys.readouterr().out
    with np.load(scores) as data:
        assert data["rewards"].shape == (2, 25) and (data["evd"] >= 0).all()


def test_cli_train_bad_input(tmp_path, capsys):
    assert main(["train", "mandril", "--inner-lr", "0", "--out", str(tmp_path / "r"), "--quiet", "--train-tasks", "2"]) == 2
    assert "inner_lr must be a finite number > 0" in capsys.readouterr().err
    assert main(["adapt", "--run", str(tmp_path / "none")]) == 2
    assert "no run.json" in capsys.readouterr().err
