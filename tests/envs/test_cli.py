"""The mandril-envs command: every option documented with its default; bad input is one line, exit 2, before work."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mandril_envs.dataset
from mandril_envs import cli
from mandril_envs.cli import build_parser, main as cli_main

ROOT = Path(__file__).resolve().parents[2]


def _parsers(parser, path=()):
    """Every (name path, parser) of the command tree."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_every_option_of_every_subcommand_has_help_and_shows_its_default():
    parsers = dict(_parsers(build_parser()))
    assert set(parsers) == {(), ("list",), ("demos",), ("demos", "generate"), ("demos", "info")}
    checked = 0
    for path, parser in parsers.items():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help and action.help.strip(), f"{' '.join(path)} {name} has no help"
            if action.option_strings and not action.required:
                assert f"(default: {action.default})" in text, f"{' '.join(path)} {name} does not show its default"
            checked += 1
    assert checked == 14  # 13 options of generate (--force included) + info's path


def test_generate_help_shows_defaults():
    text = " ".join(build_parser().parse_known_args(["demos", "generate", "--out", "x"])[0].command_prog.split())
    assert text == "mandril-envs demos generate"
    help_text = " ".join(dict(_parsers(build_parser()))[("demos", "generate")].format_help().split())
    for expected in ("--seed SEED seed of the demo rollouts (>= 0) (default: 0)", "--tasks TASKS number of tasks N (>= 1) (default: 100)", "--quiet no progress bar or summary (default: False)"):
        assert expected in help_text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seed", "-1"], "--seed must be >= 0, got -1"),
        (["--task-seed", "-3"], "--task-seed must be >= 0, got -3"),
        (["--tasks", "0"], "--tasks must be >= 1, got 0"),
        (["--demos", "-5"], "--demos must be >= 1, got -5"),
        (["--temperature", "0"], "--temperature must be > 0.0, got 0.0"),
        (["--temperature", "nan"], "--temperature must be finite, got nan"),
        (["--epsilon", "1.5"], "--epsilon must be <= 1.0, got 1.5"),
        (["--split", "valid"], "--split must be one of ['train', 'test', 'test_unseen'], got 'valid'"),
        (["--env", "mandril_envs/Bandit-v0", "--split", "test_unseen"], "--split must be one of ['train', 'test'], got 'test_unseen'"),
        (["--env", "CartPole-v1"], "--env 'CartPole-v1' is not a mandril_envs env (its unwrapped env must be a TabularTaskEnv)"),
    ],
)
def test_bad_options_are_named_before_any_work(tmp_path, capsys, monkeypatch, argv, message):
    def never(*args, **kwargs):
        raise AssertionError("collect ran")

    monkeypatch.setattr(mandril_envs.dataset, "collect", never)
    out = tmp_path / "x.npz"
    assert cli_main(["demos", "generate", "--out", str(out), "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"mandril-envs demos generate: error: {message}"), err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demos", "generate", "--tasks", "abc", "--out", "x.npz"], "mandril-envs demos generate: error: argument --tasks: invalid int value: 'abc' (see mandril-envs demos generate --help)"),
        (["demos", "generate"], "mandril-envs demos generate: error: the following arguments are required: --out (see mandril-envs demos generate --help)"),
        (["demos", "info"], "mandril-envs demos info: error: the following arguments are required: path (see mandril-envs demos info --help)"),
        (["demos", "generate", "--env-kwargs", "{", "--out", "x.npz"], "mandril-envs demos generate: error: argument --env-kwargs: not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1) (see mandril-envs demos generate --help)"),
        (["nope"], "mandril-envs: error: argument COMMAND: invalid choice: 'nope' (choose from 'list', 'demos') (see mandril-envs --help)"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [message]


def test_output_paths_are_checked_before_work(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for out, message in ((tmp_path, "is a directory; give a file path"), (tmp_path / "file" / "d.npz", "which is a file, not a folder")):
        assert cli_main(["demos", "generate", "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and f"--out '{out}'" in err and message in err


def test_demos_info_of_a_directory_a_missing_file_and_an_unreadable_file(tmp_path, capsys, monkeypatch):
    path = mandril_envs.dataset.collect("mandril_envs/Bandit-v0", 1, 1).save(tmp_path / "d.npz")
    cases = [(tmp_path, f"mandril-envs demos info: error: Is a directory: '{tmp_path}'"), (tmp_path / "missing.npz", f"mandril-envs demos info: error: No such file or directory: '{tmp_path / 'missing.npz'}'")]
    for target, line in cases:
        assert cli_main(["demos", "info", str(target)]) == 2
        assert capsys.readouterr().err.splitlines() == [line]

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(mandril_envs.dataset, "open", denied, raising=False)  # root reads a chmod-000 file, so the OS answer is injected
    assert cli_main(["demos", "info", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"mandril-envs demos info: error: Permission denied: '{path}'"]


def test_a_command_group_without_an_action_prints_its_help(capsys):
    assert cli_main(["demos"]) == 2
    assert "generate" in capsys.readouterr().out


def test_cli_errors_in_a_real_process_have_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "mandril_envs.cli", "demos", "generate", "--seed", "-1", "--out", str(tmp_path / "x.npz")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 2 and result.stderr == "mandril-envs demos generate: error: --seed must be >= 0, got -1\n"


def test_one_line_parser_is_the_parser_class_of_every_level():
    assert all(isinstance(parser, cli.OneLineParser) for _, parser in _parsers(build_parser()))
