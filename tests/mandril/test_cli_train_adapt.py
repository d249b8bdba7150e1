"""``mandril train`` and ``mandril adapt`` end to end on tiny settings, and their refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mandril.cli import build_parser, main

TINY = ["--env", "mandril_envs/GridWorld-v0", "--env-kwargs", '{"size": 5}', "--reward-model", '{"kind": "conv", "hidden": [4]}',
        "--train-tasks", "6", "--train-demos", "4", "--meta-batch-size", "2", "--n-train-demos", "1", "--n-test-demos", "2",
        "--checkpoint-every", "2", "--quiet"]


def test_train_resume_and_adapt(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "mandril", *TINY, "--iterations", "2", "--out", str(out)]) == 0
    assert main(["train", "mandril", *TINY, "--iterations", "2", "--out", str(out)]) == 2  # refuses to overwrite a run
    assert "pass --resume" in capsys.readouterr().err
    assert main(["train", "mandril", "--out", str(out), "--iterations", "4", "--resume", "--quiet"]) == 0
    lines = (out / "metrics.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2", "3"]
    run = json.loads((out / "run.json").read_text())
    assert run["env_kwargs"] == {"size": 5} and run["config"]["reward_model"]["hidden"] == [4] and run["config"]["iterations"] == 4
    scores = tmp_path / "scores.npz"
    assert main(["adapt", "--run", str(out), "--tasks", "2", "--demos", "1", "--out", str(scores)]) == 0
    printed = capsys.readouterr().out
    assert "normalized EVD" in printed and "a uniform random policy scores" in printed
    with np.load(scores) as data:
        assert data["rewards"].shape == (2, 25) and (data["evd"] >= 0).all() and len(data["tasks"]) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing half-written


def test_resume_refuses_changed_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "mandril", *TINY, "--iterations", "1", "--out", str(out)]) == 0
    assert main(["train", "mandril", "--out", str(out), "--iterations", "2", "--resume", "--inner-lr", "5"]) == 2
    err = capsys.readouterr().err
    assert "['inner_lr']" in err and "start a new run" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "mandril", "--iterations", "-5"], "iterations must be an int >= 0"),
        (["train", "mandril", "--inner-lr", "0"], "inner_lr must be a finite number > 0"),
        (["train", "mandril", "--env", "mandril_envs/Nope-v0"], "is not a registered mandril_envs/ id"),
        (["train", "mandril", "--threads", "0"], "must be an integer between 1 and 256"),
        (["train", "mandril", "--checkpoint-every", "-1"], "checkpoint_every must be an int >= 1"),
        (["train", "mandril", "--input-kind", "features"], "input_kind must be one of ['map', 'rgb']"),
        (["train", "mandril", "--train-tasks", "0"], "must be an integer >= 1"),
    ],
)
def test_bad_training_input_is_refused_before_anything_is_written(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) if "--threads" in argv or "--train-tasks" in argv else _nothing():
        code = main([*argv, "--out", str(out), "--quiet"])
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and not out.exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_adapt_refuses_bad_input(tmp_path, capsys):
    assert main(["adapt", "--run", str(tmp_path / "none")]) == 2
    assert "no run.json" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(["train", "mandril", *TINY, "--iterations", "1", "--out", str(out)]) == 0
    assert main(["adapt", "--run", str(out), "--out", str(tmp_path / "scores")]) == 2
    assert "--out must name a .npz file" in capsys.readouterr().err
    (out / "prepared.pt").unlink()
    assert main(["adapt", "--run", str(out)]) == 2
    assert "did not finish" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["adapt", "--run", str(out), "--seed", "-1"])
    assert "--seed: must be an integer >= 0, got -1" in capsys.readouterr().err


def test_every_option_of_every_command_has_help():
    parser = build_parser()

    def walk(p, path):
        for action in p._actions:
            if action.choices and isinstance(action.choices, dict):
                for name, sub in action.choices.items():
                    yield from walk(sub, path + [name])
            elif action.option_strings and action.dest != "help":
                yield path, action

    missing = [f"{' '.join(path)} {action.option_strings[0]}" for path, action in walk(parser, ["mandril"]) if not action.help]
    assert not missing, missing


@pytest.mark.parametrize("command", ["train", "bench", "adapt"])
def test_outputs_that_cannot_be_written_are_refused_first(tmp_path, capsys, command):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = {
        "train": ["train", "mandril", *TINY, "--iterations", "1", "--out"],
        "bench": ["bench", "run", "benchmarks/suites/smoke.toml", "--quiet", "--out"],
        "adapt": ["adapt", "--run", str(tmp_path / "none"), "--out"],
    }[command]
    for out, message in ((blocker, "is a file"), (blocker / "sub", "lies under")):
        target = str(out) + (".npz" if command == "adapt" else "")
        if command == "adapt" and out == blocker:
            continue
        code = main([*argv, target])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_nan_in_inputs_is_named_not_blamed_on_the_rate():
    import gymnasium as gym

    from mandril import make
    from mandril_envs.demos import task_demos

    env = gym.make("mandril_envs/GridWorld-v0", size=4)
    states, actions, _ = task_demos(env, 1, seed=0)
    inputs = env.unwrapped.reward_input("features").copy()
    inputs[0, 0] = np.nan
    with pytest.raises(ValueError, match="inputs .* must be finite numbers: it holds NaN"):
        make("maxent_linear").fit(env.unwrapped.model, inputs, states, actions)


@pytest.mark.parametrize("flag, value", [("--inner-lr", "1e6"), ("--meta-lr", "1e9")])
def test_a_diverging_training_run_stops_with_one_line_and_exit_1(tmp_path, capsys, flag, value):
    out = tmp_path / "run"
    code = main(["train", "mandril", *TINY, "--iterations", "40", flag, value, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "MandRIL meta-iteration" in err and flag.strip("-").replace("-", "_") in err and len(err.strip().splitlines()) == 1, err
    assert not (out / "prepared.pt").exists()
