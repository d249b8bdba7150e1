"""The maml-rl command line: failures stop with one line and a non-zero exit, existing runs are not
overwritten, damaged checkpoints are refused, every option is documented, bad input exits 2 early."""

from __future__ import annotations

import argparse
import os

import pytest
import torch

from mandril.cli import build_parser, main
from mandril.core.checkpoint import save_checkpoint

TINY = (
    "name = 'tiny'\nseed = 1\ncheckpoint_every = 1\n"
    "[env]\nid = 'mandril_envs/Bandit-K5-v0'\nkwargs = {{ horizon = 1 }}\n"
    "[policy]\nhidden_sizes = [8]\n"
    "[maml]\nnum_batches = {batches}\nmeta_batch_size = 3\nfast_batch_size = 10\nfast_lr = {lr}\n"
    "[trpo]\nmax_consecutive_rejections = {limit}\n"
    "[validation]\nevery = 1\nn_tasks = 3\n"
    "[test]\nn_tasks = 3\nn_episodes = 5\nreference_repeats = 1\ntuning_tasks = 4\n"
)


def _config(tmp_path, batches=2, lr=0.5, limit=20, name="run.toml"):
    path = tmp_path / name
    path.write_text(TINY.format(batches=batches, lr=lr, limit=limit))
    return str(path)


def _one_line(err):
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err


def test_a_rate_that_saturates_the_inner_step_stops_training_with_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["maml-rl", "train", "--config", _config(tmp_path, batches=3, lr=1e12), "--output-dir", str(run), "--no-progress"]) == 1
    err = _one_line(capsys.readouterr().err)
    assert "MAML-TRPO failed at meta-iteration 2" in err and "fast_lr = 1e+12" in err
    assert "every TRPO step of the run was rejected (3 of 3)" in err
    # the rows of the failed run are kept for the diagnosis, whole
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 4


def test_a_run_of_rejected_steps_stops_training_early(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["maml-rl", "train", "--config", _config(tmp_path, batches=50, lr=1e12, limit=3), "--output-dir", str(run),
                 "--no-progress"]) == 1
    err = _one_line(capsys.readouterr().err)
    assert "the last 3 TRPO steps were all rejected" in err and "fast_lr = 1e+12" in err
    rows = (run / "metrics.csv").read_text().strip().splitlines()[1:]
    assert len(rows) < 50 and f"meta-iteration {len(rows) - 1} " in err
    assert [row.split(",")[10] for row in rows[-3:]] == ["0", "0", "0"]  # the accepted column


def test_a_loss_explosion_stops_training_naming_the_rate(tmp_path, capsys):
    assert main(["maml-rl", "train", "--config", _config(tmp_path, lr=1e300), "--output-dir", str(tmp_path / "run"), "--no-progress"]) == 1
    err = _one_line(capsys.readouterr().err)
    assert "MAML-TRPO failed at meta-iteration" in err and "fast_lr = 1e+300" in err and ("nan" in err or "not finite" in err)


def test_an_existing_run_is_refused_without_resume_and_left_untouched(tmp_path, capsys):
    run = tmp_path / "run"
    config = _config(tmp_path, batches=1)
    assert main(["maml-rl", "train", "--config", config, "--output-dir", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir()}
    assert {"checkpoint.pt", "best.pt", "metrics.csv", "config.json", "curve.png"} <= set(before)
    assert main(["maml-rl", "train", "--config", config, "--output-dir", str(run), "--no-progress", "--num-batches", "2"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "already holds a run" in err and "--resume" in err and "another output dir" in err
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir()} == before
    # --resume continues it
    assert main(["maml-rl", "train", "--config", config, "--output-dir", str(run), "--no-progress", "--num-batches", "2", "--resume"]) == 0
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 3
    # an output dir that is a file is refused too
    (tmp_path / "afile").write_text("x")
    assert main(["maml-rl", "train", "--config", config, "--output-dir", str(tmp_path / "afile"), "--no-progress"]) == 2
    assert "is a file" in _one_line(capsys.readouterr().err)


def test_damaged_or_foreign_checkpoints_are_refused_by_test_with_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    config = _config(tmp_path, batches=1)
    assert main(["maml-rl", "train", "--config", config, "--output-dir", str(run), "--no-progress"]) == 0
    good = (run / "checkpoint.pt").read_bytes()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    plain = tmp_path / "plain.pt"
    torch.save({"policy": {}, "iteration": 1}, plain)
    save_checkpoint(tmp_path / "foreign.pt", "mandril.MandRIL", {"theta": {}})
    cases = {"truncated.pt": good[: len(good) // 2], "flipped.pt": bytes(flipped), "empty.pt": b"", "text.pt": b"not a checkpoint\n"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    capsys.readouterr()
    for name in [*cases, "plain.pt", "foreign.pt", "missing.pt"]:
        out = tmp_path / f"{name}.json"
        code = main(["maml-rl", "test", "--config", config, "--checkpoint", str(tmp_path / name), "--output", str(out), "--no-progress"])
        err = _one_line(capsys.readouterr().err)
        assert code == 2 and name in err, (name, err)
        assert not out.exists() and not out.with_suffix(".md").exists()
    assert main(["maml-rl", "test", "--config", config, "--checkpoint", str(run / "checkpoint.pt"), "--no-progress",
                 "--output", str(tmp_path / "ok.json")]) == 0


def _maml_parsers():
    parser = build_parser()
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    maml = top.choices["maml-rl"]
    sub = next(a for a in maml._actions if isinstance(a, argparse._SubParsersAction))
    return maml, sub.choices


def test_every_subcommand_and_option_is_documented_with_its_default(capsys):
    maml, commands = _maml_parsers()
    assert set(commands) == {"train", "test", "plot"}
    assert maml.description
    for name, parser in commands.items():
        assert parser.description and len(parser.description) > 40, name
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 8, (name, action.dest)
        text = parser.format_help()
        for action in parser._actions:
            if action.default not in (None, False, "", argparse.SUPPRESS):
                assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)
        with pytest.raises(SystemExit) as exit_info:
            main(["maml-rl", name, "--help"])
        assert exit_info.value.code == 0 and "options:" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["train", "--config", "{config}", "--num-batches", "0"], "argument --num-batches: must be an integer >= 1, got 0"),
    (["train", "--config", "{config}", "--num-batches", "ten"], "argument --num-batches: must be an integer >= 1, got 'ten'"),
    (["train", "--config", "{config}", "--threads", "0"], "argument --threads: must be an integer between 1 and 256"),
    (["test", "--config", "{config}", "--n-tasks", "-3"], "argument --n-tasks: must be an integer between 1 and 100,000"),
    (["plot", "--metrics", "m.csv", "--out", "x.png", "--window", "0"], "argument --window: must be an integer >= 1"),
    (["plot", "--metrics", "m.csv", "--out", "x.png", "--scale", "nan"], "argument --scale: must be a finite non-zero number"),
    (["plot", "--metrics", "m.csv", "--out", "x.png", "--reference", "ucb=lots"], "argument --reference: must be LABEL=VALUE"),
    (["train", "--config", "{config}", "--bogus"], "unrecognized arguments: --bogus"),
    (["test", "--config"], "argument --config: expected one argument"),
])
def test_bad_arguments_exit_2_with_one_line_naming_them(tmp_path, capsys, argv, match):
    argv = [a.replace("{config}", _config(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(["maml-rl", *argv])
    assert exit_info.value.code == 2
    err = _one_line(capsys.readouterr().err)
    assert match in err and err.startswith(f"mandril maml-rl {argv[0]}: error:")
    assert os.listdir(tmp_path) == ["run.toml"]


def test_bad_paths_exit_2_before_any_work(tmp_path, capsys):
    config = _config(tmp_path)
    (tmp_path / "adir").mkdir()
    cases = [
        (["test", "--config", config, "--init", "--output", str(tmp_path / "adir")], "is a directory"),
        (["test", "--config", config, "--init", "--checkpoint", "x.pt"], "exclude each other"),
        (["plot", "--metrics", str(tmp_path / "missing.csv"), "--out", "x.png"], "no such file"),
        (["plot", "--metrics", config, "--out", str(tmp_path / "adir")], "is a directory"),
        (["train", "--config", str(tmp_path / "missing.toml")], "no such file"),
    ]
    for argv, match in cases:
        assert main(["maml-rl", *argv, *(["--no-progress"] if argv[0] != "plot" else [])]) == 2, argv
        err = _one_line(capsys.readouterr().err)
        assert match in err, (argv, err)
    assert sorted(os.listdir(tmp_path)) == ["adir", "run.toml"] and not os.listdir(tmp_path / "adir")
