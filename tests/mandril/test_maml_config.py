"""Config loading and refusal of bad input (library and CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mandril.cli import main
from mandril.maml_rl.config import Config, config_from_dict, config_to_dict, load_config

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "maml"


def test_every_benchmark_config_loads_and_round_trips():
    paths = sorted(BENCH.glob("*.toml"))
    names = {p.stem for p in paths}
    expected = {f"bandit-k{k}-n{n}" for k in (5, 10, 50) for n in (10, 100, 500)} | {"tabular-mdp-n10", "tabular-mdp-n25"}
    assert expected <= names
    for path in paths:
        config = load_config(path)
        assert config.name == path.stem
        assert config_from_dict(config_to_dict(config)) == config
        # the protocol: the adaptation budget n is fast_batch_size episodes
        n = int(path.stem.rsplit("-n", 1)[1])
        assert config.maml.fast_batch_size == n
    for path in sorted((BENCH / "ablations").glob("*.toml")):
        assert load_config(path).name == path.stem


@pytest.mark.parametrize(
    "data, error, match",
    [
        ({"bogus": 1}, ValueError, r"top level: unknown key \['bogus'\]"),
        ({"maml": {"fast_lrr": 0.1}}, ValueError, r"\[maml\]: unknown key \['fast_lrr'\]"),
        ({"maml": {"fast_lr": 0.0}}, ValueError, r"\[maml\] fast_lr must be > 0, got 0.0"),
        ({"maml": {"fast_lr": -1}}, ValueError, r"fast_lr must be > 0"),
        ({"maml": {"meta_batch_size": 0}}, ValueError, r"meta_batch_size must be > 0"),
        ({"maml": {"fast_batch_size": -5}}, ValueError, r"fast_batch_size must be > 0"),
        ({"maml": {"num_batches": 0}}, ValueError, r"num_batches must be > 0"),
        ({"maml": {"num_steps": 0}}, ValueError, r"num_steps must be > 0"),
        ({"maml": {"meta_batch_size": 2.5}}, TypeError, r"meta_batch_size must be an integer, got float 2.5"),
        ({"maml": {"first_order": 1}}, TypeError, r"first_order must be true or false"),
        ({"trpo": {"max_kl": 0}}, ValueError, r"max_kl must be > 0"),
        ({"trpo": {"cg_iters": 0}}, ValueError, r"cg_iters must be > 0"),
        ({"trpo": {"hvp": "magic"}}, ValueError, r"hvp must be one of \['finite_difference', 'exact'\], got 'magic'"),
        ({"trpo": {"ls_backtrack_ratio": 1.0}}, ValueError, r"ls_backtrack_ratio must be in \(0, 1\)"),
        ({"advantage": {"gamma": 0}}, ValueError, r"gamma must be in \(0, 1\]"),
        ({"policy": {"hidden_sizes": [32, 0]}}, ValueError, r"hidden_sizes\[1\] must be > 0"),
        ({"policy": {"kind": "rnn"}}, ValueError, r"kind must be one of \['mlp', 'tabular'\]"),
        ({"sampler": {"envs_per_task": 0}}, ValueError, r"envs_per_task must be > 0"),
        ({"test": {"n_tasks": 0}}, ValueError, r"n_tasks must be > 0"),
        ({"test": {"start": -1}}, ValueError, r"\[test\] start must be >= 0"),
        ({"validation": {"every": -1}}, ValueError, r"\[validation\] every must be >= 0"),
        ({"maml": 3}, TypeError, r"\[maml\] must be a table"),
        ({"seed": -1}, ValueError, r"seed and task_seed must be >= 0"),
    ],
)
def test_bad_configs_are_refused_with_a_clear_message(data, error, match):
    with pytest.raises(error, match=match):
        config_from_dict(data)


def test_defaults_are_valid():
    assert isinstance(config_from_dict({}), Config)


def _write(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return str(path)


def test_cli_refuses_bad_config_with_one_line_and_exit_2(tmp_path, capsys):
    assert main(["maml-rl", "train", "--config", _write(tmp_path, "[maml]\nfast_lr = -0.5\n"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "fast_lr must be > 0" in err and err.startswith("mandril maml-rl: error:")
    assert main(["maml-rl", "train", "--config", _write(tmp_path, "name = 'x'\nmystery = 1\n")]) == 2
    assert "top level: unknown key ['mystery']" in capsys.readouterr().err
    assert main(["maml-rl", "train", "--config", _write(tmp_path, "name = [\n")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["maml-rl", "test", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_refuses_env_ids_that_are_not_registered_suite_ids(tmp_path, capsys):
    path = _write(tmp_path, "[env]\nid = 'Pendulum-v1'\n")
    assert main(["maml-rl", "train", "--config", path, "--no-progress", "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "[env] id 'Pendulum-v1' is not a registered mandril_envs/ id" in err and err.strip().count("\n") == 0


def test_an_env_id_naming_a_module_is_refused_before_it_is_imported(tmp_path, capsys):
    path = _write(tmp_path, "[env]\nid = 'this:Zen-v0'\n")
    assert main(["maml-rl", "train", "--config", path, "--no-progress", "--output-dir", str(tmp_path / "run")]) == 2
    captured = capsys.readouterr()
    assert "names a module to import" in captured.err and "Beautiful is better" not in captured.out + captured.err
    assert not (tmp_path / "run").exists()


def test_the_sampler_refuses_envs_without_discrete_actions():
    from mandril.maml_rl.builders import build_sampler
    from mandril.maml_rl.config import Config, EnvConfig

    with pytest.raises((TypeError, ValueError), match="Discrete action space"):
        build_sampler(Config(env=EnvConfig(id="Pendulum-v1")))


def test_benchmark_configs_report_on_test_tasks_disjoint_from_the_tuning_ones():
    for path in sorted(BENCH.glob("*.toml")) + sorted((BENCH / "ablations").glob("*.toml")):
        assert load_config(path).test.start >= 60, path.name


def test_budget_configs_explore_with_the_m_their_validation_sweep_chose():
    """Each budget-matched config spends m < n pulls exploring; m is the argmax, over the committed
    validation sweep (train-split tasks), of the best validation budget-matched total."""
    import csv
    import re

    sweeps = {"bandit": BENCH / "results" / "sweeps" / "budget-bandits.csv", "tabular-mdp": BENCH / "results" / "sweeps" / "budget-mdp.csv"}
    paths = sorted((BENCH / "budget").glob("*.toml"))
    assert {p.stem for p in paths} == {f"bandit-k{k}-n{n}" for k in (5, 10, 50) for n in (10, 100, 500)} | {"tabular-mdp-n10", "tabular-mdp-n25"}
    for path in paths:
        config = load_config(path)
        assert config.name == f"budget-{path.stem}"
        n = int(path.stem.rsplit("-n", 1)[1])
        assert config.test.budget == n and 1 < config.maml.fast_batch_size < n and config.test.start >= 60
        family = "tabular-mdp" if path.stem.startswith("tabular-mdp") else "bandit"
        with open(sweeps[family]) as handle:
            rows = list(csv.DictReader(handle))
        key = f"MDP n{n} " if family == "tabular-mdp" else "K{} n{} ".format(*re.match(r"bandit-k(\d+)-n(\d+)", path.stem).groups())
        mine = [r for r in rows if r["variant"].startswith(key)]
        assert len(mine) >= 3, path.name
        chosen = max(mine, key=lambda r: float(r["best_val_budget"]))
        assert int(chosen["m"]) == config.maml.fast_batch_size, path.name
        # everything but m and the budget is the adaptation config's
        twin = config_to_dict(load_config(BENCH / path.name))
        mine_dict = config_to_dict(config)
        for section in ("env", "policy", "advantage", "trpo", "sampler", "validation"):
            assert mine_dict[section] == twin[section], (path.name, section)
