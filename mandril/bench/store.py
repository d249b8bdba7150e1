"""A suite's output directory: what is done, written so that a run killed at any moment resumes exactly.

The files of an output directory ``DIR``::

    DIR/suite.json                    the suite (plain data) and its digest; a directory holds one suite,
                                      claimed by the run that creates this file (exclusively: of two runs
                                      started together on a new DIR, one is refused)
    DIR/.lock                         held (flock) by the run working in DIR: a second one is refused
    DIR/prepared/<id>.pt              a prepared method (one checkpoint format: weights_only, checksum,
                                      and the preparation's id and settings hash in its metadata: a file
                                      of another preparation is refused); ``<id>`` hashes what the
                                      preparation depends on, so a tuning sweep shares one prepared folder
    DIR/prepared/<id>.training.pt     its training checkpoint while it trains (a killed run continues it;
                                      bound to the preparation the same way; a damaged one is discarded)
    DIR/prepared/<id>.json            how long the preparation took, or why it failed (retried on resume)
    DIR/records/<unit id>.jsonl       one record per cell of a finished unit, written atomically
    DIR/records.jsonl.gz              a published folder's records (no records/ there; see mandril.bench.report.publish),
                                      checked unit by unit like the files of records/

File names come from the project (checked family and method names, seeds, hashes), never from free
text of a suite. Every file is written whole or not at all, durably (temporary file, fsync, rename,
fsync of the folder), so after a SIGKILL or a power cut a unit is either done or redone; units are
deterministic, so the resumed run ends with exactly the records of an uninterrupted one (timings aside).

Every record carries the suite's digest (``suite_digest``), its unit's id (``unit``) and the method's
config hash, and is checked on read (:meth:`RunStore.scan`): a unit file that is empty, truncated,
not text, of another suite or configuration, or holds another unit's records does not count (resume
redoes the unit and says so); a file that belongs to no unit of the suite is ignored and named. So
each cell is counted once, and a missing cell is missing, never silently.
"""

from __future__ import annotations

import json
import math
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from mandril.bench.cells import Preparation, Unit, check_file_stem, units_of
from mandril.bench.suite import VALIDATION_SPLIT, VALIDATION_START, Suite, suite_from_dict
from mandril.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mandril.core.io import atomic_write_text, write_json

__all__ = ["RunStore", "RecordScan", "PreparedState", "RecordError", "parse_unit_records", "SUITE_FILE", "PREPARATION_FAILED", "MAX_RECORD_FILE"]

#: The file of an output directory that holds its suite (plain data) and digest.
SUITE_FILE = "suite.json"
LOCK_FILE = ".lock"
_PREPARED_KIND = "mandril.bench.prepared"

#: How the records of a unit whose preparation failed begin their ``error``: such units are redone
#: (with the preparation) on resume, since they hold no result of their own.
PREPARATION_FAILED = "preparation failed: "

#: The largest records, suite or preparation info file read; bigger ones are refused, named.
MAX_RECORD_FILE = 256 * 2**20

#: A published folder's records (see :func:`mandril.bench.report.publish`), and the most bytes they may
#: decompress to (a small file must not make the reader allocate without bound).
PUBLISHED_RECORDS = "records.jsonl.gz"
MAX_PUBLISHED_BYTES = 4 * 2**30

#: Record keys that must match the unit the file is named for.
_UNIT_KEYS = ("family", "split", "method", "config_hash", "seed", "n_demos")
_NUMBER_KEYS = ("seconds", "evd", "normalized_evd", "optimal_return", "learned_return", "random_return", "demo_nll", "success",
                "policy_evd", "policy_normalized_evd")


class RecordError(ValueError):
    """A records or preparation file that cannot be used; the message says why (the caller names the file)."""


@dataclass
class RecordScan:
    """What a records folder holds for a suite's units (see :meth:`RunStore.scan`).

    Attributes:
        records: the valid records, each cell once (units in the suite's order, cells in task order).
        done: ``{unit id: its records}`` of every unit with a valid file.
        refused: ``{unit id: why}`` of units whose file exists but is not valid (they count as not done).
        ignored: ``(file name, why)`` of files in ``records/`` that belong to no unit of the suite.
        cells: cells of the suite (of the units scanned).
    """

    records: list[dict] = field(default_factory=list)
    done: dict[str, list[dict]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    cells: int = 0

    @property
    def missing(self) -> int:
        """Cells without a valid record."""
        return self.cells - len(self.records)

    @property
    def failed(self) -> list[dict]:
        """The valid records of cells that failed."""
        return [r for r in self.records if r.get("error")]

    def problems(self, root: Union[str, Path]) -> list[str]:
        """One line per refused unit file and ignored file, naming it (for status, report and resume)."""
        folder = Path(root) / "records"
        lines = [f"{folder / (unit + '.jsonl')}: {why}: its cells count as missing" for unit, why in self.refused.items()]
        return lines + [f"{folder / name}: ignored: {why}" for name, why in self.ignored]


@dataclass
class PreparedState:
    """A preparation's state in the folder: ``status`` is ``"missing"``, ``"done"`` (with ``state`` when
    loaded), ``"failed"`` (with ``error``) or ``"refused"`` (its files are damaged or foreign: ``reason``)."""

    status: str
    state: Optional[dict] = None
    error: Optional[str] = None
    seconds: float = 0.0
    reason: str = ""


def _read_small_file(path: Path) -> bytes:
    """The bytes of a regular file no bigger than :data:`MAX_RECORD_FILE` (a FIFO or a device would hang a read)."""
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise RecordError("not a regular file")
    if info.st_size > MAX_RECORD_FILE:
        raise RecordError(f"{info.st_size:,} bytes, more than the {MAX_RECORD_FILE:,} a file of the harness may have")
    return path.read_bytes()


def _expected_tasks(unit: Unit) -> list[int]:
    start = VALIDATION_START if unit.split == VALIDATION_SPLIT else 0
    return list(range(start, start + unit.n_tasks))


def _is_number(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return key == "success"
    return isinstance(value, (int, float))


def parse_unit_records(data: bytes, unit: Unit, digest: str) -> list[dict]:
    """The records of ``unit`` in a records file's bytes, checked (see the module docstring).

    Raises:
        RecordError: the file is empty, truncated, not UTF-8 JSON lines, of another suite, of another
            unit or configuration, or does not hold exactly the unit's cells, in task order.
    """
    if not data:
        raise RecordError("empty (what a power cut after an unsynced write leaves, or a truncated copy)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError("not UTF-8 text (binary content)") from None
    if not text.endswith("\n"):
        raise RecordError("truncated (its last line is not complete)")
    records = []
    for number, line in enumerate(text.split("\n")[:-1], 1):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as error:
            raise RecordError(f"line {number} is not a JSON record ({type(error).__name__}): damaged") from None
        if not isinstance(record, dict):
            raise RecordError(f"line {number} is not a record (a JSON object)")
        if "suite_digest" not in record:
            raise RecordError("its records carry no suite digest (written by an older mandril, or not by the harness; --resume redoes the unit)")
        if record["suite_digest"] != digest:
            raise RecordError(f"records of another suite (digest {str(record['suite_digest'])[:20]!r}; this suite's is {digest!r})")
        if record.get("unit") != unit.id:
            raise RecordError(f"records of unit {str(record.get('unit'))[:200]!r}, not of {unit.id!r} (a copied or renamed file)")
        for key in _UNIT_KEYS:
            if record.get(key) != getattr(unit, key):
                raise RecordError(f"line {number}: {key} {str(record.get(key))[:80]!r} is not the unit's {getattr(unit, key)!r} (another configuration)")
        for key in _NUMBER_KEYS:
            if record.get(key) is not None and not _is_number(record[key], key):
                raise RecordError(f"line {number}: {key} is {str(record[key])[:40]!r}, not a number")
        if record.get("error") is not None and not isinstance(record["error"], str):
            raise RecordError(f"line {number}: error is not text")
        if record.get("error") is None and not (_is_number(record.get("normalized_evd"), "") and math.isfinite(record["normalized_evd"])):
            raise RecordError(f"line {number}: a cell without an error has no finite normalized_evd")
        records.append(record)
    tasks = [record.get("task") for record in records]
    expected = _expected_tasks(unit)
    if tasks != expected:
        shown = f"{tasks[:6]}{'...' if len(tasks) > 6 else ''}"
        raise RecordError(f"holds tasks {shown}, not the unit's {len(expected)} tasks {expected[0]}..{expected[-1]} in order")
    return records


class RunStore:
    """The output directory of one suite (see the module docstring)."""

    def __init__(self, root: Union[str, Path], prepared_dir: Optional[Union[str, Path]] = None) -> None:
        self.root = Path(root)
        self.prepared_dir = Path(prepared_dir) if prepared_dir is not None else self.root / "prepared"
        self._digest: Optional[str] = None
        self._lock_handle: Any = None

    # --- the suite ------------------------------------------------------------------------------
    def open(self, suite: Suite, resume: bool) -> None:
        """Claim the directory for ``suite``; refuse one holding another suite, or results without ``resume``.

        ``suite.json`` is created exclusively: of two runs started at the same moment on one new
        directory, the second is refused (whichever suites they run).

        Raises:
            ValueError: naming the directory and what to do.
        """
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"--out {str(self.root)!r} is a file, not a directory")
        existing = self.root / SUITE_FILE
        digest = suite.digest()
        if existing.exists() or existing.is_symlink():
            saved = self.read_suite_file()
            if saved.get("digest") != digest:
                raise ValueError(f"{self.root} holds the results of another suite ({saved.get('name')!r}, digest {saved.get('digest')}): choose another --out")
            if not resume:
                raise ValueError(f"{self.root} already holds results of this suite: pass --resume to continue it, or choose another --out")
            self._digest = digest
            self._lock()
            return
        if resume and self.root.is_dir() and any(self.root.iterdir()):
            raise ValueError(f"{self.root} has no {SUITE_FILE}: it is not a suite's output directory")
        if self.root.is_dir() and any(p.name not in (".gitkeep", LOCK_FILE) and not p.name.startswith(f".{SUITE_FILE}.") for p in self.root.iterdir()):
            if existing.exists():  # it appeared since the check above: another run claimed the folder meanwhile
                raise ValueError(f"{self.root}: another run claimed this directory at the same moment (it wrote {SUITE_FILE}): choose another --out")
            raise ValueError(f"{self.root} is not empty and holds no suite: choose an empty or new --out")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            write_json(existing, {"name": suite.name, "digest": digest, "suite": suite.to_dict()}, exclusive=True)
        except FileExistsError:
            raise ValueError(f"{self.root}: another run claimed this directory at the same moment (it wrote {SUITE_FILE}): choose another --out") from None
        self._digest = digest
        self._lock()

    def _lock(self) -> None:
        """Hold ``DIR/.lock`` (an advisory ``flock``, released when this process ends, even by SIGKILL) until
        :meth:`close`: a second run on the same directory at the same time is refused."""
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; suite.json's exclusive creation still holds
            return
        handle = open(self.root / LOCK_FILE, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ValueError(f"{self.root}: another run is working in this directory right now: wait for it, or choose another --out") from None
        self._lock_handle = handle

    def close(self) -> None:
        """Release the directory (see :meth:`open`)."""
        handle = getattr(self, "_lock_handle", None)
        if handle is not None:
            handle.close()
            self._lock_handle = None

    def read_suite_file(self) -> dict:
        """``suite.json`` as written by :meth:`open`."""
        path = self.root / SUITE_FILE
        if not path.exists() and not path.is_symlink():
            raise FileNotFoundError(f"no {SUITE_FILE} in {str(self.root)!r}: is it the --out of 'mandril bench run'?")
        try:
            data = json.loads(_read_small_file(path))
        except RecordError as error:
            raise ValueError(f"{path}: {error}") from None
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
            raise ValueError(f"{path}: not valid JSON: {type(error).__name__}") from None
        if not isinstance(data, dict) or not isinstance(data.get("suite"), dict) or not isinstance(data.get("digest"), str):
            raise ValueError(f"{path}: not a suite file of 'mandril bench run'")
        return data

    def suite(self) -> Suite:
        """The suite this directory holds (checked again: the file may have been edited)."""
        return suite_from_dict(self.read_suite_file()["suite"], str(self.root / SUITE_FILE))

    def digest(self) -> str:
        """The suite's digest, as :meth:`open` wrote it to ``suite.json`` (every record carries it)."""
        if self._digest is None:
            self._digest = str(self.read_suite_file()["digest"])
        return self._digest

    # --- preparations -----------------------------------------------------------------------------
    def prepared_path(self, preparation: Preparation) -> Path:
        """Where the preparation's prepared state is written (``DIR/prepared/<id>.pt``)."""
        return self.prepared_dir / f"{check_file_stem(preparation.id)}.pt"

    def training_checkpoint(self, preparation: Preparation) -> Path:
        """Where the preparation's training checkpoint is kept while it trains (``DIR/prepared/<id>.training.pt``)."""
        return self.prepared_dir / f"{check_file_stem(preparation.id)}.training.pt"

    def _prepared_info(self, preparation: Preparation) -> Path:
        return self.prepared_dir / f"{check_file_stem(preparation.id)}.json"

    def preparation_done(self, preparation: Preparation) -> bool:
        """Whether the preparation finished (its state or its failure is recorded; not checked: see :meth:`read_preparation`)."""
        return self._prepared_info(preparation).is_file()

    def write_preparation(self, preparation: Preparation, result: dict) -> None:
        """Record a finished preparation: its state (if it succeeded), then its info file (the 'done' mark)."""
        if result["error"] is None:
            save_checkpoint(self.prepared_path(preparation), _PREPARED_KIND, result["state"], metadata=preparation.owner)
        write_json(self._prepared_info(preparation), {"id": preparation.id, "seconds": result["seconds"], "error": result["error"]})
        self.training_checkpoint(preparation).unlink(missing_ok=True)

    def read_preparation(self, preparation: Preparation, load: bool = True) -> PreparedState:
        """The preparation's state; with ``load``, a finished one's prepared state is loaded and checked
        (whole, of this preparation, finite), else it is ``"refused"`` with the reason, naming the file."""
        info_path = self._prepared_info(preparation)
        if not info_path.exists() and not info_path.is_symlink():
            return PreparedState("missing")
        try:
            info = json.loads(_read_small_file(info_path))
            if not isinstance(info, dict) or info.get("id") != preparation.id:
                raise RecordError(f"not the info file of preparation {preparation.id!r}")
            seconds, error = info.get("seconds", 0.0), info.get("error")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or (error is not None and not isinstance(error, str)):
                raise RecordError("its seconds or error are malformed")
        except RecordError as problem:
            return PreparedState("refused", reason=f"{info_path}: {problem}")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as problem:
            return PreparedState("refused", reason=f"{info_path}: not valid JSON ({type(problem).__name__})")
        if error:
            return PreparedState("failed", error=error, seconds=float(seconds))
        if not load:
            return PreparedState("done", seconds=float(seconds))
        try:
            state = load_checkpoint(self.prepared_path(preparation), _PREPARED_KIND, metadata=preparation.owner)
        except (CheckpointError, FileNotFoundError) as problem:
            return PreparedState("refused", reason=str(problem))
        return PreparedState("done", state=state, seconds=float(seconds))

    def discard_preparation(self, preparation: Preparation) -> None:
        """Remove a preparation's info and prepared state (it is prepared again; a training checkpoint stays)."""
        self._prepared_info(preparation).unlink(missing_ok=True)
        self.prepared_path(preparation).unlink(missing_ok=True)

    def preparation_seconds(self) -> dict[str, float]:
        """``{preparation id: seconds}`` of every finished preparation (unreadable info files left out)."""
        folder = self.prepared_dir
        if not folder.is_dir():
            return {}
        out = {}
        for path in sorted(folder.glob("*.json")):
            try:
                info = json.loads(_read_small_file(path))
                seconds = float(info.get("seconds", 0.0))
            except (RecordError, ValueError, TypeError, AttributeError, RecursionError, OSError):
                continue
            out[str(info.get("id", path.stem))] = seconds
        return out

    # --- records --------------------------------------------------------------------------------
    def unit_path(self, unit: Unit) -> Path:
        """The records file of a unit (``DIR/records/<unit id>.jsonl``)."""
        return self.root / "records" / f"{check_file_stem(unit.id)}.jsonl"

    def write_unit(self, unit: Unit, records: Iterable[dict]) -> None:
        """Write a unit's records, all at once, each stamped with the suite's digest and the unit's id."""
        stamp = {"suite_digest": self.digest(), "unit": unit.id}
        text = "".join(json.dumps({**record, **stamp}, sort_keys=True, allow_nan=True) + "\n" for record in records)
        atomic_write_text(self.unit_path(unit), text)

    def read_unit(self, unit: Unit) -> list[dict]:
        """The checked records of ``unit`` (see :func:`parse_unit_records`).

        Raises:
            FileNotFoundError: the unit has no file.
            RecordError: its file is not valid (the message names it and says why).
        """
        path = self.unit_path(unit)
        if not path.exists() and not path.is_symlink():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            return parse_unit_records(_read_small_file(path), unit, self.digest())
        except RecordError as error:
            raise RecordError(f"{path}: {error}") from None

    def scan(self, units: Optional[list[Unit]] = None) -> RecordScan:
        """Read every unit's file (default: the units of :meth:`suite`) and every other file of ``records/``."""
        if units is None:
            units = units_of(self.suite())
        digest = self.digest()
        folder = self.root / "records"
        scan = RecordScan(cells=sum(u.n_tasks for u in units))
        by_name = {f"{unit.id}.jsonl": unit for unit in units}
        present = {p.name: p for p in folder.iterdir()} if folder.is_dir() else {}
        published = self._published_units() if not folder.is_dir() else None
        for unit in units:
            path = present.get(f"{unit.id}.jsonl")
            if published is not None:
                data = published.pop(unit.id, None)
                if data is None:
                    continue
            elif path is None:
                continue
            try:
                records = parse_unit_records(data if published is not None else _read_small_file(path), unit, digest)
            except RecordError as error:
                scan.refused[unit.id] = str(error)
                continue
            except OSError as error:
                scan.refused[unit.id] = f"unreadable ({error.strerror or type(error).__name__})"
                continue
            scan.done[unit.id] = records
            scan.records += records
        for name, path in sorted(present.items()):
            if name in by_name or (name.startswith(".") and name.endswith(".tmp")):  # a unit's, or a write in progress
                continue
            why = "a folder" if path.is_dir() else "not a unit file of this suite"
            scan.ignored.append((name, f"{why}: it belongs to no unit of the suite, its records are not counted"))
        for unit_id in sorted(published or {}):
            scan.ignored.append((f"{PUBLISHED_RECORDS} (unit {unit_id!r})", "it belongs to no unit of the suite, its records are not counted"))
        return scan

    def _published_units(self) -> Optional[dict[str, bytes]]:
        """A published folder's ``records.jsonl.gz`` as ``{unit id: that unit's lines}`` (``None``: no such file)."""
        import gzip

        path = self.root / PUBLISHED_RECORDS
        if not path.is_file():
            return None
        import io

        try:
            with gzip.GzipFile(fileobj=io.BytesIO(_read_small_file(path))) as stream:
                text = stream.read(MAX_PUBLISHED_BYTES + 1)
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise RecordError(f"{path}: not a gzip file of records ({error})") from None
        except RecordError as error:
            raise RecordError(f"{path}: {error}") from None
        if len(text) > MAX_PUBLISHED_BYTES:
            raise RecordError(f"{path}: decompresses to more than {MAX_PUBLISHED_BYTES:,} bytes")
        lines = text.splitlines(keepends=True)
        units: dict[str, bytearray] = {}
        for number, line in enumerate(lines, 1):
            try:
                unit = json.loads(line).get("unit")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                raise RecordError(f"{path}: line {number} is not a JSON record") from None
            units.setdefault(str(unit), bytearray()).extend(line)
        return {unit: bytes(data) for unit, data in units.items()}

    def unit_done(self, unit: Unit) -> bool:
        """Whether ``unit`` has a valid records file."""
        try:
            self.read_unit(unit)
        except (FileNotFoundError, RecordError, OSError):
            return False
        return True

    def records(self) -> list[dict]:
        """The valid records of the suite's units, each cell once (see :meth:`scan` for what was left out)."""
        return self.scan().records

    def status(self, units: list[Unit], scan: Optional[RecordScan] = None) -> dict[str, dict[str, Any]]:
        """Per method: cells, done (valid records), failed, left (cells without a valid record)."""
        scan = scan if scan is not None else self.scan(units)
        table: dict[str, dict[str, Any]] = {}
        for unit in units:
            row = table.setdefault(unit.method, {"cells": 0, "done": 0, "failed": 0, "left": 0})
            row["cells"] += unit.n_tasks
            records = scan.done.get(unit.id)
            if records is None:
                row["left"] += unit.n_tasks
            else:
                row["done"] += len(records)
                row["failed"] += sum(1 for r in records if r.get("error"))
        return table
