"""Expert demos, datasets (round trip, corruption, mismatch) and the demos CLI."""

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import mandril_envs  # noqa: F401
from mandril_envs import demos, planning
from mandril_envs.cli import main as cli_main
from mandril_envs.dataset import DatasetError, DemoDataset, collect


@pytest.mark.parametrize("env_id", mandril_envs.ENV_IDS)
@pytest.mark.parametrize("policy", ["soft", "optimal", "epsilon"])
def test_generate_shapes_and_consistency(env_id, policy):
    env = gym.make(env_id)
    trajectories = demos.generate(env, 3, policy=policy, seed=1)
    model = env.unwrapped.model
    for trajectory in trajectories:
        assert trajectory.states.shape == (model.horizon + 1,) and trajectory.actions.shape == (model.horizon,)
        assert trajectory.rewards.shape == (model.horizon,) and trajectory.observations.shape[0] == model.horizon + 1
        assert model.transition_matrix[trajectory.states[:-1], trajectory.actions, trajectory.states[1:]].min() > 0
        if env_id.startswith("mandril_envs/GridWorld"):  # noiseless state rewards
            np.testing.assert_array_equal(trajectory.rewards, model.reward_matrix[trajectory.states[:-1]])


def test_generate_is_seeded():
    env = gym.make("mandril_envs/GridWorld-v0", slip=0.2)
    a = demos.generate(env, 4, seed=7)
    b = demos.generate(gym.make("mandril_envs/GridWorld-v0", slip=0.2), 4, seed=7)
    c = demos.generate(env, 4, seed=8)
    assert all(np.array_equal(x.states, y.states) and np.array_equal(x.actions, y.actions) for x, y in zip(a, b))
    assert not all(np.array_equal(x.states, y.states) for x, y in zip(a, c))


def _stepped_demos(env, n, seed, expert):
    """task_demos the slow way: every episode stepped through the env."""
    base = env.unwrapped
    trajectories = demos.rollout(env, demos.expert_policy(env, expert), n, demos.task_demo_seed(seed, base.task))
    return tuple(np.stack([getattr(t, name) for t in trajectories]) for name in ("states", "actions", "rewards"))


_DEMO_CASES = [(env_id, {}) for env_id in mandril_envs.ENV_IDS] + [
    (env_id, {"slip": 0.3}) for env_id in mandril_envs.ENV_IDS if env_id.startswith("mandril_envs/GridWorld")
]


@pytest.mark.parametrize("env_id, kwargs", _DEMO_CASES, ids=[f"{e.split('/')[1]}{'-slip' if k else ''}" for e, k in _DEMO_CASES])
def test_task_demos_drawn_from_the_model_equal_the_stepped_episodes(env_id, kwargs):
    """task_demos draws every episode's steps at once from the model (Gaussian noise: step by step without the
    wrappers); the states, actions, rewards, the env's generator and where the episode ends are the stepped
    path's, bit for bit, on every family (no noise, Bernoulli and Gaussian rewards), expert kind and slip."""
    experts = [demos.ExpertSettings(), demos.ExpertSettings("soft", 0.3), demos.ExpertSettings("epsilon", epsilon=0.4)]
    for task_index, expert in enumerate(experts):
        fast, slow = gym.make(env_id, **kwargs), gym.make(env_id, **kwargs)
        assert demos._steps_are_model_draws(fast, fast.unwrapped)
        for env in (fast, slow):
            env.unwrapped.set_task(env.unwrapped.sample_tasks(task_index + 1, "train", seed=3)[task_index])
        got = demos.task_demos(fast, 9, seed=11, expert=expert)
        want = _stepped_demos(slow, 9, 11, expert)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        a, b = fast.unwrapped, slow.unwrapped
        assert (a._state, a._t, a._last_action, a._past_horizon) == (b._state, b._t, b._last_action, b._past_horizon)
        assert a.np_random.bit_generator.state == b.np_random.bit_generator.state


def test_task_demos_step_through_a_wrapper_that_may_change_the_steps():
    """A wrapper other than gym.make's passive ones may change what a step does: its episodes are stepped."""

    class Sticky(gym.Wrapper):  # repeats action 0 whatever it is asked
        def step(self, action):
            return self.env.step(0)

    env = Sticky(gym.make("mandril_envs/GridWorld-v0"))
    assert not demos._steps_are_model_draws(env, env.unwrapped)
    got = demos.task_demos(env, 3, seed=2)
    want = _stepped_demos(Sticky(gym.make("mandril_envs/GridWorld-v0")), 3, 2, demos.ExpertSettings())
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    states, actions, _ = got
    model = env.unwrapped.model
    assert model.transition_matrix[states[:, :-1], 0, states[:, 1:]].min() > 0  # every move is one action 0 makes
    assert np.any(actions != 0)  # the expert asked for others


def test_optimal_expert_acts_optimally():
    env = gym.make("mandril_envs/GridWorld-v0")
    plan = planning.value_iteration(env.unwrapped.model)
    for trajectory in demos.generate(env, 5, policy="optimal", seed=0):
        for t, (s, a) in enumerate(zip(trajectory.states[:-1], trajectory.actions)):
            assert plan.q_values[t, s, a] == plan.values[t, s]


def test_soft_expert_visitation_matches_the_planner():
    env = gym.make("mandril_envs/GridWorld-v0")
    model = env.unwrapped.model
    expected = planning.state_visitation(model, planning.soft_value_iteration(model).policy).sum(axis=0)
    trajectories = demos.generate(env, 3000, seed=0)
    empirical = np.bincount(np.concatenate([t.states[:-1] for t in trajectories]), minlength=model.state_dim) / 3000
    np.testing.assert_allclose(empirical, expected, atol=0.15)
    assert np.abs(empirical - expected).sum() / model.horizon < 0.03


def test_observations_follow_obs_type():
    env = gym.make("mandril_envs/GridWorld-v0", obs_type="features")
    trajectory = demos.generate(env, 1, seed=0)[0]
    np.testing.assert_allclose(trajectory.observations, env.unwrapped.feature_matrix[trajectory.states].astype(np.float32))


def test_bad_demo_arguments():
    env = gym.make("mandril_envs/GridWorld-v0")
    with pytest.raises(ValueError, match="policy must be one of"):
        demos.generate(env, 1, policy="greedy")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        demos.generate(env, 1, temperature=0)
    with pytest.raises(ValueError, match="epsilon must be <= 1.0"):
        demos.generate(env, 1, policy="epsilon", epsilon=2)
    with pytest.raises(ValueError, match="n_episodes must be >= 0"):
        demos.generate(env, -1)
    with pytest.raises(TypeError, match="not a mandril_envs env|must be a mandril_envs env"):
        demos.generate(gym.make("CartPole-v1"), 1)


@pytest.fixture(scope="module")
def small_dataset():
    return collect("mandril_envs/GridWorld-v0", 4, 3, split="test", task_seed=2, demo_seed=5)


def test_dataset_roundtrip(small_dataset, tmp_path):
    path = small_dataset.save(tmp_path / "d.npz")
    loaded = DemoDataset.load(path, env_id="mandril_envs/GridWorld-v0", family="GridWorld", split="test")
    assert loaded.tasks == small_dataset.tasks and loaded.expert == small_dataset.expert
    for name in ("states", "actions", "rewards"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(small_dataset, name))
    # the ground truth rebuilds exactly
    env = gym.make("mandril_envs/GridWorld-v0")
    env.unwrapped.set_task(small_dataset.tasks[2])
    np.testing.assert_array_equal(loaded.make_env(2).unwrapped.reward_matrix, env.unwrapped.reward_matrix)
    # the stored demos are what generate() gives for that task
    trajectories = loaded.trajectories(1, obs_type="onehot")
    assert trajectories[0].observations.shape == (17, 64)
    buffers = loaded.episode_buffers(0)
    assert buffers[0]["truncations"].tolist() == [False] * 15 + [True] and not buffers[0]["terminations"].any()


def test_dataset_is_deterministic(small_dataset):
    again = collect("mandril_envs/GridWorld-v0", 4, 3, split="test", task_seed=2, demo_seed=5)
    np.testing.assert_array_equal(again.states, small_dataset.states)


def _rewrite(path, **changes):
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["meta"]))
    for key, value in changes.items():
        if key in arrays and key != "meta":
            arrays[key] = value
        else:
            meta[key] = value
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: {"version": 7}, "format version 7 is not supported"),
        (lambda d: {"format": "other"}, "not a mandril_envs.demos file"),
        (lambda d: {"states": d.states[:, :, :-1]}, r"states declares shape \(4, 3, 16\), expected \(4, 3, 17\)"),
        (lambda d: {"actions": np.full_like(d.actions, 9)}, r"actions must lie in \[0, 9\)"),
        (lambda d: {"states": -np.ones_like(d.states)}, r"states must lie in \[0, 64\)"),
        (lambda d: {"rewards": np.full_like(d.rewards, np.nan)}, "rewards must be finite"),
        (lambda d: {"tasks": [t.to_dict() for t in d.tasks[:3]]}, r"states declares shape \(4, 3, 17\), expected \(3, 3, 17\)"),
        (lambda d: {"actions": (d.actions + 1) % 9}, "a transition its model cannot produce"),
        (lambda d: {"tasks": [{**t.to_dict(), "family": "Bandit"} for t in d.tasks]}, r"task 0 is a .Bandit. task of split .test., but meta says family .GridWorld."),
    ],
)
def test_corrupt_or_mismatched_files_are_refused(small_dataset, tmp_path, change, message):
    path = small_dataset.save(tmp_path / "d.npz")
    _rewrite(path, **change(small_dataset))
    with pytest.raises(DatasetError, match=message):
        DemoDataset.load(path)


def test_truncated_and_wrong_files(small_dataset, tmp_path):
    path = small_dataset.save(tmp_path / "d.npz")
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="not a readable dataset file"):
        DemoDataset.load(tmp_path / "cut.npz")
    with pytest.raises(DatasetError, match="split is 'test', expected 'train'"):
        DemoDataset.load(path, split="train")
    with pytest.raises(FileNotFoundError, match="No such file or directory"):
        DemoDataset.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DatasetError, match="missing array 'meta'"):
        DemoDataset.load(tmp_path / "other.npz")


def test_save_is_atomic(small_dataset, tmp_path, monkeypatch):
    path = tmp_path / "d.npz"
    small_dataset.save(path)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez_compressed", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        small_dataset.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]  # no temporary left behind


def test_cli_generate_and_info(tmp_path, capsys):
    out = tmp_path / "gw.npz"
    code = cli_main(["demos", "generate", "--env", "mandril_envs/Bandit-K10-v0", "--tasks", "3", "--demos", "2", "--split", "test", "--out", str(out), "--quiet"])
    assert code == 0 and out.is_file()
    assert cli_main(["demos", "info", str(out)]) == 0
    assert "3 tasks x 2 demos x 10 steps" in capsys.readouterr().out
    assert cli_main(["list"]) == 0 and "mandril_envs/GridWorld-32x32-v0" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env", "mandril_envs/Nope-v0"], "is not registered"),
        (["--tasks", "0"], "--tasks must be >= 1, got 0"),
        (["--split", "valid"], "split must be one of"),
        (["--env-kwargs", '{"size": -1}'], "size must be >= 2"),
        (["--temperature", "-1"], "temperature must be > 0"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "x.npz"
    code = cli_main(["demos", "generate", "--out", str(out), "--quiet", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "mandril_envs.demos", "generate", "--help"], capture_output=True, text=True, check=True)
    assert "--temperature" in result.stdout and "atomically" in result.stdout


def test_a_dataset_whose_train_tasks_leak_held_out_sprites_is_refused(tmp_path):
    dataset = collect("mandril_envs/GridWorld-v0", 2, 1, split="test_unseen")
    path = dataset.save(tmp_path / "d.npz")
    _rewrite(path, split="train", tasks=[{**t.to_dict(), "split": "train"} for t in dataset.tasks])
    for verify in (True, False):
        with pytest.raises(DatasetError, match=r"d.npz: task 0 \(train split\) is refused: task split 'train' cannot hold this task \(the split would leak\): goal sprite type \d+ is one of the unseen types"):
            DemoDataset.load(path, verify=verify)
