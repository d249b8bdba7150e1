"""Seeded fuzzing of what users hand the suite: malformed task JSON and malformed dataset files.

Every malformed input must be refused cleanly: a ``ValueError``/``TypeError`` (tasks) or a
``DatasetError`` (datasets) from the API, and exit status 2 with one line and no traceback from
``mandril-envs demos info``. The mutations are built to be malformed (a deleted or unknown key, a
value of the wrong type, a truncation, garbage, a task in a split that cannot hold it, a dtype or
shape a file never has, a value out of range); the one kind that can leave a file intact, a
flipped byte in a part of the zip archive no reader checks (a timestamp), must then load to the
very same dataset, and is counted apart. Each run prints its counts.
"""

from __future__ import annotations

import copy
import io
import json
import math
import zipfile

import gymnasium as gym
import numpy as np
import pytest

import mandril_envs  # noqa: F401
from mandril_envs import Task
from mandril_envs.cli import main as cli_main
from mandril_envs.dataset import DatasetError, DemoDataset, collect
from mandril_envs.registration import ENV_IDS

SEED = 20_240_617
FAMILIES = {
    "GridWorld": ("mandril_envs/GridWorld-v0", {"size": 5, "horizon": 4}),
    "TabularMDP": ("mandril_envs/TabularMDP-v0", {"n_states": 3, "n_actions": 2, "horizon": 3}),
    "TabularMDP-Linear": ("mandril_envs/TabularMDP-Linear-v0", {"n_states": 3, "n_actions": 2, "horizon": 3, "n_features": 2}),
    "Bandit": ("mandril_envs/Bandit-v0", {"n_arms": 3, "horizon": 4}),
}
#: Registered ids of the same family whose registered kwargs contradict the FAMILIES config.
CONTRADICTING = {"GridWorld": ["mandril_envs/GridWorld-16x16-v0", "mandril_envs/GridWorld-32x32-v0"], "Bandit": ["mandril_envs/Bandit-K5-v0", "mandril_envs/Bandit-K50-v0"],
                 "TabularMDP": ["mandril_envs/TabularMDP-Linear-v0"]}
BAD_VALUES = [None, "x", [], {}, True, False, math.nan, math.inf, -math.inf, "", [[]], {"": None}]
REFUSED = (ValueError, TypeError)


# --- mutations of plain JSON data ----------------------------------------------------------
def _containers(value, path=()):
    """Every (path, dict or non-empty list) inside ``value``."""
    if isinstance(value, dict):
        yield path, value
        for key, item in value.items():
            yield from _containers(item, path + (key,))
    elif isinstance(value, list):
        if value:
            yield path, value
        for i, item in enumerate(value):
            yield from _containers(item, path + (i,))


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, path + (i,))
    else:
        yield path


def _set(data, path, value):
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _get(data, path):
    for key in path:
        data = data[key]
    return data


def mutate(data: dict, rng: np.random.Generator) -> tuple[str, object]:
    """A malformed copy of ``data`` (JSON data): (what was done, the new data)."""
    data = copy.deepcopy(data)
    op = rng.choice(["delete", "retype", "add_key", "wrap"])
    if op == "delete":
        candidates = [(p, c) for p, c in _containers(data) if len(c) > 0]
        path, container = candidates[rng.integers(len(candidates))]
        key = list(container)[rng.integers(len(container))] if isinstance(container, dict) else int(rng.integers(len(container)))
        del container[key]
        return f"delete {path + (key,)}", data
    if op == "add_key":
        dicts = [(p, c) for p, c in _containers(data) if isinstance(c, dict)]
        path, container = dicts[rng.integers(len(dicts))]
        container[f"zz{rng.integers(100)}"] = 1
        return f"add a key at {path}", data
    leaves = list(_leaves(data))
    path = leaves[rng.integers(len(leaves))]
    if op == "wrap":
        _set(data, path, [_get(data, path)])
        return f"wrap {path} in a list", data
    bad = BAD_VALUES[rng.integers(len(BAD_VALUES))]
    _set(data, path, copy.deepcopy(bad))
    return f"set {path} to {bad!r}", data


# --- tasks ---------------------------------------------------------------------------------
def malformed_tasks(rng: np.random.Generator, n: int):
    """(family, description, task JSON text) of ``n`` malformed tasks."""
    for i in range(n):
        family = list(FAMILIES)[i % len(FAMILIES)]
        env_id, kwargs = FAMILIES[family]
        env = gym.make(env_id, **kwargs).unwrapped
        split = env.splits[rng.integers(len(env.splits))]
        task = env.sample_tasks(1, split, seed=int(rng.integers(1000)), start=int(rng.integers(50)))[0].to_dict()
        text = json.dumps(task)
        kind = rng.integers(10)
        if kind == 0:
            cut = int(rng.integers(len(text)))
            yield family, f"truncated at {cut}", text[:cut]
        elif kind == 1:
            yield family, "random bytes", bytes(rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8)).decode("latin-1")
        elif kind == 2:
            depth = int(rng.integers(2_000, 50_000))
            yield family, f"nested {depth} deep", "[" * depth + "]" * depth
        elif kind == 3 and family == "GridWorld":
            other = [s for s in env.splits if s != split][rng.integers(len(env.splits) - 1)]
            yield family, f"a {split} task claimed as {other}", json.dumps({**task, "split": other})
        else:
            what, data = mutate(task, rng)
            yield family, what, json.dumps(data, allow_nan=True)


def _refuses(call) -> str:
    try:
        call()
    except REFUSED:
        return "refused"
    except Exception as error:  # noqa: BLE001 - the point is to find these
        return f"crashed with {type(error).__name__}: {error}"
    return "accepted"


def test_malformed_tasks_are_refused():
    """Every malformed task is refused by each env entry point; ``Task.from_json`` refuses the ones
    malformed as tasks (its keys and types) and never fails any other way: only the env knows a
    family's parameters."""
    rng = np.random.default_rng(SEED)
    envs = {family: gym.make(env_id, **kwargs) for family, (env_id, kwargs) in FAMILIES.items()}
    tried = refused = parsed = 0
    problems = []
    for family, what, text in malformed_tasks(rng, 400):
        env_id, kwargs = FAMILIES[family]
        outcome = _refuses(lambda: Task.from_json(text))
        if outcome.startswith("crashed"):
            problems.append(f"{family} {what}: Task.from_json {outcome}: {text[:200]!r}")
        parsed += outcome == "accepted"
        calls = {
            "set_task": lambda: envs[family].unwrapped.set_task(text),
            "gym.make(task=...)": lambda: gym.make(env_id, **kwargs, task=text),
            "reset(options=task)": lambda: envs[family].reset(options={"task": text}),
        }
        for name, call in calls.items():
            tried += 1
            outcome = _refuses(call)
            refused += outcome == "refused"
            if outcome != "refused":
                problems.append(f"{family} {what}: {name} {outcome}: {text[:200]!r}")
    print(f"\nfuzz tasks: 400 malformed tasks, {tried} calls tried, {refused} refused cleanly ({400 - parsed} already by Task.from_json)")  # shown with -s
    assert not problems, "\n".join(problems[:20])
    assert tried == 1200


# --- datasets ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    out = {}
    for family, (env_id, kwargs) in FAMILIES.items():
        dataset = collect(env_id, 2, 2, split="test", env_kwargs=kwargs)
        out[family] = (dataset, dataset.save(folder / f"{family}.npz").read_bytes())
    return out


def _arrays(data: bytes) -> dict:
    with np.load(io.BytesIO(data)) as archive:
        return {key: archive[key] for key in archive.files}


def _npz(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _pickled_npy(value) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array(value, dtype=object), allow_pickle=True)
    return buffer.getvalue()


def malformed_datasets(originals, rng: np.random.Generator, n: int):
    """(family, description, file bytes, may_be_harmless) of ``n`` malformed dataset files."""
    for i in range(n):
        family = list(originals)[i % len(originals)]
        dataset, data = originals[family]
        arrays = _arrays(data)
        meta = json.loads(str(arrays["meta"]))
        kind = int(rng.integers(13))
        if kind == 0:
            cut = int(rng.integers(len(data)))
            yield family, f"truncated to {cut} bytes", data[:cut], False
        elif kind in (1, 2):
            flipped = bytearray(data)
            places = rng.integers(0, len(data), int(rng.integers(1, 5)))
            for place in places:
                flipped[place] ^= int(rng.integers(1, 256))
            yield family, f"bytes flipped at {sorted(places.tolist())}", bytes(flipped), True
        elif kind == 3:
            key = ["states", "actions", "rewards"][rng.integers(3)]
            dtype = [np.float64, np.float32, bool, np.complex128, "U3", "S3"][rng.integers(6)]
            if key == "rewards" and dtype in (np.float64, np.float32):
                dtype = np.int64
            yield family, f"{key} as {np.dtype(dtype)}", _npz({**arrays, key: arrays[key].astype(dtype)}), False
        elif kind == 4:
            key = ["states", "actions", "rewards"][rng.integers(3)]
            array = arrays[key]
            shapes = [array[..., :-1], array[:, :, None], array.transpose(2, 1, 0), array[:1], array.ravel(), array[None], array[:, :1]]
            choice = int(rng.integers(len(shapes)))
            yield family, f"{key} reshaped ({choice})", _npz({**arrays, key: shapes[choice]}), False
        elif kind == 5:
            what, edited = mutate(meta, rng)
            yield family, f"meta: {what}", _npz({**arrays, "meta": np.array(json.dumps(edited, allow_nan=True))}), False
        elif kind == 6:
            replacement = [np.array([1.0, 2.0]), np.array(["a", "b"]), np.array(b"{}"), np.array("{" + "[" * 3000), np.array("null"), np.array(json.dumps(meta)[:-1])][rng.integers(6)]
            yield family, f"meta replaced by {replacement!r:.40}", _npz({**arrays, "meta": replacement}), False
        elif kind == 7:
            key = ["states", "actions"][rng.integers(2)]
            bad = arrays[key].copy()
            bad.flat[rng.integers(bad.size)] = [-1, 10**6, -(2**40)][rng.integers(3)]
            yield family, f"{key} out of range", _npz({**arrays, key: bad}), False
        elif kind == 8:
            rewards = arrays["rewards"].copy()
            noisy = family.startswith("TabularMDP")  # Gaussian noise: 0.5 is a plausible reward there
            values = [math.nan, math.inf, 1000.0, -1000.0] + ([] if noisy else [0.5])
            rewards.flat[rng.integers(rewards.size)] = values[rng.integers(len(values))]
            yield family, "a reward tampered", _npz({**arrays, "rewards": rewards}), False
        elif kind == 9:
            key = ["meta", "states", "actions", "rewards"][rng.integers(4)]
            change = rng.integers(3)
            edited = {k: v for k, v in arrays.items() if k != key}
            if change == 1:
                edited[key + "2"] = arrays[key]
            elif change == 2:
                edited["extra"] = np.zeros(3)
                edited[key] = arrays[key]
            yield family, f"archive members changed ({key}, {change})", _npz(edited), False
        elif kind == 10:
            key = ["states", "actions", "rewards", "meta"][rng.integers(4)]
            clean = _npz({k: v for k, v in arrays.items() if k != key})
            buffer = io.BytesIO(clean)
            with zipfile.ZipFile(buffer, "a") as archive:
                archive.writestr(f"{key}.npy", _pickled_npy([{"x": 1}]))
            yield family, f"{key} pickled", buffer.getvalue(), False
        elif kind == 12:  # the env id edited to another family, or to a variant its tasks' config contradicts
            targets = [i for i in ENV_IDS if i.split("/")[1].split("-")[0] != family.split("-")[0]] + CONTRADICTING.get(family, [])
            target = targets[int(rng.integers(len(targets)))]
            yield family, f"env_id edited to {target}", _npz({**arrays, "meta": np.array(json.dumps({**meta, "env_id": target}))}), False
        else:
            yield family, "random bytes", bytes(rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8)), False


def _same(a: DemoDataset, b: DemoDataset) -> bool:
    return (
        a.env_id == b.env_id and a.tasks == b.tasks and a.expert == b.expert and (a.task_seed, a.demo_seed) == (b.task_seed, b.demo_seed)
        and all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("states", "actions", "rewards"))
    )


def test_malformed_datasets_are_refused(originals, tmp_path, capsys):
    rng = np.random.default_rng(SEED + 1)
    tried = refused = harmless = 0
    problems = []
    for number, (family, what, data, may_be_harmless) in enumerate(malformed_datasets(originals, rng, 300)):
        path = tmp_path / f"{number}.npz"
        path.write_bytes(data)
        tried += 1
        try:
            loaded = DemoDataset.load(path)
        except DatasetError as error:
            api = "refused"
            if "\n" in str(error) or not str(error).startswith(f"{path}: "):
                problems.append(f"{family} {what}: the message is not one line naming the file: {error!s:.300}")
        except Exception as error:  # noqa: BLE001
            api = f"crashed with {type(error).__name__}: {error!s:.300}"
        else:
            api = "harmless" if may_be_harmless and _same(loaded, originals[family][0]) else "accepted"
        try:
            code = cli_main(["demos", "info", str(path)])
        except BaseException as error:  # noqa: BLE001 - a traceback in a real process
            code = f"raised {type(error).__name__}: {error!s:.300}"
        captured = capsys.readouterr()
        if api == "refused":
            refused += 1
            lines = captured.err.splitlines()
            if code != 2 or captured.out or len(lines) != 1 or "Traceback" in captured.err or not lines[0].startswith("mandril-envs demos info: error: "):
                problems.append(f"{family} {what}: demos info gave {code!r} with {captured.err!r:.300}")
        elif api == "harmless":
            harmless += 1
            if code != 0:
                problems.append(f"{family} {what}: an intact file, but demos info gave {code!r}")
        else:
            problems.append(f"{family} {what}: load {api}")
    with capsys.disabled():
        print(f"\nfuzz datasets: {tried} inputs tried, {refused} refused cleanly (API and CLI), {harmless} left the data intact and loaded unchanged")
    assert not problems, "\n".join(problems[:20])
    assert tried == 300 and harmless < tried // 10
