"""MAML-TRPO end to end: one meta-iteration, determinism, resume, held-out test, references."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mandril.cli import main
from mandril.maml_rl.config import config_from_dict
from mandril.maml_rl.evaluation import exact_returns, summarize
from mandril.maml_rl.metalearner import MAMLTRPO
from mandril.maml_rl.policies import TabularSoftmaxPolicy, make_policy
from mandril.maml_rl.reference import bandit_reference_returns, mdp_reference_returns
from mandril.maml_rl.sampler import MultiTaskSampler
from mandril.maml_rl.trainer import METRIC_FIELDS, Trainer, load_checkpoint
from mandril_envs.planning import value_iteration


def _config(tmp_path, **maml):
    return config_from_dict({
        "name": "tiny",
        "seed": 4,
        "output_dir": str(tmp_path / "run"),
        "checkpoint_every": 1,
        "env": {"id": "mandril_envs/Bandit-K5-v0", "kwargs": {"horizon": 1}},
        "policy": {"hidden_sizes": [8]},
        "maml": {"num_batches": 2, "meta_batch_size": 4, "fast_batch_size": 20, "fast_lr": 0.5, **maml},
        "sampler": {"envs_per_task": 10},
        "test": {"n_tasks": 6, "n_episodes": 10, "reference_repeats": 2},
    })


_TIMING = {"elapsed_s", "sps"}


def _clean(rows, drop=_TIMING):
    """Rows without the timing columns, with NaN (not validated) as None so that rows compare equal."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items() if k not in drop} for r in rows]


@pytest.mark.parametrize("first_order, hvp", [(False, "finite_difference"), (False, "exact"), (True, "finite_difference")])
def test_one_meta_iteration_runs_end_to_end_and_changes_the_parameters(tmp_path, first_order, hvp):
    config = _config(tmp_path, first_order=first_order)
    config = config_from_dict({**json.loads(json.dumps(_asdict(config))), "trpo": {"hvp": hvp}})
    trainer = Trainer(config)
    before = {k: v.detach().clone() for k, v in trainer.policy.params().items()}
    row = trainer.run_iteration()
    trainer.close()
    after = trainer.policy.params()
    assert row["accepted"] == 1
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert row["loss_after"] < row["loss_before"]
    assert 0 < row["kl"] <= config.trpo.max_kl
    assert 0 <= row["pre_return"] <= 1 and 0 <= row["post_return"] <= 1
    assert row["env_steps"] == 2 * 4 * 20


def _asdict(config):
    from mandril.maml_rl.config import config_to_dict

    return config_to_dict(config)


def test_trpo_step_respects_the_trust_region_and_improves_the_surrogate():
    sampler = MultiTaskSampler("mandril_envs/TabularMDP-v0", {"horizon": 3}, max_tasks=3, envs_per_task=5)
    gen = torch.Generator().manual_seed(2)
    policy = make_policy("mlp", sampler.obs_dim, sampler.n_actions, hidden_sizes=(8,), generator=gen)
    learner = MAMLTRPO(policy, fast_lr=1.0, max_kl=1e-3)
    rollouts = learner.sample(sampler, sampler.sample_tasks(3), 5, seeds=[0, 1], generator=gen)
    sampler.close()
    old = learner._old_log_probs(rollouts)
    theta0 = {k: v.detach().clone().requires_grad_(True) for k, v in policy.params().items()}
    loss0 = float(learner.surrogate(theta0, rollouts, old)[0].detach())
    info = learner.step(rollouts)
    assert info["accepted"]
    theta1 = {k: v.detach().clone().requires_grad_(True) for k, v in policy.params().items()}
    loss1, kl1 = (x.detach() for x in learner.surrogate(theta1, rollouts, old))
    assert float(kl1) <= 1e-3 + 1e-12
    assert float(loss1) < loss0
    assert float(loss1) == pytest.approx(info["loss_after"], rel=1e-9, abs=1e-12)


def test_same_seed_same_numbers_and_another_seed_other_numbers(tmp_path):
    def run(seed, where):
        config = config_from_dict({**_asdict(_config(where)), "seed": seed})
        trainer = Trainer(config)
        rows = trainer.train()
        trainer.close()
        return _clean(rows), trainer.policy.state_dict()

    rows_a, params_a = run(4, tmp_path / "a")
    rows_b, params_b = run(4, tmp_path / "b")
    rows_c, params_c = run(5, tmp_path / "c")
    assert rows_a == rows_b
    assert all(torch.equal(params_a[k], params_b[k]) for k in params_a)
    assert rows_a != rows_c
    assert any(not torch.equal(params_a[k], params_c[k]) for k in params_a)


def test_resume_continues_with_the_same_numbers(tmp_path):
    straight = Trainer(_config(tmp_path / "straight"))
    straight.train(3)
    straight.close()

    first = Trainer(_config(tmp_path / "resumed"))
    first.train(1)
    first.close()
    resumed = Trainer(_config(tmp_path / "resumed"), resume=True)
    assert resumed.iteration == 1
    resumed.train(3)
    resumed.close()
    assert all(torch.equal(straight.policy.state_dict()[k], resumed.policy.state_dict()[k]) for k in straight.policy.state_dict())
    assert _clean(straight.rows) == _clean(resumed.rows)
    def csv_without_timing(where):
        lines = (where / "run" / "metrics.csv").read_text().strip().splitlines()
        keep = [i for i, name in enumerate(lines[0].split(",")) if name not in _TIMING]
        return [[line.split(",")[i] for i in keep] for line in lines]

    resumed_csv = csv_without_timing(tmp_path / "resumed")
    assert resumed_csv == csv_without_timing(tmp_path / "straight")
    assert len(resumed_csv) == 4 and resumed_csv[0] == [f for f in METRIC_FIELDS if f not in _TIMING]
    # a changed config is refused on resume, naming the key
    other = config_from_dict({**_asdict(_config(tmp_path / "resumed")), "maml": {**_asdict(_config(tmp_path))["maml"], "fast_lr": 0.1}})
    with pytest.raises(ValueError, match=r"maml.fast_lr"):
        Trainer(other, resume=True)


def test_validation_changes_no_training_number_and_keeps_the_best_parameters(tmp_path):
    def run(every, where):
        config = config_from_dict({**_asdict(_config(where)), "validation": {"every": every, "n_tasks": 3}})
        trainer = Trainer(config)
        trainer.train(3)
        trainer.close()
        return trainer

    plain, validated = run(0, tmp_path / "plain"), run(1, tmp_path / "validated")
    val_cols = _TIMING | {"val_pre_return", "val_post_return"}
    assert _clean(plain.rows, val_cols) == _clean(validated.rows, val_cols)
    assert all(torch.equal(plain.policy.state_dict()[k], validated.policy.state_dict()[k]) for k in plain.policy.state_dict())
    assert not plain.best_path.exists()
    values = [r["val_post_return"] for r in validated.rows]
    assert all(0 <= v <= 1 for v in values)
    best = int(np.argmax(values))
    assert validated.best_iteration == best + 1 and validated.best_validation == values[best]
    state = load_checkpoint(validated.best_path)
    assert state["iteration"] == best + 1
    # best.pt holds the parameters validated at that iteration: re-validating them gives the same number
    validated.policy.load_state_dict(state["policy"])
    validated.iteration = state["iteration"]
    assert validated.validate()[1] == pytest.approx(values[best], rel=1e-12)


def test_cli_train_then_test_writes_metrics_checkpoint_curve_and_results(tmp_path, capsys):
    config_path = tmp_path / "tiny.toml"
    config_path.write_text(
        "name = 'tiny'\nseed = 1\ncheckpoint_every = 1\n"
        "[env]\nid = 'mandril_envs/Bandit-K5-v0'\nkwargs = { horizon = 1 }\n"
        "[policy]\nhidden_sizes = [8]\n"
        "[maml]\nnum_batches = 2\nmeta_batch_size = 3\nfast_batch_size = 10\n"
        "[sampler]\nenvs_per_task = 10\n"
        "[test]\nn_tasks = 5\nn_episodes = 5\nreference_repeats = 2\n"
    )
    run_dir = tmp_path / "run"
    assert main(["maml-rl", "train", "--config", str(config_path), "--output-dir", str(run_dir), "--no-progress"]) == 0
    for name in ("metrics.csv", "checkpoint.pt", "curve.png", "config.json"):
        assert (run_dir / name).is_file(), name
    out = tmp_path / "results.json"
    assert main(["maml-rl", "test", "--config", str(config_path), "--output-dir", str(run_dir), "--output", str(out), "--no-progress"]) == 0
    results = json.loads(out.read_text())
    assert results["n_tasks"] == 5 and results["split"] == "test" and results["iteration"] == 2
    for name in ("maml_pre", "maml_post", "random", "ucb1", "thompson", "greedy", "epsilon_greedy", "oracle"):
        s = results["summary"][name]
        assert s["ci_low"] <= s["mean"] <= s["ci_high"] and s["n"] == 5
        assert len(results["per_task"][name]) == 5
    assert (tmp_path / "results.md").read_text().startswith("tiny")
    assert "maml_post" in capsys.readouterr().out
    # --init evaluates the un-meta-trained initial parameters (the ablation)
    out0 = tmp_path / "init.json"
    assert main(["maml-rl", "test", "--config", str(config_path), "--init", "--output", str(out0), "--no-progress"]) == 0
    assert json.loads(out0.read_text())["iteration"] == 0
    assert main(["maml-rl", "test", "--config", str(config_path), "--init", "--checkpoint", str(run_dir / "checkpoint.pt")]) == 2
    assert "exclude each other" in capsys.readouterr().err
    png = tmp_path / "curve.png"
    assert main(["maml-rl", "plot", "--metrics", str(run_dir / "metrics.csv"), "--out", str(png), "--scale", "10",
                 "--reference", "random=5"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit) as exit_info:
        main(["maml-rl", "plot", "--metrics", str(run_dir / "metrics.csv"), "--out", str(png), "--reference", "oops"])
    assert exit_info.value.code == 2 and "LABEL=VALUE" in capsys.readouterr().err


def test_exact_returns_match_closed_forms_and_reference_policies():
    sampler = MultiTaskSampler("mandril_envs/TabularMDP-v0", {}, max_tasks=4, envs_per_task=2)
    tasks = sampler.sample_tasks(4, "test")
    uniform = TabularSoftmaxPolicy(sampler.obs_dim, sampler.n_actions)
    exact = exact_returns(sampler, uniform, [uniform.params()] * 4, tasks)
    models = []
    for task in tasks:
        sampler.probe.unwrapped.set_task(task)
        models.append(sampler.probe.unwrapped.model)
    refs = mdp_reference_returns(models, 10)
    np.testing.assert_allclose(10 * exact, refs["random"], rtol=1e-10)
    for model, best in zip(models, refs["optimal"]):
        assert best == pytest.approx(10 * float(value_iteration(model).values[0] @ model.initial_state_dist))
    assert np.all(refs["optimal"] > refs["random"])
    # sampled returns of the uniform policy agree with the exact ones
    batch = sampler.sample(uniform, uniform.params(), tasks, 200, seed=0, generator=torch.Generator().manual_seed(0))
    sampler.close()
    returns = batch.episode_returns().numpy()
    standard_error = returns.std(axis=1, ddof=1) / np.sqrt(returns.shape[1])
    assert np.all(np.abs(returns.mean(axis=1) - exact) < 4 * standard_error)


def test_bandit_references_are_sane():
    rng = np.random.default_rng(0)
    means = rng.uniform(size=(40, 5))
    refs = bandit_reference_returns(means, 100, seed=0, repeats=5)
    np.testing.assert_allclose(refs["oracle"], 100 * means.max(axis=1))
    assert abs(refs["random"].mean() - 100 * means.mean()) < 2.0
    for name in ("greedy", "epsilon_greedy", "ucb1", "thompson"):
        assert refs["random"].mean() + 10 < refs[name].mean() <= refs["oracle"].mean(), name
    again = bandit_reference_returns(means, 100, seed=0, repeats=5)
    assert all(np.array_equal(refs[k], again[k]) for k in refs)
    with pytest.raises(ValueError, match="means"):
        bandit_reference_returns(means[0], 10, seed=0)


def test_summarize_uses_the_project_bootstrap_and_adds_std_and_half_width():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, 400)
    s = summarize(values)
    assert s["mean"] == pytest.approx(values.mean()) and s["n"] == 400
    assert s["ci_low"] < s["mean"] < s["ci_high"]
    # with 400 values the bootstrap interval is close to the normal one
    assert s["ci_half_width"] == pytest.approx(1.96 * values.std(ddof=1) / 20, rel=0.1)
    assert s["std"] == pytest.approx(values.std(ddof=1))
    assert summarize(values) == s  # seeded
    with pytest.raises(ValueError):
        summarize([])
