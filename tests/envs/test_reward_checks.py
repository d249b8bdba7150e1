"""Recorded rewards are checked against the rebuilt task: exact, Bernoulli support, or a 10-sigma bound."""

import json

import numpy as np
import pytest

from mandril_envs.cli import main as cli_main
from mandril_envs.dataset import DatasetError, DemoDataset, collect
from mandril_envs.reward_noise import PLAUSIBLE_SIGMAS, RewardNoise

CASES = {
    "gridworld": ("mandril_envs/GridWorld-v0", {"slip": 0.1}),
    "bernoulli": ("mandril_envs/Bandit-K5-v0", {}),
    "gaussian-bandit": ("mandril_envs/Bandit-v0", {"arm_distribution": "gaussian"}),
    "tabular": ("mandril_envs/TabularMDP-v0", {}),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rewards")
    return {name: collect(env_id, 3, 4, env_kwargs=kwargs).save(folder / f"{name}.npz") for name, (env_id, kwargs) in CASES.items()}


def _with_rewards(source, path, change):
    with np.load(source) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["rewards"] = change(arrays["rewards"].copy())
    np.savez(path, **arrays)
    return path


def _set(index, value):
    def change(rewards):
        rewards[index] = value
        return rewards

    return change


@pytest.mark.parametrize(
    "name, change, message",
    [
        ("gridworld", lambda r: np.full_like(r, 1000.0), r"task 0, demo 0, step 0 \(s=\d+, a=\d+\): reward 1000.0 differs from the task's reward -?\d+.0 \(the family's rewards are noiseless\)"),
        ("gridworld", _set((2, 3, 7), 0.5), r"task 2, demo 3, step 7 .*: reward 0.5 differs from the task's reward"),
        ("bernoulli", lambda r: np.full_like(r, 1000.0), r"task 0, demo 0, step 0 .*: reward 1000.0 is impossible for a Bernoulli arm of mean"),
        ("bernoulli", _set((1, 2, 3), 0.5), r"task 1, demo 2, step 3 .*: reward 0.5 is impossible for a Bernoulli arm"),
        ("gaussian-bandit", lambda r: np.full_like(r, 1000.0), r"task 0, demo 0, step 0 .*: reward 1000.0 is [0-9.]+ noise standard deviations \(std 1\) from its mean .*, more than 10"),
        ("tabular", lambda r: np.full_like(r, 1000.0), r"reward 1000.0 is [0-9.]+ noise standard deviations \(std 1\) from its mean"),
        ("tabular", lambda r: r + 3.0, r"task 0, its demos: the mean standardised residual of 40 rewards is [0-9.]+, [0-9.]+ standard errors from 0 \(more than 10\): the rewards are shifted"),
    ],
)
def test_tampered_rewards_are_refused(saved, tmp_path, capsys, name, change, message):
    path = _with_rewards(saved[name], tmp_path / "tampered.npz", change)
    with pytest.raises(DatasetError, match=message):
        DemoDataset.load(path)
    assert cli_main(["demos", "info", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and "tampered.npz: task" in captured.err


@pytest.mark.parametrize(
    "name, rewards_line",
    [
        ("gridworld", "rewards: each reward equals its mean r exactly (noiseless rewards)"),
        ("bernoulli", "rewards: each reward is 0 or 1 and possible under its arm's mean p (1 needs p > 0, 0 needs p < 1); the number of ones per task is within 10 standard deviations of sum p"),
        ("tabular", "rewards: each reward is within 10 noise standard deviations (std 1) of its mean r, and each task's mean standardised residual within 10 standard errors of 0"),
    ],
)
def test_demos_info_says_what_was_verified(saved, capsys, name, rewards_line):
    assert cli_main(["demos", "info", str(saved[name])]) == 0
    out = capsys.readouterr().out
    assert "verified against every task's rebuilt true model:" in out and rewards_line in out
    assert "transitions: every recorded s -> s' has non-zero probability under its task's rebuilt model (" in out


def test_honest_noisy_rewards_pass_and_an_unseen_bound_is_honest():
    """A large honest Gaussian sample passes; the bound is 10 sigma."""
    rng = np.random.default_rng(0)
    means = rng.normal(size=200_000)
    noise = RewardNoise("gaussian", 2.0)
    assert PLAUSIBLE_SIGMAS == 10.0
    assert noise.find_implausible(means, np.array([noise.sample(rng, m) for m in means[:2000]] + list(means[2000:] + rng.normal(0, 2.0, 198_000)))) is None
    assert noise.find_implausible(means[:1], means[:1] + 19.9) is None and noise.find_implausible(means[:1], means[:1] + 20.1)[0] == 0
    bernoulli = RewardNoise("bernoulli")
    p = rng.uniform(size=100_000)
    assert bernoulli.find_implausible(p, (rng.uniform(size=p.size) < p).astype(float)) is None
    assert bernoulli.find_implausible(np.array([0.0, 1.0]), np.array([1.0, 1.0])) == (0, "reward 1.0 is impossible for a Bernoulli arm of mean 0.0 (rewards are 0 or 1)")
    assert bernoulli.find_implausible(np.array([1.0]), np.array([0.0]))[0] == 0
    assert bernoulli.find_implausible(np.full(400, 0.5), np.ones(400)) == (
        None,
        "400 ones in 400 pulls where 200.0 +- 10.0 are expected (20.0 standard deviations, more than 10)",
    )


def test_reward_noise_arguments():
    with pytest.raises(ValueError, match="kind must be one of"):
        RewardNoise("poisson")
    with pytest.raises(ValueError, match="std must be > 0 for Gaussian noise"):
        RewardNoise("gaussian", 0.0)
    with pytest.raises(ValueError, match="same shape"):
        RewardNoise().find_implausible(np.zeros(2), np.zeros(3))


def test_in_memory_datasets_verify_too():
    dataset = collect("mandril_envs/GridWorld-v0", 2, 2)
    assert dataset.verify()[1].startswith("rewards: each reward equals")
    tampered = DemoDataset(dataset.env_id, dataset.tasks, dataset.expert, 0, 0, dataset.states, dataset.actions, dataset.rewards + 1)
    with pytest.raises(DatasetError, match=r"^dataset: task 0, demo 0, step 0"):
        tampered.verify()
    json.dumps(dataset.verify())
