"""The harness cannot lose, misfile or invent a result (issue 20, items 2, 3 and 5): a folder belongs to one
run, names never become paths, records are bound to their unit and checked on read, writes are durable,
checkpoints are bound to their preparation, failed cells and preparations are not forgotten on resume,
and a killed driver leaves no process behind. Each test reproduces one finding of the issue."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from mandril.bench import RunStore, run_suite, suite_from_dict, units_of, write_report
from mandril.bench.cells import preparations_of
from mandril.cli import main
from mandril.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mandril.core.config import load_toml
from run_records import comparable, toml_text

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "benchmarks" / "suites" / "smoke.toml"


def mini_data(**changes) -> dict:
    """A small suite: one family, a prepared method (MandRIL) and two single-task ones: 6 units, 18 cells."""
    data = load_toml(SMOKE)
    data.update({"name": "integrity", "methods": ["mandril", "maxent_tabular", "zero_reward"], "n_demos": [1, 2], "cells": {}})
    data["families"] = {"bandit": data["families"]["bandit"]}
    data["settings"] = {m: data["settings"][m] for m in ("mandril", "maxent_tabular")}
    for key, value in changes.items():
        data[key] = value
    return data






@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("integrity") / "run"
    summary = run_suite(suite_from_dict(mini_data()), out, progress=False)
    assert summary.failed == 0 and summary.done_now == summary.cells == 18
    return out


@pytest.fixture(scope="module")
def other_run(tmp_path_factory):
    """The same suite but MandRIL trained 4 iterations instead of 3: another configuration, another preparation."""
    data = mini_data()
    data["settings"]["mandril"] = {**data["settings"]["mandril"], "iterations": 4}
    out = tmp_path_factory.mktemp("integrity") / "other"
    run_suite(suite_from_dict(data), out, progress=False)
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(run, target)
    return target


def the_preparation(run: Path):
    store = RunStore(run)
    return store, preparations_of(units_of(store.suite()))[0]


# --- names -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["../../escaped", "a/b", ".hidden", "x" * 65, "a b"])
def test_a_family_name_that_is_a_path_is_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, family):
    data = mini_data()
    data["families"] = {family: data["families"]["bandit"]}
    suite = tmp_path / "s.toml"
    suite.write_text(toml_text(data))
    out = tmp_path / "deep" / "out"
    assert main(["bench", "run", str(suite), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[families] key" in err[0] and "not a valid name" in err[0], err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["s.toml"]  # nothing, anywhere (not in out's parents either)


@pytest.mark.parametrize("where", ["name", "methods", "settings", "cells"])
def test_suite_and_method_names_are_checked_too(where):
    data = mini_data()
    if where == "name":
        data["name"] = "../up"
    elif where == "methods":
        data["methods"] = ["mandril", "../x"]
    else:
        data[where] = {"a/b": {}}
    with pytest.raises(ValueError, match="not a valid name"):
        suite_from_dict(data)


# --- one folder, one run ----------------------------------------------------------------------------
@pytest.mark.parametrize("same", [False, True], ids=["two suites", "one suite twice"])
def test_two_runs_racing_to_claim_one_new_folder_one_is_refused(tmp_path, same):
    suites = [suite_from_dict(mini_data(name="first")), suite_from_dict(mini_data(name="first" if same else "second"))]
    for trial in range(6):
        out = tmp_path / f"out{trial}"
        barrier = threading.Barrier(2)
        outcomes: list = [None, None]

        def claim(i: int) -> None:
            store = RunStore(out)
            barrier.wait()
            try:
                store.open(suites[i], resume=False)
                outcomes[i] = "claimed"
            except ValueError as error:
                outcomes[i] = str(error)

        threads = [threading.Thread(target=claim, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(o == "claimed" for o in outcomes) == [False, True], outcomes
        loser = next(o for o in outcomes if o != "claimed")
        assert str(out) in loser and ("another run claimed" in loser or "already holds" in loser or "another suite" in loser)
        saved = json.loads((out / "suite.json").read_text())
        assert saved["name"] == suites[outcomes.index("claimed")].name


def test_a_second_run_on_a_folder_in_use_is_refused_and_the_lock_goes_with_the_run(base_run, tmp_path):
    out = copy_of(base_run, tmp_path)
    suite = RunStore(out).suite()
    first, second = RunStore(out), RunStore(out)
    first.open(suite, resume=True)
    with pytest.raises(ValueError, match="another run is working in this directory right now"):
        second.open(suite, resume=True)
    first.close()
    second.open(suite, resume=True)  # released: a finished (or killed) run does not block the next
    second.close()


def test_the_exclusive_atomic_write_has_one_winner_and_a_whole_file(tmp_path):
    from mandril.core.io import atomic_write_text

    path = tmp_path / "claim.json"
    atomic_write_text(path, "first\n", exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write_text(path, "second\n", exclusive=True)
    assert path.read_text() == "first\n" and sorted(p.name for p in tmp_path.iterdir()) == ["claim.json"]


# --- durable writes -----------------------------------------------------------------------------------
def test_every_atomic_writer_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch, base_run):
    from mandril.core import io as core_io

    events: list[str] = []
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

    def fsync(fd: int) -> None:
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b))[1])
    monkeypatch.setattr(os, "link", lambda a, b: (events.append("rename"), real_link(a, b))[1])
    store = RunStore(base_run)
    unit = units_of(store.suite())[0]
    writers = {
        "text": lambda: core_io.atomic_write_text(tmp_path / "a.txt", "x"),
        "json": lambda: core_io.write_json(tmp_path / "a.json", {"a": 1}),
        "csv": lambda: core_io.write_csv(tmp_path / "a.csv", [{"a": 1}]),
        "exclusive": lambda: core_io.write_json(tmp_path / "b.json", {"a": 1}, exclusive=True),
        "checkpoint": lambda: save_checkpoint(tmp_path / "c.pt", "k", {"w": torch.zeros(2)}),
        "records": lambda: RunStore(copy_of(base_run, tmp_path)).write_unit(unit, []),
        "dataset": lambda: __import__("mandril_envs.atomic", fromlist=["atomic_write"]).atomic_write(tmp_path / "d.npz", lambda s: s.write(b"x")),
    }
    for name, write in writers.items():
        events.clear()
        write()
        assert "rename" in events, name
        at = events.index("rename")
        assert "fsync file" in events[:at] and "fsync folder" in events[at:], (name, events)


# --- records bound to their unit ----------------------------------------------------------------------
def test_a_zero_length_unit_file_is_not_done_resume_redoes_it_and_says_so(base_run, tmp_path, capsys):
    out = copy_of(base_run, tmp_path)
    store = RunStore(out)
    unit = units_of(store.suite())[0]
    store.unit_path(unit).write_bytes(b"")  # what a power cut after an unsynced rename leaves
    assert main(["bench", "status", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"{store.unit_path(unit)}: empty" in captured.err and "incomplete: 3 of 18 cells missing" in captured.out
    write_report(out)
    assert "**incomplete**: 3 cells missing" in (out / "report.md").read_text()
    capsys.readouterr()
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(toml_text(mini_data()))
    assert main(["bench", "run", str(suite_file), "--out", str(out), "--resume", "--quiet", "--no-report"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"redoing unit {unit.id}: {store.unit_path(unit)}: empty (what a power cut after an unsynced write leaves, or a truncated copy)"]
    assert comparable(out) == comparable(base_run)


def test_a_record_file_of_another_suite_or_configuration_is_not_used(base_run, other_run, tmp_path, capsys):
    out = copy_of(base_run, tmp_path)
    store, other = RunStore(out), RunStore(other_run)
    mine = {u.id: u for u in units_of(store.suite())}
    theirs = [u for u in units_of(other.suite()) if u.method == "maxent_tabular"][0]
    same_unit = mine[theirs.id]  # maxent_tabular's settings did not change: same unit id, another suite
    shutil.copy(other.unit_path(theirs), store.unit_path(same_unit))
    scan = store.scan()
    assert same_unit.id in scan.refused and "records of another suite" in scan.refused[same_unit.id]
    assert len(scan.records) == 15 and scan.missing == 3
    result = write_report(out)
    assert result["missing"] == 3 and any("records of another suite" in line for line in result["problems"])


def test_a_copied_unit_file_is_counted_once_and_named(base_run, tmp_path, capsys):
    out = copy_of(base_run, tmp_path)
    store = RunStore(out)
    units = units_of(store.suite())
    shutil.copy(store.unit_path(units[0]), out / "records" / "copy.jsonl")  # under a name of no unit
    shutil.copy(store.unit_path(units[0]), store.unit_path(units[1]))  # over another unit's file
    (out / "records" / "a").mkdir()
    shutil.copy(store.unit_path(units[2]), out / "records" / "a" / "b.jsonl")  # where a family "a/b" put it before
    scan = store.scan()
    assert len(scan.records) == 15 and scan.missing == 3 and units[1].id in scan.refused
    assert "a copied or renamed file" in scan.refused[units[1].id]
    assert sorted(name for name, _ in scan.ignored) == ["a", "copy.jsonl"]
    assert main(["bench", "report", str(out)]) == 0
    captured = capsys.readouterr()
    assert "copy.jsonl: ignored" in captured.err and "incomplete: 3 cells missing" in captured.out
    text = (out / "report.md").read_text()
    assert "Cells: 15 of 18 done (**incomplete**: 3 cells missing)" in text and "records/copy.jsonl" in text


@pytest.mark.parametrize("damage", ["truncated", "binary", "not records"])
def test_a_truncated_or_binary_record_file_names_the_file_never_a_traceback(base_run, tmp_path, capsys, damage):
    out = copy_of(base_run, tmp_path)
    store = RunStore(out)
    unit = units_of(store.suite())[2]
    path = store.unit_path(unit)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "binary": bytes(range(256)) * 4, "not records": b"[1, 2]\n"}[damage])
    assert main(["bench", "status", str(out)]) == 0
    assert main(["bench", "report", str(out)]) == 0
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err


def test_records_without_a_suite_digest_old_format_are_refused_clearly(base_run, tmp_path, capsys):
    out = copy_of(base_run, tmp_path)
    for path in (out / "records").glob("*.jsonl"):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in ("suite_digest", "unit")}) + "\n" for r in lines))
    assert main(["bench", "report", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no valid records" in err[0] and "written by an older mandril" in err[0], err


# --- checkpoints bound to their preparation ---------------------------------------------------------
def test_a_prepared_file_of_another_configuration_is_refused_and_prepared_again(base_run, other_run, tmp_path, capsys):
    out = copy_of(base_run, tmp_path)
    store, preparation = the_preparation(out)
    other_store, other_preparation = the_preparation(other_run)
    assert other_preparation.id != preparation.id
    shutil.copy(other_store.prepared_path(other_preparation), store.prepared_path(preparation))
    for unit in units_of(store.suite()):
        if unit.method == "mandril":
            store.unit_path(unit).unlink()
    state = store.read_preparation(preparation)
    assert state.status == "refused" and f"belongs to preparation {other_preparation.id!r}" in state.reason
    summary = run_suite(store.suite(), out, resume=True, progress=False)
    assert any(f"preparing {preparation.id} again" in note for note in summary.notes)
    assert comparable(out) == comparable(base_run)


@pytest.mark.parametrize("training", ["damaged", "foreign"])
def test_a_training_checkpoint_that_cannot_be_continued_is_discarded_and_trained_again(base_run, other_run, tmp_path, training):
    out = copy_of(base_run, tmp_path)
    store, preparation = the_preparation(out)
    path = store.training_checkpoint(preparation)
    if training == "damaged":
        save_checkpoint(path, "mandril.MandRIL", {"a": torch.zeros(3)}, preparation.owner)
        path.write_bytes(path.read_bytes()[:-40])  # a torn write (no fsync) of the last checkpoint
    else:  # the trainer state of another preparation (4 iterations: it would count as finished)
        other_store, other_preparation = the_preparation(other_run)
        state = other_store.read_preparation(other_preparation).state
        save_checkpoint(path, "mandril.MandRIL", state["trainer"], other_preparation.owner)
    store.discard_preparation(preparation)
    for unit in units_of(store.suite()):
        if unit.method == "mandril":
            store.unit_path(unit).unlink()
    summary = run_suite(store.suite(), out, resume=True, progress=False)
    assert summary.failed == 0
    assert any(note.startswith(f"discarded the training checkpoint of {preparation.id}") for note in summary.notes), summary.notes
    assert comparable(out) == comparable(base_run) and not path.exists()


def test_a_failed_preparation_is_retried_on_resume_and_every_failed_cell_sets_the_exit_status(base_run, tmp_path, capsys, monkeypatch):
    from mandril.bench import work

    suite_file = tmp_path / "s.toml"
    suite_file.write_text(toml_text(mini_data()))
    out = tmp_path / "run"
    real_pool = work.training_pool

    def broken_pool(suite, family):
        raise ValueError("the training pool is unreachable")

    monkeypatch.setattr(work, "training_pool", broken_pool)
    assert main(["bench", "run", str(suite_file), "--out", str(out), "--quiet", "--no-report"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("6 cells failed (6 in this run): see 'mandril bench status")
    monkeypatch.setattr(work, "training_pool", real_pool)
    assert main(["bench", "run", str(suite_file), "--out", str(out), "--resume", "--quiet", "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "retrying the preparation mandril--bandit" in err and "the training pool is unreachable" in err
    assert comparable(out) == comparable(base_run)


def test_resume_reports_the_failed_cells_of_earlier_runs_and_exits_1(tmp_path, capsys):
    data = mini_data(methods=["maxent_tabular", "zero_reward"])
    data["settings"] = {"maxent_tabular": {"l2": 0.0, "likelihood": "p0", "max_steps": 200, "lr": 1e6, "optimizer": "adam"}}
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(toml_text(data))
    out = tmp_path / "run"
    first = main(["bench", "run", str(suite_file), "--out", str(out), "--quiet", "--no-report"])
    failed = sum(1 for r in RunStore(out).records() if r["error"])
    capsys.readouterr()
    if not failed:
        pytest.skip("these settings did not make a cell fail")
    assert first == 1
    assert main(["bench", "run", str(suite_file), "--out", str(out), "--resume", "--quiet", "--no-report"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"{failed} cells failed (0 in this run): see 'mandril bench status {out}' and the 'error' of their records in {out / 'records'}"]


def test_non_finite_or_absurd_weights_are_refused_naming_the_tensor(tmp_path):
    for value, word in ((float("nan"), "non-finite"), (float("inf"), "non-finite"), (1e30, "absurd")):
        path = save_checkpoint(tmp_path / "c.pt", "k", {"trainer": {"model": {"layer.weight": torch.tensor([0.5, value])}}})
        with pytest.raises(CheckpointError, match=rf"tensor payload\.trainer\.model\.layer\.weight holds .*{word}"):
            load_checkpoint(path, "k")


class _Pickled:
    pass


@pytest.mark.parametrize("where", ["file", "payload"])
def test_refusals_never_suggest_turning_weights_only_off(tmp_path, where):
    import hashlib
    import io

    path = tmp_path / "c.pt"
    if where == "file":
        torch.save({"format": "mandril.checkpoint", "obj": _Pickled()}, path)
    else:
        inner = io.BytesIO()
        torch.save({"model": _Pickled()}, inner)
        body = inner.getvalue()
        torch.save({"format": "mandril.checkpoint", "version": 1, "kind": "k", "sha256": hashlib.sha256(body).hexdigest(), "payload": body}, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, "k")
    message = str(caught.value)
    assert "weights_only" not in message and "False" not in message and "trust" not in message and "\n" not in message
    assert "_Pickled" in message and str(path) in message
    with pytest.raises(TypeError) as caught:
        save_checkpoint(tmp_path / "d.pt", "k", {"x": _Pickled()})
    assert "set to `False`" not in str(caught.value) and "\n" not in str(caught.value)


# --- clean processes --------------------------------------------------------------------------------
def _descendants(pid: int) -> set[int]:
    found, stack = set(), [pid]
    while stack:
        parent = stack.pop()
        for task in Path(f"/proc/{parent}/task").glob("*") if Path(f"/proc/{parent}/task").is_dir() else []:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            for child in children:
                if child not in found:
                    found.add(child)
                    stack.append(child)
    return found


def _state(pid: int) -> str:
    """The process's state letter from /proc (``R``, ``S``, ``T`` stopped, ``Z`` zombie...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    try:
        return _state(pid) != "Z"
    except OSError:
        return False


_STOPPED_RUN = """
import os, signal, sys
import mandril.bench.store as store
from mandril.cli import main

save = store.save_checkpoint

def save_then_stop(*args, **kwargs):
    result = save(*args, **kwargs)
    print(os.getpid(), flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)  # the test looks at the process tree, then kills this driver
    return result

store.save_checkpoint = save_then_stop
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the processes through Linux /proc")
def test_a_driver_killed_with_sigkill_leaves_no_worker_or_resource_tracker_behind(tmp_path):
    out = tmp_path / "killed"
    # the driver stops itself right after saving the first prepared state (its pool is up and busy: an exact point, no race)
    command = [sys.executable, "-c", _STOPPED_RUN, "bench", "run", str(SMOKE), "--out", str(out), "--quiet", "--no-report", "--workers", "2"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    children: set[int] = set()
    try:
        assert process.stdout.readline().strip() == str(process.pid), "the driver did not reach its first prepared state"
        deadline = time.time() + 30
        while time.time() < deadline and _state(process.pid) != "T":
            time.sleep(0.01)
        assert _state(process.pid) == "T"
        children = _descendants(process.pid)
        workers = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(workers) == 2, children  # and, among the children, the resource tracker where one runs
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(c) for c in children):
            time.sleep(0.2)
        survivors = [c for c in children if _alive(c)]
        assert not survivors, [Path(f"/proc/{c}/cmdline").read_bytes()[:200] for c in survivors]
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
        for child in children:
            if _alive(child):
                os.kill(child, signal.SIGKILL)


# --- fuzz: hostile record and prepared folders ----------------------------------------------------
def _records_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _edit_line(lines: list[str], rng, change) -> str:
    index = int(rng.integers(len(lines)))
    record = json.loads(lines[index])
    change(record)
    lines[index] = json.dumps(record, sort_keys=True)
    return "\n".join(lines) + "\n"


def _unit_mutations(foreign_file: Path):
    """``name -> mutate(path, rng, other)``: each leaves a unit file that must not count (``other``: another unit's file)."""

    def text(path: Path, rng, content: str | bytes) -> None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    def replace(path: Path, thing: str, other_file: Path) -> None:
        path.unlink()
        if thing == "folder":
            path.mkdir()
        elif thing == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to(other_file)

    def lines(path: Path) -> list[str]:
        return _records_of(path)

    return {
        "empty": lambda p, rng: text(p, rng, b""),
        "truncated": lambda p, rng: text(p, rng, p.read_bytes()[: int(rng.integers(1, p.stat().st_size - 1))]),
        "binary": lambda p, rng: text(p, rng, rng.integers(0, 256, int(rng.integers(1, 4000))).astype("uint8").tobytes()),
        "bad utf-8": lambda p, rng: text(p, rng, p.read_bytes()[:50] + b"\xff\xfe" + p.read_bytes()[52:]),
        "line dropped": lambda p, rng: text(p, rng, "\n".join(lines(p)[:-1]) + "\n"),
        "line repeated": lambda p, rng: text(p, rng, "\n".join(lines(p) + lines(p)[:1]) + "\n"),
        "lines swapped": lambda p, rng: text(p, rng, "\n".join(lines(p)[::-1]) + "\n"),
        "another suite's digest": lambda p, rng: text(p, rng, _edit_line(lines(p), rng, lambda r: r.update(suite_digest="0" * 16))),
        "no digest (old format)": lambda p, rng: text(p, rng, "".join(json.dumps({k: v for k, v in json.loads(l).items() if k != "suite_digest"}) + "\n" for l in lines(p))),
        "another unit": lambda p, rng: text(p, rng, _edit_line(lines(p), rng, lambda r: r.update(unit="bandit--test--x--0--s0--n1"))),
        "another config": lambda p, rng: text(p, rng, _edit_line(lines(p), rng, lambda r: r.update(config_hash="abcdef0123"))),
        "another seed": lambda p, rng: text(p, rng, _edit_line(lines(p), rng, lambda r: r.update(seed=r["seed"] + 1))),
        "another task": lambda p, rng: text(p, rng, _edit_line(lines(p), rng, lambda r: r.update(task=r["task"] + 7))),
        "score not a number": lambda p, rng: text(p, rng, _edit_line(lines(p), rng, lambda r: r.update(normalized_evd="0.0"))),
        "score missing": lambda p, rng: text(p, rng, _edit_line(lines(p), rng, lambda r: r.update(normalized_evd=None, error=None))),
        "error not text": lambda p, rng: text(p, rng, _edit_line(lines(p), rng, lambda r: r.update(error=1))),
        "not an object": lambda p, rng: text(p, rng, "\n".join(lines(p)[:-1] + [json.dumps([1, 2])]) + "\n"),
        "deeply nested": lambda p, rng: text(p, rng, "[" * 200000 + "]" * 200000 + "\n"),
        "another unit's file": lambda p, rng, other: shutil.copy(other, p),
        "another suite's file": lambda p, rng, other: shutil.copy(foreign_file, p),
        "a folder": lambda p, rng, other: replace(p, "folder", other),
        "a fifo": lambda p, rng, other: replace(p, "fifo", other),
        "a symlink": lambda p, rng, other: replace(p, "symlink", other),
    }


def test_fuzz_hostile_record_and_prepared_folders_are_redone_or_refused_loudly_never_miscounted(base_run, other_run, tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(20)
    store = RunStore(base_run)
    units = units_of(store.suite())
    baseline = {u.id: _records_of(store.unit_path(u)) for u in units}
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    foreign_unit = next(u for u in units_of(RunStore(other_run).suite()) if u.method == "zero_reward")
    foreign_file = scratch / "foreign.jsonl"
    shutil.copy(RunStore(other_run).unit_path(foreign_unit), foreign_file)
    mutations = _unit_mutations(foreign_file)
    tried = redone = 0
    for round_ in range(48):
        out = tmp_path / f"r{round_}"
        shutil.copytree(base_run, out, symlinks=True)
        run_store = RunStore(out)
        chosen = rng.choice(len(units), size=int(rng.integers(1, 4)), replace=False)
        names = list(mutations)
        for index in chosen:
            name = names[(round_ + int(index)) % len(names)] if round_ < len(names) else names[int(rng.integers(len(names)))]
            other = store.unit_path(units[(int(index) + 1) % len(units)])
            mutation = mutations[name]
            mutation(run_store.unit_path(units[index]), rng, other) if mutation.__code__.co_argcount == 3 else mutation(run_store.unit_path(units[index]), rng)
            tried += 1
        extras = []
        if round_ % 3 == 0:  # files that belong to no unit: a copy, a note, a folder; and a writer's temporary
            shutil.copy(store.unit_path(units[int(rng.integers(len(units)))]), out / "records" / f"copy-{round_}.jsonl")
            (out / "records" / "notes.txt").write_text("hello")
            (out / "records" / "a").mkdir()
            (out / "records" / ".x.jsonl.1.tmp").write_text("partial")
            extras = ["a", f"copy-{round_}.jsonl", "notes.txt"]
        broken = {units[i].id for i in chosen}
        scan = run_store.scan()
        assert set(scan.done) == {u.id for u in units} - broken, (round_, scan.refused)
        assert set(scan.refused) == broken and sorted(n for n, _ in scan.ignored) == extras
        assert scan.missing == sum(u.n_tasks for u in units if u.id in broken)
        assert sorted(json.dumps(r, sort_keys=True) for r in scan.records) == sorted(
            json.dumps(json.loads(line), sort_keys=True) for u in units if u.id not in broken for line in baseline[u.id])
        if round_ % 16 == 0:  # the CLI names each file, and resume redoes exactly the broken units
            assert main(["bench", "status", str(out)]) == 0
            err = capsys.readouterr().err
            assert "Traceback" not in err and all(str(run_store.unit_path(u)) in err for u in units if u.id in broken)
            folders = [run_store.unit_path(u) for u in units if u.id in broken and run_store.unit_path(u).is_dir() and not run_store.unit_path(u).is_symlink()]
            if folders:  # the harness does not remove what it did not write: refused before any work, naming it
                with pytest.raises(ValueError, match="is a folder where the harness writes a file"):
                    run_suite(run_store.suite(), out, resume=True, progress=False)
                for folder in folders:
                    folder.rmdir()
            summary = run_suite(run_store.suite(), out, resume=True, progress=False)
            assert summary.done_now == scan.missing and summary.failed == 0
            assert len([n for n in summary.notes if n.startswith("redoing unit")]) == len(broken) - len(folders)  # a removed folder is plainly missing
            after = run_store.scan()
            assert after.missing == 0 and not after.refused
            redone += len(broken)
        shutil.rmtree(out)
    # prepared folders
    out = tmp_path / "prepared"
    shutil.copytree(base_run, out)
    prep_store, preparation = the_preparation(out)
    other_store, other_preparation = the_preparation(other_run)
    good = prep_store.prepared_path(preparation).read_bytes()
    info = prep_store._prepared_info(preparation)
    good_info = info.read_bytes()
    state = prep_store.read_preparation(preparation).state

    def nan_state(value):
        def apply(path: Path) -> None:
            broken_state = copy.deepcopy(state)
            name = next(iter(broken_state["trainer"]["model"]))
            broken_state["trainer"]["model"][name] = broken_state["trainer"]["model"][name].clone().fill_(value)
            save_checkpoint(path, "mandril.bench.prepared", broken_state, preparation.owner)
        return apply

    prepared_mutations = {
        "empty": lambda p: p.write_bytes(b""),
        "truncated": lambda p: p.write_bytes(good[: len(good) // 3]),
        "binary": lambda p: p.write_bytes(bytes(rng.integers(0, 256, 2000).astype("uint8"))),
        "another preparation's": lambda p: shutil.copy(other_store.prepared_path(other_preparation), p),
        "no owner (older mandril)": lambda p: save_checkpoint(p, "mandril.bench.prepared", state),
        "another kind": lambda p: save_checkpoint(p, "mandril.MandRIL", state, preparation.owner),
        "NaN weights": nan_state(float("nan")),
        "infinite weights": nan_state(float("inf")),
        "absurd weights": nan_state(1e30),
        "missing": lambda p: p.unlink(),
        "a fifo": lambda p: (p.unlink(), os.mkfifo(p)),
    }
    info_mutations = {
        "info empty": b"", "info binary": b"\x00\xff" * 10, "info of another id": json.dumps({"id": "x", "seconds": 1.0, "error": None}).encode(),
        "info not an object": b"[1]", "info seconds not a number": json.dumps({"id": preparation.id, "seconds": "x", "error": None}).encode(),
    }
    refused = harmless = 0
    flips = {f"bit flip {i}": int(i) for i in rng.integers(0, len(good), 24)}
    for name in [*prepared_mutations, *info_mutations, *flips]:
        path = prep_store.prepared_path(preparation)
        path.unlink(missing_ok=True)
        path.write_bytes(good)
        info.write_bytes(good_info)
        if name in prepared_mutations:
            prepared_mutations[name](path)
        elif name in info_mutations:
            info.write_bytes(info_mutations[name])
        else:
            data = bytearray(good)
            data[flips[name]] ^= 1 << int(rng.integers(8))
            path.write_bytes(bytes(data))
        known = prep_store.read_preparation(preparation)
        tried += 1
        if known.status == "done":  # a flip torch and the checksum cannot see (zip padding): the state must be intact
            assert name.startswith("bit flip"), name
            assert all(torch.equal(a, b) for a, b in zip(known.state["trainer"]["model"].values(), state["trainer"]["model"].values()))
            harmless += 1
            continue
        assert known.status == "refused", (name, known)
        assert (str(path) in known.reason or str(info) in known.reason) and "weights_only" not in known.reason, (name, known.reason)
        if "weights" in name:
            assert "tensor payload.trainer.model." in known.reason
        refused += 1
    # a damaged prepared state and a damaged training checkpoint together: resume prepares again and says so
    prepared_mutations["truncated"](prep_store.prepared_path(preparation))
    prep_store.training_checkpoint(preparation).write_bytes(b"\x00" * 100)
    for unit in units:
        if unit.method == "mandril":
            prep_store.unit_path(unit).unlink()
    summary = run_suite(prep_store.suite(), out, resume=True, progress=False)
    assert any(n.startswith(f"preparing {preparation.id} again") for n in summary.notes)
    assert any(n.startswith(f"discarded the training checkpoint of {preparation.id}") for n in summary.notes)
    assert comparable(out) == comparable(base_run)
    print(f"\nfuzz bench folders: {tried} hostile files tried ({48} record folders, {refused + harmless} prepared-folder cases); "
          f"every broken unit refused and named, {redone} redone by resume to the exact records; {refused} prepared files refused "
          f"naming the file, {harmless} bit flips harmless (state loaded unchanged)")  # shown with -s


def test_a_refused_ray_address_leaves_no_suite_json_behind(tmp_path, capsys):
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(toml_text(mini_data()))
    out = tmp_path / "out"
    assert main(["bench", "run", str(suite_file), "--out", str(out), "--ray-address", "127.0.0.1:1", "--quiet"]) == 2
    assert "--ray-address needs --backend ray" in capsys.readouterr().err and not out.exists()
