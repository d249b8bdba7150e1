"""DemoDataset.load names the file and the problem in one line, whatever is wrong with the file."""

import io
import json
import zipfile

import numpy as np
import pytest

from mandril_envs import dataset as dataset_module
from mandril_envs.dataset import DatasetError, DemoDataset, collect


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    path = collect("mandril_envs/Bandit-K5-v0", 2, 2, split="test").save(tmp_path_factory.mktemp("f") / "d.npz")
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


def _meta(arrays):
    return json.loads(str(arrays["meta"]))


def _write(path, arrays, **changes):
    arrays = {**arrays, **changes}
    np.savez(path, **arrays)
    return path


def _with_meta(path, arrays, edit):
    meta = _meta(arrays)
    edit(meta)
    return _write(path, arrays, meta=np.array(json.dumps(meta)))


def _refused(path, message):
    with pytest.raises(DatasetError) as caught:
        DemoDataset.load(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and "\n" not in text, text
    assert message in text, text


def test_a_text_file_named_npz_is_not_a_dataset_file(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_bytes(b"hello world\n")  # 12 bytes; numpy alone calls this "pickled data"
    _refused(path, "not a dataset file: not a zip (.npz) archive (it starts with b'hello world\\n')")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    _refused(empty, "not a dataset file: not a zip (.npz) archive (it is empty)")


def test_a_truncated_archive(tmp_path, arrays):
    data = _write(tmp_path / "d.npz", arrays).read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) - 30])
    _refused(tmp_path / "cut.npz", "not a readable dataset file: the zip archive is damaged or truncated (BadZipFile: ")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: {"meta": np.array("{not json")}, "meta is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (lambda m: {"meta": np.array("[" * 100_000)}, "meta is not valid JSON: nested too deeply"),
        (lambda m: {"meta": np.array("[1, 2]")}, "meta must be a JSON object, got list"),
        (lambda m: {"meta": np.array([1.0, 2.0])}, "array 'meta' must hold a unicode string (0-d), got dtype float64 shape (2,)"),
        (lambda m: {"meta": np.array(["a", "b"])}, "array 'meta' must hold a unicode string (0-d), got dtype <U1 shape (2,)"),
        (lambda m: {"states": m["states"].astype(np.float64)}, "array 'states' must hold integers, got dtype float64 shape (2, 2, 11)"),
        (lambda m: {"rewards": m["rewards"].astype(np.int64)}, "array 'rewards' must hold floats, got dtype int64"),
        (lambda m: {"actions": m["actions"].astype(bool)}, "array 'actions' must hold integers, got dtype bool"),
        (lambda m: {"extra": np.zeros(2)}, "unexpected arrays ['extra'] (a dataset file holds exactly ['actions', 'meta', 'rewards', 'states'])"),
        (lambda m: {"states": m["states"][:, :0], "actions": m["actions"][:, :0], "rewards": m["rewards"][:, :0]}, "the file holds no demos (M = 0)"),
    ],
)
def test_array_problems(tmp_path, arrays, edit, message):
    _refused(_write(tmp_path / "d.npz", arrays, **edit(arrays)), message)


def test_pickled_objects_are_named(tmp_path, arrays):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    path = _write(tmp_path / "d.npz", arrays)
    with zipfile.ZipFile(path, "a") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("rewards.npy", buffer.getvalue())  # a second, pickled rewards member
    _refused(path, "the archive holds ['rewards.npy'] more than once")
    clean = {k: v for k, v in arrays.items() if k != "rewards"}
    np.savez(tmp_path / "p.npz", **clean)
    with zipfile.ZipFile(tmp_path / "p.npz", "a") as archive:
        archive.writestr("rewards.npy", buffer.getvalue())
    _refused(tmp_path / "p.npz", "array 'rewards' holds Python objects (pickled data), which a dataset never does; it must hold floats")


def test_a_declared_shape_larger_than_the_data(tmp_path, arrays):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6, 10)})
    buffer.write(b"\0" * 64)
    clean = {k: v for k, v in arrays.items() if k != "rewards"}
    np.savez(tmp_path / "d.npz", **clean)
    with zipfile.ZipFile(tmp_path / "d.npz", "a") as archive:
        archive.writestr("rewards.npy", buffer.getvalue())
    _refused(tmp_path / "d.npz", "array 'rewards' declares shape (1000000, 1000000, 10) (80000000000000 bytes) but holds 64 bytes")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(horizon="10"), "meta['horizon'] must be an int >= 1, got str '10'"),
        (lambda m: m.update(horizon=0), "meta['horizon'] must be an int >= 1, got int 0"),
        (lambda m: m.update(horizon=True), "meta['horizon'] must be an int >= 1, got bool True"),
        (lambda m: m.update(task_seed=-1), "meta['task_seed'] must be an int >= 0, got int -1"),
        (lambda m: m.update(state_dim=2.5), "meta['state_dim'] must be an int >= 1, got float 2.5"),
        (lambda m: m.update(tasks={"a": 1}), "meta['tasks'] must be a non-empty list of tasks, got dict"),
        (lambda m: m.update(tasks=[]), "meta['tasks'] is empty"),
        (lambda m: m.update(expert=[1]), "meta['expert'] must be an object with keys ['epsilon', 'policy', 'temperature'], got list [1]"),
        (lambda m: m["expert"].pop("policy"), "meta['expert'] must have exactly the keys ['epsilon', 'policy', 'temperature'], got ['epsilon', 'temperature']"),
        (lambda m: m["expert"].update(temperature=-1), "meta['expert'] is refused: temperature must be > 0.0, got -1.0"),
        (lambda m: m["expert"].update(policy=3), "meta['expert'] is refused: policy must be one of"),
        (lambda m: m.pop("demo_seed"), "meta is missing ['demo_seed']"),
        (lambda m: m.update(note="hi"), "meta has unknown keys ['note']"),
        (lambda m: m.update(version="1"), "format version '1' is not supported (this reader knows 1)"),
        (lambda m: m.update(env_id=7), "meta['env_id'] must be a string, got int 7"),
        (lambda m: m["tasks"][1].pop("seed"), "meta['tasks'][1] is not a task: task is missing keys ['seed']"),
        (lambda m: m["tasks"][0].update(index="0"), "meta['tasks'][0] is not a task: task['index'] must be int, got str '0'"),
        (lambda m: m["tasks"].__setitem__(1, 5), "meta['tasks'][1] is not a task: task must be a Task or a mapping, got int"),
        (lambda m: m["tasks"][1]["config"].update(n_arms=6), "task 1's config differs from task 0's in ['n_arms']: a dataset holds tasks of one family config"),
        (lambda m: [t["config"].update(n_arms=-1) for t in m["tasks"]], "task 0 (test split) is refused: n_arms must be >= 1, got -1"),
        (lambda m: [t["config"].update(size=4) for t in m["tasks"]], "task 0 (test split) is refused: BanditEnv.__init__() got an unexpected keyword argument 'size'"),
        (lambda m: m["tasks"][1]["params"].update(means=[2.0] * 5), "task 1 (test split) is refused: Bernoulli arm means must lie in [0, 1]"),
        (lambda m: m.update(state_dim=3), "meta says (S, A, H) = (3, 5, 10), but its tasks' model has (1, 5, 10)"),
    ],
)
def test_meta_problems_name_the_file_and_the_field(tmp_path, arrays, edit, message):
    _refused(_with_meta(tmp_path / "d.npz", arrays, edit), message)


def test_unreadable_files_raise_the_os_error(tmp_path, arrays, monkeypatch):
    path = _write(tmp_path / "d.npz", arrays)

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(dataset_module, "open", denied, raising=False)
    with pytest.raises(PermissionError, match="Permission denied"):
        DemoDataset.load(path)
    monkeypatch.undo()
    with pytest.raises(IsADirectoryError):
        DemoDataset.load(tmp_path)
    assert DemoDataset.load(path).n_tasks == 2
