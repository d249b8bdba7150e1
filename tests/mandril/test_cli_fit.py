"""``mandril fit METHOD``: single-task methods on a dataset from the command line; family-appropriate
defaults; one line naming the extra when an optional dependency is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mandril import methods
from mandril.cli import main
from mandril.cli.fit import fittable
from mandril.methods.family_defaults import family_defaults
from mandril_envs.dataset import DemoDataset, collect

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def linear_mdp(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fit") / "linear.npz"
    collect("mandril_envs/TabularMDP-Linear-v0", 3, 6, "test", 0, 0).save(path)
    return path


def test_fit_scores_each_task_like_the_method_itself(linear_mdp, tmp_path, capsys):
    out = tmp_path / "fits.npz"
    assert main(["fit", "maxent_linear", "--dataset", str(linear_mdp), "--demos", "4", "--l2", "0.1", "--out", str(out)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("maxent_linear on 3 test tasks, 4 demo(s) each: normalized EVD ")
    saved = np.load(out)
    assert saved["rewards"].shape == (3, 10) and saved["normalized_evd"].shape == (3,) and '"l2": 0.1' in str(saved["settings"])
    dataset = DemoDataset.load(linear_mdp)
    env = dataset.make_env(0)
    method = methods.make("maxent_linear", l2=0.1)
    for index, task in enumerate(dataset.tasks):  # the same reward as fitting by hand on the first 4 demos
        env.unwrapped.set_task(task)
        reward = method.fit(methods.hide_reward(env.unwrapped.model), env.unwrapped.feature_matrix, dataset.states[index, :4], dataset.actions[index, :4]).reward
        np.testing.assert_allclose(saved["rewards"][index], reward, rtol=0, atol=1e-9)  # batched vs alone: the last bits (fitting.py)
        assert methods.make("maxent_linear").input_kind == "features"
    from mandril.eval import score

    env.unwrapped.set_task(dataset.tasks[0])
    expected = score(env.unwrapped.model, saved["rewards"][0], dataset.states[0, 4:], dataset.actions[0, 4:]).normalized_evd
    assert saved["normalized_evd"][0] == pytest.approx(expected, abs=1e-9)


def test_a_neural_method_reads_what_the_family_offers(linear_mdp, tmp_path):
    out = tmp_path / "fits.npz"
    # the conv net reads a GridWorld's map; a random MDP has only features: an MLP of the same widths reads them
    code = main(["fit", "maxent", "--dataset", str(linear_mdp), "--demos", "4", "--l2", "1.0", "--max-steps", "20", "--tasks", "2", "--out", str(out)])
    assert code == 0
    assert '"kind": "mlp"' in str(np.load(out)["settings"]) and '"input_kind": "features"' in str(np.load(out)["settings"])


def test_family_defaults():
    assert family_defaults(methods.METHODS["maxent"], ("features", "map", "rgb")) == {}
    assert family_defaults(methods.METHODS["maxent"], ("features",)) == {"reward_model": {"kind": "mlp", "hidden": [32, 32], "kernel_size": 3, "activation": "relu"}, "input_kind": "features"}
    assert family_defaults(methods.METHODS["maxent_linear"], ("features",)) == {}
    assert family_defaults(methods.METHODS["airl"], ("features",)) == {}  # no reward_model/input_kind settings
    assert set(fittable()) >= {"maxent", "maxent_linear", "maxent_tabular", "airl", "gail", "bc"}
    assert not {"mandril", "pretrain_finetune", "demo_conditioned", "expert", "zero_reward"} & set(fittable())


def test_bc_writes_policies(linear_mdp, tmp_path):
    out = tmp_path / "bc.npz"
    assert main(["fit", "bc", "--dataset", str(linear_mdp), "--demos", "2", "--tasks", "1", "--n-batches", "20", "--out", str(out)]) == 0
    policies = np.load(out)["policies"]
    assert policies.shape == (1, 10, 10, 5) and np.allclose(policies.sum(-1), 1.0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--demos", "7"], "--demos 7 asks for more demos than the dataset has per task (6)"),
        (["--tasks", "4"], "--tasks 4 asks for more tasks than the dataset holds (3)"),
        (["--out", "fits.txt"], "--out must name a .npz file"),
        (["--l2", "-1"], "l2 must be a finite number >= 0"),
        (["--input-kind", "map"], "input_kind"),
    ],
)
def test_bad_input_is_one_line_before_any_work(linear_mdp, tmp_path, capsys, argv, message):
    assert main(["fit", "maxent_linear", "--dataset", str(linear_mdp), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_methods_that_need_training_are_not_offered(linear_mdp, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "mandril", "--dataset", str(linear_mdp)])
    assert exit_info.value.code == 2 and "invalid choice: 'mandril'" in capsys.readouterr().err


@pytest.mark.parametrize("blocked, argv, extra", [
    ("torch", ["--help"], "pip install 'mandril[algo]' (install torch==2.13.0 first"),
    ("imitation", ["fit", "airl", "--dataset", "{dataset}", "--tasks", "1"], "pip install 'mandril[imitation]'"),
])
def test_a_missing_optional_dependency_is_named_with_its_extra(linear_mdp, blocked, argv, extra):
    argv = [a.replace("{dataset}", str(linear_mdp)) for a in argv]
    code = f"import sys; sys.modules[{blocked!r}] = None\nfrom mandril.cli import main\nsys.exit(main({argv!r}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and extra in result.stderr and "Traceback" not in result.stderr


def test_train_reads_what_the_family_offers(tmp_path):
    import json

    out = tmp_path / "run"
    argv = ["train", "mandril", "--env", "mandril_envs/TabularMDP-Linear-v0", "--iterations", "2", "--train-tasks", "4", "--train-demos", "12", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["input_kind"] == "features" and config["reward_model"]["kind"] == "mlp"


def test_a_model_the_user_chose_stands():
    assert family_defaults(methods.METHODS["maxent"], ("features",), {"reward_model": {"kind": "conv"}}) == {}
    assert family_defaults(methods.METHODS["maxent"], ("features",), {"input_kind": "features"}) == {}


def test_committed_suites_and_sweeps_run_by_name_from_the_package(tmp_path, capsys):
    from importlib import resources

    from mandril.bench import load_suite
    from mandril.bench.suite import packaged_file, resolve_file

    shipped = Path(str(resources.files("mandril.bench") / "suites"))
    assert {p.stem for p in shipped.glob("*.toml")} >= {"smoke", "quick", "standard", "paper"}
    assert load_suite(resolve_file("quick", "suites")) == load_suite(ROOT / "benchmarks" / "suites" / "quick.toml")
    assert packaged_file("quick", "tuning").read_text() == (ROOT / "benchmarks" / "tuning" / "quick.toml").read_text()
    assert resolve_file("benchmarks/suites/quick.toml", "suites") == Path("benchmarks/suites/quick.toml")  # a path stays a path
    for bad in ("qiuck", "../etc/passwd", ".hidden"):
        with pytest.raises(ValueError, match="is neither a TOML file nor the name of a packaged"):
            packaged_file(bad, "suites")
    assert main(["bench", "run", "qiuck", "--out", str(tmp_path / "out")]) == 2
    assert "one of ['paper', 'quick', 'smoke', 'standard']" in capsys.readouterr().err and not (tmp_path / "out").exists()
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["mandril.bench"]
    assert data == ["suites/*.toml", "tuning/*.toml"]  # shipped in the wheel, not only in a checkout
