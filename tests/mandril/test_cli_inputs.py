"""Issue 20 (item 6): every path of the ``mandril`` command line sized and bounded, checked before any
work, one line naming the option or the file and the key, nothing written by a refused start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mandril.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--env", "mandril_envs/GridWorld-v0", "--env-kwargs", '{"size": 5}', "--reward-model", '{"kind": "conv", "hidden": [4]}',
        "--train-tasks", "6", "--train-demos", "4", "--meta-batch-size", "2", "--n-train-demos", "1", "--n-test-demos", "2", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "mandril", *TINY, "--iterations", "1", "--out", str(out)]) == 0
    return out


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_info:  # a usage error (argparse) exits
        return exit_info.code


def _refused(capsys, argv: list[str], words: list[str]) -> str:
    assert _run(argv) == 2, argv
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--inner-steps", "1000000000"], ["inner_steps must be <= 100"]),
        (["--adapt-steps", "1000000000"], ["adapt_steps must be <= 10,000"]),
        (["--iterations", "1000000000"], ["iterations must be an int <= 10,000,000"]),
        (["--threads", "100000"], ["--threads", "between 1 and 256"]),
        (["--device", "meta"], ["--device", "'meta'", "cpu"]),
        (["--env-kwargs", '{"size": 5, "autoreset": true}'], ["--env-kwargs autoreset = true is refused"]),
        (["--env-kwargs", '{"size": 5, "max_episode_steps": 1}'], ["--env-kwargs max_episode_steps = 1 differs from the family's horizon"]),
        (["--env-kwargs", '{"size": 5, "horizon": 1000000000}'], ["--env-kwargs horizon=1000000000"]),
        (["--env-kwargs", '{"size": 5, "goal_reward": 1e308}'], ["--env-kwargs", "reward table reaches 1e+308"]),
        (["--env-kwargs", '{"size": 5, "render_mode": "human"}'], ["render_mode 'human' is not declared"]),
        (["--env", "mandril_envs/Bandit-v0", "--env-kwargs", "{}"], ["reads 'map' inputs, which mandril_envs/Bandit-v0 does not offer"]),
        (["--train-tasks", "1000000000000"], ["--train-tasks=1000000000000"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_train_refuses_bad_settings_before_writing_anything(tmp_path, capsys, extra, words):
    out = tmp_path / "run"
    _refused(capsys, ["train", "mandril", *TINY, "--iterations", "1", *extra, "--out", str(out)], words)
    assert not out.exists()  # no run.json, no pool: the fixed retry starts afresh
    assert main(["train", "mandril", *TINY, "--iterations", "0", "--out", str(out)]) == 0  # and the fixed retry is accepted


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--tasks", "100000000"], ["--tasks", "between 1 and 100,000"]),
        (["--demos", "100000000"], ["--demos", "between 1 and 10,000"]),
        (["--threads", "100000"], ["--threads", "between 1 and 256"]),
        (["--device", "meta"], ["--device", "'meta'"]),
        (["--split", "train"], ["--split must be a held-out split", "['test', 'test_unseen']", "'train'"]),
        (["--split", "tset"], ["--split must be a held-out split"]),
        (["--out", "/proc/x.npz"], ["--out '/proc/x.npz'", "not writable"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_adapt_refuses_bad_options_before_any_work(trained, capsys, monkeypatch, extra, words):
    import mandril.cli.train as train_module

    def never(*args, **kwargs):
        raise AssertionError("the trained method was loaded")

    monkeypatch.setattr(train_module, "load_trained", never)
    _refused(capsys, ["adapt", "--run", str(trained), *extra], words)


def _hostile_run(trained: Path, folder: Path, edit) -> Path:
    folder.mkdir()
    run = json.loads((trained / "run.json").read_text())
    text = edit(run)
    (folder / "run.json").write_text(text if isinstance(text, str) else json.dumps(run))
    (folder / "prepared.pt").write_bytes((trained / "prepared.pt").read_bytes())
    return folder


@pytest.mark.parametrize(
    "name, edit, words",
    [
        ("max_episode_steps", lambda r: r["env_kwargs"].update(max_episode_steps=1), ["run.json: env_kwargs max_episode_steps = 1"]),
        ("autoreset", lambda r: r["env_kwargs"].update(autoreset=True), ["run.json: env_kwargs autoreset = true"]),
        ("deep nesting", lambda r: '{"format": "mandril.run", "config": ' + "[" * 100_000 + "]" * 100_000 + "}", ["run.json is not valid JSON: nested too deeply"]),
        ("moderate nesting", lambda r: json.dumps({**r, "config": json.loads("[" * 200 + "]" * 200)}), ["run.json is not valid JSON: nested too deeply (more than 32 levels)"]),
        ("a list for env_id", lambda r: r.update(env_id=["mandril_envs/GridWorld-v0"]), ["run.json: env_id must be a string"]),
        ("a list for method", lambda r: r.update(method=["mandril"]), ["run.json: method must be one of"]),
        ("a string pool size", lambda r: r["pool"].update(n_tasks="6"), ["run.json: pool n_tasks must be an int >= 1"]),
        ("NaN", lambda r: json.dumps(r).replace('"size": 5', '"size": NaN'), ["run.json is not valid JSON: NaN is not a JSON number"]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_hostile_run_files_are_one_line(trained, tmp_path, capsys, name, edit, words):
    folder = _hostile_run(trained, tmp_path / "hostile", edit)
    _refused(capsys, ["adapt", "--run", str(folder), "--tasks", "1", "--demos", "1"], words)


def _cli(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "mandril.cli", *argv], capture_output=True, text=True, env=env, timeout=timeout)


def test_fifos_are_refused_not_opened(trained, tmp_path):
    """A FIFO as run.json, as a dataset and as a suite: refused at once (open() would wait for a writer forever)."""
    fifo_run = tmp_path / "fiforun"
    fifo_run.mkdir()
    os.mkfifo(fifo_run / "run.json")
    os.mkfifo(tmp_path / "data.npz")
    os.mkfifo(tmp_path / "suite.toml")
    for argv, words in (
        (["adapt", "--run", str(fifo_run)], "is a FIFO (named pipe), not a regular file"),
        (["adapt", "--run", str(trained), "--dataset", str(tmp_path / "data.npz")], "is a FIFO (named pipe), not a regular file"),
        (["bench", "run", str(tmp_path / "suite.toml"), "--out", str(tmp_path / "out")], "is a FIFO (named pipe), not a regular file"),
    ):
        result = _cli(argv)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_every_threads_option_has_the_one_cap():
    from mandril.cli.options import thread_count

    found = []

    def walk(parser, path):
        for action in parser._actions:
            if getattr(action, "choices", None) and isinstance(action.choices, dict):
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))
            elif "--threads" in action.option_strings:
                found.append(path)
                assert action.type is thread_count, path
            elif "--device" in action.option_strings:
                assert action.type.__name__ == "torch_device", path

    walk(build_parser(), ())
    assert len(found) >= 6  # train x3, adapt, maml-rl train/test
    from mandril.methods.imitation.sweep import _parser

    walk(_parser(), ("imitation sweep",))
    assert ("imitation sweep",) in found


def test_maml_sizes_are_bounded(tmp_path, capsys):
    config = tmp_path / "c.toml"
    for body, words in (
        ("[env]\nid = 'mandril_envs/Bandit-K5-v0'\nkwargs = { horizon = 1000000000 }\n", ["[env] horizon=1000000000", "would take about"]),
        ("[env]\nid = 'mandril_envs/Bandit-K5-v0'\nkwargs = { horizon = 1 }\n[maml]\nnum_steps = 100000000\n", ["[maml] num_steps must be <= 100"]),
        ("[env]\nid = 'mandril_envs/Bandit-K5-v0'\nkwargs = { horizon = 1, autoreset = true }\n", ["[env] kwargs autoreset = true is refused"]),
        ("[env]\nid = 'mandril_envs/Bandit-K5-v0'\nkwargs = { horizon = 1 }\n[test]\nn_tasks = 1000000000\n", ["[test] n_tasks must be <= 100,000"]),
    ):
        config.write_text("name = 'x'\n" + body)
        _refused(capsys, ["maml-rl", "train", "--config", str(config), "--output-dir", str(tmp_path / "run")], words)
    config.write_text("name = 'x'\n[env]\nid = 'mandril_envs/Bandit-K5-v0'\nkwargs = { horizon = 1 }\n")
    _refused(capsys, ["maml-rl", "test", "--config", str(config), "--init", "--n-tasks", "1000000000"], ["--n-tasks", "between 1 and 100,000"])
    assert not (tmp_path / "run").exists()


def test_a_huge_tuning_grid_is_refused_before_enumerating_it(tmp_path, capsys):
    import time

    sweep = tmp_path / "sweep.toml"
    values = ", ".join(str(0.001 * (i + 1)) for i in range(45))
    sweep.write_text(f"name = 'huge'\nsuite = '{ROOT / 'benchmarks' / 'suites' / 'smoke.toml'}'\n[grid.maxent_tabular]\nl2 = [{values}]\nlr = [{values}]\n"
                     f"max_steps = [{', '.join(str(i + 1) for i in range(45))}]\ngrad_tol = [{values}]\n")  # 45^4 = 4,100,625
    start = time.perf_counter()
    _refused(capsys, ["tune", str(sweep), "--out", str(tmp_path / "out")], ["4,100,625 combinations", "more than the 1,000"])
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "out").exists()


def test_bench_run_refuses_a_ray_address_without_ray_and_a_bad_device(tmp_path, capsys):
    suite = str(ROOT / "benchmarks" / "suites" / "smoke.toml")
    _refused(capsys, ["bench", "run", suite, "--out", str(tmp_path / "a"), "--ray-address", "10.0.0.1:6379"], ["--ray-address", "--backend ray"])
    _refused(capsys, ["bench", "run", suite, "--out", str(tmp_path / "b"), "--device", "meta"], ["--device", "'meta'"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
