"""MandRIL: meta-gradient against finite differences, batching, checkpoints, bad input."""

import numpy as np
import pytest
import torch
from torch import nn

from mandril.core import CheckpointError
from mandril.data import DatasetSource, GeneratedSource, MetaBatch, task_inputs
from mandril.methods import DivergenceError
from mandril.methods.meta_trainer import MandRIL, MandRILConfig
from mandril.planning import TaskBatch, maxent_nll
from mandril_envs.dataset import collect

ENV = "mandril_envs/TabularMDP-Linear-v0"
SMALL = {"n_states": 5, "n_actions": 3, "horizon": 4, "n_features": 3, "weight_std": 0.5}  # the spread these checks were tuned on


class Linear(nn.Module):
    """r(s) = phi(s) . w + b: a reward model over the feature matrix, (n, S, F) -> (n, S)."""

    def __init__(self, n_features, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(0.5 * torch.randn(n_features, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        return x @ self.w + self.b


class Wrong(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3, dtype=torch.float64))

    def forward(self, x):
        return (x @ self.w)[:, :-1]


@pytest.fixture(scope="module")
def batch():
    source = GeneratedSource(ENV, SMALL, input_kind="features")
    return source.sample(3, 2, 4, np.random.default_rng(0))


def _outer_at(trainer, flat, batch):
    with torch.no_grad():
        offset = 0
        for value in trainer.theta.values():
            value.copy_(flat[offset : offset + value.numel()].view_as(value))
            offset += value.numel()
    loss, _ = trainer.meta_loss(batch)
    return float(loss.detach())


def _meta_gradient(trainer, batch):
    trainer.optimizer.zero_grad()
    loss, _ = trainer.meta_loss(batch)
    loss.backward()
    return torch.cat([v.grad.reshape(-1) for v in trainer.theta.values()]).clone()


def test_second_order_meta_gradient_matches_finite_differences(batch):
    trainer = MandRIL(Linear(3), inner_lr=0.3, inner_steps=2)
    analytic = _meta_gradient(trainer, batch)
    theta0 = torch.cat([v.detach().reshape(-1) for v in trainer.theta.values()]).clone()
    numeric = torch.zeros_like(theta0)
    eps = 1e-6
    for i in range(theta0.numel()):
        bump = torch.zeros_like(theta0)
        bump[i] = eps
        numeric[i] = (_outer_at(trainer, theta0 + bump, batch) - _outer_at(trainer, theta0 - bump, batch)) / (2 * eps)
    _outer_at(trainer, theta0, batch)
    torch.testing.assert_close(analytic, numeric, rtol=1e-6, atol=1e-8)
    first = MandRIL(Linear(3), inner_lr=0.3, inner_steps=2, first_order=True)
    first_order = _meta_gradient(first, batch)
    assert (first_order - analytic).norm() > 1e-3 * analytic.norm()  # the second-order term matters


def _one_task(batch, b):
    t = batch.tasks
    tasks = TaskBatch(t.successor_indices[b : b + 1], t.successor_probs[b : b + 1], t.initial_state_dist[b : b + 1], t.horizon, t.layout)
    pick = lambda x: x[b : b + 1]  # noqa: E731
    return MetaBatch(tasks, batch.models[b : b + 1], pick(batch.inputs), pick(batch.train_visitation), pick(batch.test_visitation), pick(batch.train_start), pick(batch.test_start))


@pytest.mark.parametrize("likelihood", ["start", "p0"])
def test_batched_meta_loss_equals_a_loop_over_tasks(batch, likelihood):
    """Each task gets its own adapted parameters: the batch is exactly the mean of single-task runs."""
    trainer = MandRIL(Linear(3), inner_lr=0.3, inner_steps=2, likelihood=likelihood)
    together, _ = trainer.meta_loss(batch)
    singles = [float(trainer.meta_loss(_one_task(batch, b))[0].detach()) for b in range(3)]
    assert float(together.detach()) == pytest.approx(np.mean(singles), rel=1e-12)


def test_conditioning_on_start_states_changes_the_loss(batch):
    on, _ = MandRIL(Linear(3), likelihood="start").meta_loss(batch)
    off, _ = MandRIL(Linear(3), likelihood="p0").meta_loss(batch)
    assert float(on.detach()) != pytest.approx(float(off.detach()))


def test_meta_sgd_learns_the_inner_learning_rate(batch):
    trainer = MandRIL(Linear(3), inner_lr=0.3, learn_inner_lr=True)
    before = {k: v.detach().clone() for k, v in trainer.inner_lr.items()}
    loss, _ = trainer.meta_loss(batch)
    trainer.optimizer.zero_grad()
    loss.backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in trainer.inner_lr.values())
    trainer.optimizer.step()
    assert any(not torch.equal(before[k], v) for k, v in trainer.inner_lr.items())


def test_meta_training_lowers_the_outer_loss_and_adapts():
    source = GeneratedSource(ENV, SMALL, input_kind="features")
    trainer = MandRIL(Linear(3, seed=1), inner_lr=0.2, meta_batch_size=8, meta_lr=0.05, n_train_demos=2, n_test_demos=8, seed=3)
    rows = trainer.meta_train(source, 60, progress=False)
    first, last = np.mean([r["outer_loss"] for r in rows[:10]]), np.mean([r["outer_loss"] for r in rows[-10:]])
    assert last < first
    env = source.env
    env.unwrapped.set_task(env.unwrapped.sample_tasks(1, "test", seed=0)[0])
    states = np.zeros((2, SMALL["horizon"] + 1), int)
    reward = trainer.adapt(env.unwrapped.model, task_inputs(env, "features"), states, np.zeros((2, SMALL["horizon"]), int), steps=3)
    assert reward.shape == (5,) and np.isfinite(reward).all()
    assert not np.allclose(reward, trainer.prior_reward(env.unwrapped.model, task_inputs(env, "features")))


def test_resume_is_bit_for_bit(tmp_path):
    dataset = collect(ENV, 12, 6, env_kwargs=SMALL, demo_seed=1)
    source = DatasetSource(dataset, "features")
    straight = MandRIL(Linear(3), meta_batch_size=4, n_train_demos=2, n_test_demos=3, seed=5)
    straight.meta_train(source, 6, progress=False)
    first = MandRIL(Linear(3), meta_batch_size=4, n_train_demos=2, n_test_demos=3, seed=5)
    first.meta_train(source, 3, log_dir=tmp_path, checkpoint_every=3, progress=False)
    resumed = MandRIL(Linear(3, seed=99), meta_batch_size=4, n_train_demos=2, n_test_demos=3, seed=5)
    resumed.load_checkpoint(tmp_path / "checkpoint.pt")
    assert resumed.iteration == 3
    resumed.meta_train(source, 6, log_dir=tmp_path, checkpoint_every=3, progress=False)
    for name, value in straight.theta.items():
        assert torch.equal(value, resumed.theta[name]), name
    assert [r["outer_loss"] for r in straight.history] == [r["outer_loss"] for r in resumed.history]
    lines = (tmp_path / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 7 and lines[1].startswith("0,") and lines[-1].startswith("5,")


def test_corrupt_and_mismatched_checkpoints(tmp_path):
    trainer = MandRIL(Linear(3))
    path = trainer.save_checkpoint(tmp_path / "c.pt")
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="not a readable mandril checkpoint"):
        MandRIL(Linear(3)).load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="do not fit this reward model"):
        MandRIL(Linear(4)).load_checkpoint(path)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a mandril checkpoint"):
        MandRIL(Linear(3)).load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        MandRIL(Linear(3)).load_checkpoint(tmp_path / "nope.pt")


def test_non_finite_inner_loss_names_the_iteration():
    source = GeneratedSource(ENV, SMALL, input_kind="features")
    trainer = MandRIL(Linear(3), inner_lr=1e308, meta_batch_size=2)
    with pytest.raises(DivergenceError, match="MandRIL meta-iteration 0"):
        trainer.meta_step(source)


def test_bad_input(batch):
    with pytest.raises(ValueError, match="inner_lr must be a finite number > 0"):
        MandRILConfig(inner_lr=0)
    with pytest.raises(ValueError, match="meta_batch_size must be an int >= 1"):
        MandRILConfig(meta_batch_size=0)
    with pytest.raises(TypeError, match="reward_model must be a torch.nn.Module"):
        MandRIL(lambda x: x)
    with pytest.raises(ValueError, match=r"reward model output shape \(4,\) per task does not fit the task"):
        MandRIL(Wrong()).meta_loss(batch)
    trainer = MandRIL(Linear(3))
    model, inputs = batch.models[0], batch.inputs[0].numpy()
    with pytest.raises(ValueError, match="empty"):
        trainer.adapt(model, inputs, np.zeros((0, 5), int), np.zeros((0, 4), int))
    with pytest.raises(ValueError, match="demo sets disagree"):
        trainer.adapt(model, inputs, np.zeros((2, 5), int), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="horizon"):
        trainer.adapt(model, inputs, np.zeros((2, 7), int), np.zeros((2, 6), int))
    with pytest.raises(ValueError, match="out of range"):
        trainer.adapt(model, inputs, np.full((2, 5), 9), np.zeros((2, 4), int))


@pytest.mark.parametrize("input_kind", ["map", "rgb"])
def test_conv_reward_models_on_maps_and_pixels(input_kind):
    """The paper's two GridWorld settings: features as channels, and the RGB image of the map."""
    from mandril.rewards import RewardModelSpec, build_reward_model

    source = GeneratedSource("mandril_envs/GridWorld-v0", {"size": 5}, input_kind=input_kind)
    batch = source.sample(2, 1, 2, np.random.default_rng(0))
    assert batch.inputs.shape[1:] == ((3, 25, 25) if input_kind == "rgb" else (20, 5, 5))
    trainer = MandRIL(build_reward_model(RewardModelSpec("conv", (4,)), batch.inputs[0].numpy(), 25, seed=0), meta_batch_size=2, n_train_demos=1, n_test_demos=2)
    before = {k: v.detach().clone() for k, v in trainer.theta.items()}
    row = trainer.meta_step(source)
    assert np.isfinite(row["outer_loss"])
    assert any(not torch.equal(before[k], v) for k, v in trainer.theta.items())


@pytest.mark.parametrize("overrides, rate", [({"inner_lr": 1e6}, "inner_lr = 1e\\+06"), ({"meta_lr": 1e9}, "meta_lr = 1e\\+09")])
def test_an_exploding_run_stops_with_an_error_naming_the_iteration_and_the_rate(overrides, rate):
    source = GeneratedSource(ENV, SMALL, input_kind="features")
    trainer = MandRIL(Linear(3), meta_batch_size=2, **overrides)
    with pytest.raises(DivergenceError, match=rf"MandRIL meta-iteration \d+: .*{rate}"):
        trainer.meta_train(source, 30, progress=False)
    assert trainer.iteration < 30


@pytest.mark.parametrize("state_action", [False, True])
def test_a_pool_batch_equals_the_batch_made_from_its_demos(state_action):
    from mandril.data import make_batch

    dataset = collect(ENV, 5, 6, env_kwargs=SMALL)
    source = DatasetSource(dataset, "features", state_action=state_action)
    batch = source.sample(4, 2, 3, np.random.default_rng(7))
    rng = np.random.default_rng(7)  # the same draws, made by hand
    chosen = rng.choice(5, 4, replace=False)
    orders = [rng.permutation(6) for _ in chosen]
    train = [(dataset.states[i, o[:2]], dataset.actions[i, o[:2]]) for i, o in zip(chosen, orders)]
    test = [(dataset.states[i, o[2:5]], dataset.actions[i, o[2:5]]) for i, o in zip(chosen, orders)]
    expected = make_batch([source.models[i] for i in chosen], [source.inputs[i] for i in chosen], train, test, state_action)
    for name in ("inputs", "train_visitation", "test_visitation", "train_start", "test_start"):
        assert torch.equal(getattr(batch, name), getattr(expected, name)), name
    # the dynamics come from the pool's stacked tensors (every task has the same width here), in the
    # layout from_models picks for the meta-batch's size (the pool of all tasks is sparse)
    assert source._pool is not None and source._pool.layout == "sparse"
    for made in (batch, expected):
        assert (made.tasks.layout, made.tasks.horizon) == ("dense", expected.tasks.horizon)
    for name in ("successor_indices", "successor_probs", "initial_state_dist"):
        assert torch.equal(getattr(batch.tasks, name), getattr(expected.tasks, name)), name
    rewards = torch.as_tensor(np.stack([m.reward_matrix for m in batch.models]))
    for split in ("train", "test"):
        assert torch.equal(maxent_nll(batch.likelihood_tasks(split, "start"), rewards, batch.visitation(split)),
                           maxent_nll(expected.likelihood_tasks(split, "start"), rewards, expected.visitation(split)))
    source._pool = None  # tasks of several widths are stacked per draw: the same batch
    again = source.sample(4, 2, 3, np.random.default_rng(7))
    for name in ("successor_indices", "successor_probs", "initial_state_dist", "layout"):
        assert _same(getattr(again.tasks, name), getattr(batch.tasks, name)), name


def _same(a, b):
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


class _Recording:
    """A task source that records the number of train demos of each draw."""

    def __init__(self, source):
        self.source, self.drawn = source, []

    def sample(self, batch_size, n_train, n_test, rng):
        self.drawn.append(n_train)
        return self.source.sample(batch_size, n_train, n_test, rng)


def test_each_meta_iteration_draws_its_number_of_train_demos_from_the_choices():
    dataset = collect(ENV, 6, 12, env_kwargs=SMALL, demo_seed=1)
    fixed = _Recording(DatasetSource(dataset, "features"))
    MandRIL(Linear(3), meta_batch_size=2, n_train_demos=3, n_test_demos=2, seed=5).meta_train(fixed, 5, progress=False)
    assert fixed.drawn == [3] * 5
    drawn = _Recording(DatasetSource(dataset, "features"))
    trainer = MandRIL(Linear(3), meta_batch_size=2, n_train_demos_choices=(1, 4, 8), n_test_demos=2, seed=5)
    trainer.meta_train(drawn, 40, progress=False)
    assert set(drawn.drawn) == {1, 4, 8}  # every choice is drawn (40 draws from 3: all but certain), nothing else
    assert trainer.config.most_train_demos == 8
    again = _Recording(DatasetSource(dataset, "features"))
    MandRIL(Linear(3), meta_batch_size=2, n_train_demos_choices=(1, 4, 8), n_test_demos=2, seed=5).meta_train(again, 40, progress=False)
    assert again.drawn == drawn.drawn  # the draws come from the trainer's seeded generator


@pytest.mark.parametrize("choices", [(0, 2), (2, 2), (1.5,), ("1",), (True,)])
def test_bad_train_demo_choices_are_refused(choices):
    with pytest.raises(ValueError, match="n_train_demos_choices must be distinct ints >= 1"):
        MandRILConfig(n_train_demos_choices=choices)


def test_the_pool_must_hold_the_largest_choice_plus_the_test_demos():
    from mandril import methods

    method = methods.make("mandril", reward_model={"kind": "linear"}, input_kind="features", n_train_demos_choices=[1, 32], n_test_demos=10)
    method.check_training(42, [1, 32])
    with pytest.raises(ValueError, match="up to 42 demos per training task .32 \\+ 10.*at least 42"):
        method.check_training(41, [1, 32])
