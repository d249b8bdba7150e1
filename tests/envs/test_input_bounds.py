"""Issue 20 (items 6 and 7) on the mandril_envs side: sizes, env kwargs, datasets."""

from __future__ import annotations

import gymnasium as gym
import pytest

import mandril_envs  # noqa: F401  (registers the ids)


@pytest.mark.parametrize("env_id", ["mandril_envs/GridWorld-v0", "mandril_envs/Bandit-v0", "mandril_envs/TabularMDP-v0"])
def test_sample_tasks_refuses_an_absurd_count_before_drawing_any(env_id):
    base = gym.make(env_id).unwrapped
    with pytest.raises(ValueError, match=r"sample_tasks n=1000000000000 .* would take about .* more than"):
        base.sample_tasks(10**12, "test")
    assert len(base.sample_tasks(3, "test")) == 3


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _lying_archive(honest: "Path", out: "Path", m: int, declared: int, data: int = 64) -> None:
    """``honest`` with its states member replaced by a header of ``M = m`` demos and a few bytes of data,
    and the zip's declared uncompressed size of that member patched to ``declared`` bytes."""
    import struct
    import zipfile

    with zipfile.ZipFile(honest) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    n, _, h1 = __import__("numpy").load(honest)["states"].shape
    members["states.npy"] = _npy_header((n, m, h1), "<i8") + bytes(data)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    raw = bytearray(out.read_bytes())
    name = b"states.npy"
    local = raw.find(b"PK\x03\x04" + raw[4:4])  # first local header
    while local >= 0:
        if raw[local + 30 : local + 30 + len(name)] == name:
            struct.pack_into("<I", raw, local + 22, declared)
        local = raw.find(b"PK\x03\x04", local + 4)
    central = raw.find(b"PK\x01\x02")
    while central >= 0:
        if raw[central + 46 : central + 46 + len(name)] == name:
            struct.pack_into("<I", raw, central + 24, declared)
        central = raw.find(b"PK\x01\x02", central + 4)
    out.write_bytes(bytes(raw))


def test_a_small_file_cannot_declare_arrays_its_bytes_cannot_hold(tmp_path):
    """A few-KB file whose zip header and .npy header declare a 1 GB states array: refused before the
    array is allocated (the old loader allocated the declared size, then failed reading)."""
    from mandril_envs import dataset as dataset_module
    from mandril_envs.dataset import DatasetError, DemoDataset, collect

    honest = collect("mandril_envs/Bandit-v0", 2, 2).save(tmp_path / "honest.npz")
    lying = tmp_path / "lying.npz"
    _lying_archive(honest, lying, m=5_000_000, declared=2**30)  # 2 x 5e6 x 11 int64 = 880 MB declared
    assert lying.stat().st_size < 10_000
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=r"lying.npz: array 'states' declares 1073741824 bytes from \d+ compressed ones .*deflate expands at most 1032-fold"):
            DemoDataset.load(lying)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak  # numpy reports its allocations to tracemalloc: nothing near the declared 880 MB
    assert dataset_module.MAX_DEFLATE_RATIO == 1032


def test_declared_demo_shapes_must_match_the_meta_data_before_anything_is_read(tmp_path):
    from mandril_envs.dataset import DatasetError, DemoDataset, collect

    honest = collect("mandril_envs/Bandit-v0", 2, 2).save(tmp_path / "honest.npz")
    other = tmp_path / "other.npz"
    _lying_archive(honest, other, m=3, declared=len(_npy_header((2, 3, 11), "<i8")) + 528, data=528)  # M = 3 here, 2 in actions and rewards
    with pytest.raises(DatasetError, match=r"other.npz: actions declares shape \(2, 2, 10\), expected \(2, 3, 10\)"):
        DemoDataset.load(other)


# --- datasets: edited rewards and env ids (item 7) -------------------------------------------
@pytest.fixture(scope="module")
def bandit_data():
    from mandril_envs.dataset import collect

    return collect("mandril_envs/Bandit-v0", 20, 10, "test", task_seed=3, demo_seed=3)


def _edited(dataset, **changes):
    from mandril_envs.dataset import DemoDataset

    fields = {name: getattr(dataset, name) for name in ("env_id", "tasks", "expert", "task_seed", "demo_seed", "states", "actions", "rewards")}
    return DemoDataset(**{**fields, **changes})


def test_an_edited_bandit_reward_stream_is_caught(bandit_data):
    import numpy as np

    from mandril_envs.dataset import DatasetError

    bandit_data.verify()
    rewards = bandit_data.rewards
    # one arm of one task edited to pay 1 whenever pulled: the arm where that is least likely
    evidence = [(-(bandit_data.actions[t] == a).sum() * np.log(m), t, a) for t, task in enumerate(bandit_data.tasks) for a, m in enumerate(task.params["means"])]
    strength, task, low = max(evidence)
    assert strength > 40  # log-probability of that edit below -40: far beyond the per-sum threshold (about 29 here)
    arm = rewards.copy()
    arm[task][bandit_data.actions[task] == low] = 1.0
    swapped = rewards.copy()
    swapped[:] = rewards[::-1]  # every task's rewards from another task: the counts stay plausible, the arms do not
    for name, edited in (("all ones", np.ones_like(rewards)), ("all zeros", np.zeros_like(rewards)), ("flipped", 1.0 - rewards), ("shuffled across tasks", swapped)):
        with pytest.raises(DatasetError, match=r"^dataset: (task \d+|the rewards of all)"):
            _edited(bandit_data, rewards=edited).verify()
    with pytest.raises(DatasetError, match=r"^dataset: task %d, s=0, a=%d: \d+ ones in \d+ pulls where .* are expected: probability below" % (task, low)):
        _edited(bandit_data, rewards=arm).verify()


def test_honest_bandit_datasets_pass_the_reward_tests():
    """The bound holds for any data (Chernoff + Bonferroni, false alarm < 1e-9): 40 honest datasets, extreme arms included."""
    from mandril_envs.dataset import collect

    for seed in range(20):
        collect("mandril_envs/Bandit-v0", 5, 8, "test", task_seed=seed, demo_seed=seed, env_kwargs={"horizon": 25}).verify()
        collect("mandril_envs/Bandit-K10-v0", 5, 8, "test", task_seed=seed, demo_seed=seed, env_kwargs={"arm_distribution": "gaussian"}).verify()


def test_the_chernoff_bound_is_a_bound():
    """Exact binomial tails never exceed the bound the check uses (so its false-alarm rate is at most FALSE_ALARM)."""
    import math

    import numpy as np

    from mandril_envs.reward_noise import _bernoulli_kl

    for n in (1, 5, 40, 200):
        for p in (0.01, 0.3, 0.5, 0.97):
            for k in range(n + 1):
                upper = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1)) if k / n > p else 1.0
                lower = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(0, k + 1)) if k / n < p else 1.0
                bound = math.exp(-n * float(_bernoulli_kl(np.array(k / n), np.array(p))))
                assert min(upper, lower) <= bound * (1 + 1e-9), (n, p, k)


def test_a_dataset_whose_env_id_names_another_family_or_variant_is_refused(bandit_data, tmp_path):
    import json

    import numpy as np

    from mandril_envs.dataset import DatasetError, DemoDataset

    path = bandit_data.save(tmp_path / "d.npz")
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(str(arrays["meta"]))
    for env_id, words in (("mandril_envs/TabularMDP-v0", "makes 'TabularMDP' tasks, but the tasks are 'Bandit' tasks"),
                          ("mandril_envs/Bandit-K50-v0", "registers n_arms = 50, but the tasks' config has n_arms = 5")):
        edited = tmp_path / f"{env_id.split('/')[1]}.npz"
        np.savez(edited, **{**arrays, "meta": np.array(json.dumps({**meta, "env_id": env_id}))})
        with pytest.raises(DatasetError, match=words):
            DemoDataset.load(edited)
    from mandril_envs.dataset import collect

    with pytest.raises(ValueError, match="registers n_arms = 50, but the tasks' config has n_arms = 5"):
        collect("mandril_envs/Bandit-K50-v0", 1, 1, env_kwargs={"n_arms": 5})  # such a file is never written


# --- the mandril-envs command line ------------------------------------------------------------
def _generate(tmp_path, capsys, *argv):
    from mandril_envs.cli import main as cli_main

    code = cli_main(["demos", "generate", "--env", "mandril_envs/Bandit-v0", "--tasks", "2", "--demos", "2", "--quiet", *argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("kwargs, words", [
    ('{"autoreset": true}', "--env-kwargs autoreset = true is refused"),
    ('{"max_episode_steps": 3}', "--env-kwargs max_episode_steps = 3 differs from the family's horizon 10"),
    ('{"apply_api_compatibility": true}', "--env-kwargs apply_api_compatibility = true is refused"),
    ('{"render_mode": "human"}', "render_mode 'human' is not declared"),
    ('{"n_arms": 50}', "--env 'mandril_envs/Bandit-v0'"),  # placeholder replaced below
])
def test_demos_generate_refuses_wrapper_kwargs_instead_of_writing_a_corrupt_dataset(tmp_path, capsys, kwargs, words):
    out = tmp_path / "d.npz"
    if kwargs == '{"n_arms": 50}':  # an id whose registered kwargs the kwargs contradict
        code, err = _generate(tmp_path, capsys, "--out", str(out), "--env", "mandril_envs/Bandit-K5-v0", "--env-kwargs", kwargs)
        words = "registers n_arms = 5"
    else:
        code, err = _generate(tmp_path, capsys, "--out", str(out), "--env-kwargs", kwargs)
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_demos_generate_never_overwrites_a_file_by_accident(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    code, err = _generate(tmp_path, capsys, "--out", str(notes))
    assert code == 2 and "must end in .npz" in err and notes.read_text() == "my notes"
    out = tmp_path / "d.npz"
    assert _generate(tmp_path, capsys, "--out", str(out))[0] == 0
    before = out.read_bytes()
    code, err = _generate(tmp_path, capsys, "--out", str(out), "--seed", "1")
    assert code == 2 and "exists: pass --force" in err and out.read_bytes() == before
    assert _generate(tmp_path, capsys, "--out", str(out), "--seed", "1", "--force")[0] == 0 and out.read_bytes() != before
    code, err = _generate(tmp_path, capsys, "--out", "/proc/x.npz")
    assert code == 2 and "cannot create a file in '/proc'" in err


def test_demos_info_refuses_a_fifo_at_once(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    fifo = tmp_path / "d.npz"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "mandril_envs.cli", "demos", "info", str(fifo)], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2 and result.stderr == f"mandril-envs demos info: error: dataset '{fifo}' is a FIFO (named pipe), not a regular file: reading it could block or never end\n"


def test_file_helpers():
    from mandril_envs.files import check_regular_file, parse_json

    with pytest.raises(ValueError, match="'/dev/zero' is a character device, not a regular file"):
        check_regular_file("/dev/zero", "dataset")
    with pytest.raises(IsADirectoryError):
        check_regular_file("/tmp")
    with pytest.raises(ValueError, match="x is not valid JSON: nested too deeply"):
        parse_json("[" * 40 + "]" * 40, "x")
    assert parse_json("[" * 32 + "]" * 32, "x") is not None
    with pytest.raises(ValueError, match="Infinity is not a JSON number"):
        parse_json('{"a": Infinity}', "x")
