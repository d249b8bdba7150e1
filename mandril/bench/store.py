"""A suite's output directory: what is done, written so that a run killed at any moment resumes exactly.

    DIR/suite.json                    the suite (plain data) and its digest; a directory holds one suite
    DIR/prepared/<id>.pt              a prepared method (one checkpoint format: weights_only, checksum);
                                      ``<id>`` hashes what the preparation depends on, so a tuning sweep
                                      shares one prepared folder between its suites
    DIR/prepared/<id>.training.pt     its training checkpoint while it trains (a killed run continues it)
    DIR/prepared/<id>.json            how long the preparation took, or why it failed
    DIR/records/<unit id>.jsonl       one record per cell of a finished unit, written atomically
    DIR/records.jsonl.gz              a published folder's records (no records/ there; see mandril.bench.report.publish)

Every file is written whole or not at all (temporary file, then rename), so after a SIGKILL a unit is
either done or redone; units are deterministic, so the resumed run ends with exactly the records of
an uninterrupted one (timings aside).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from mandril.bench.cells import Preparation, Unit
from mandril.bench.suite import Suite, suite_from_dict
from mandril.core.checkpoint import load_checkpoint, save_checkpoint
from mandril.core.io import atomic_write_text, write_json

__all__ = ["RunStore", "SUITE_FILE"]

SUITE_FILE = "suite.json"
_PREPARED_KIND = "mandril.bench.prepared"


class RunStore:
    """The output directory of one suite (see the module docstring)."""

    def __init__(self, root: Union[str, Path], prepared_dir: Optional[Union[str, Path]] = None) -> None:
        self.root = Path(root)
        self.prepared_dir = Path(prepared_dir) if prepared_dir is not None else self.root / "prepared"

    # --- the suite ------------------------------------------------------------------------------
    def open(self, suite: Suite, resume: bool) -> None:
        """Claim the directory for ``suite``; refuse one holding another suite, or results without ``resume``.

        Raises:
            ValueError: naming the directory and what to do.
        """
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"--out {str(self.root)!r} is a file, not a directory")
        existing = self.root / SUITE_FILE
        if existing.is_file():
            saved = self.read_suite_file()
            if saved.get("digest") != suite.digest():
                raise ValueError(f"{self.root} holds the results of another suite ({saved.get('name')!r}, digest {saved.get('digest')}): choose another --out")
            if not resume:
                raise ValueError(f"{self.root} already holds results of this suite: pass --resume to continue it, or choose another --out")
        elif resume and self.root.is_dir() and any(self.root.iterdir()):
            raise ValueError(f"{self.root} has no {SUITE_FILE}: it is not a suite's output directory")
        elif self.root.is_dir() and any(p.name not in (".gitkeep",) for p in self.root.iterdir()):
            raise ValueError(f"{self.root} is not empty and holds no suite: choose an empty or new --out")
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(existing, {"name": suite.name, "digest": suite.digest(), "suite": suite.to_dict()})

    def read_suite_file(self) -> dict:
        """``suite.json`` as written by :meth:`open`."""
        path = self.root / SUITE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {SUITE_FILE} in {str(self.root)!r}: is it the --out of 'mandril bench run'?")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not valid JSON: {error}") from None
        if not isinstance(data, dict) or not isinstance(data.get("suite"), dict):
            raise ValueError(f"{path}: not a suite file of 'mandril bench run'")
        return data

    def suite(self) -> Suite:
        """The suite this directory holds (checked again: the file may have been edited)."""
        return suite_from_dict(self.read_suite_file()["suite"], str(self.root / SUITE_FILE))

    # --- preparations -----------------------------------------------------------------------------
    def prepared_path(self, preparation: Preparation) -> Path:
        return self.prepared_dir / f"{preparation.id}.pt"

    def training_checkpoint(self, preparation: Preparation) -> Path:
        return self.prepared_dir / f"{preparation.id}.training.pt"

    def _prepared_info(self, preparation: Preparation) -> Path:
        return self.prepared_dir / f"{preparation.id}.json"

    def preparation_done(self, preparation: Preparation) -> bool:
        """Whether the preparation finished (its state or its failure is recorded)."""
        return self._prepared_info(preparation).is_file()

    def write_preparation(self, preparation: Preparation, result: dict) -> None:
        """Record a finished preparation: its state (if it succeeded), then its info file (the 'done' mark)."""
        if result["error"] is None:
            save_checkpoint(self.prepared_path(preparation), _PREPARED_KIND, result["state"])
        write_json(self._prepared_info(preparation), {"id": preparation.id, "seconds": result["seconds"], "error": result["error"]})
        self.training_checkpoint(preparation).unlink(missing_ok=True)

    def read_preparation(self, preparation: Preparation) -> tuple[Optional[dict], Optional[str], float]:
        """``(state, error, seconds)`` of a finished preparation."""
        info = json.loads(self._prepared_info(preparation).read_text())
        if info.get("error"):
            return None, str(info["error"]), float(info.get("seconds", 0.0))
        return load_checkpoint(self.prepared_path(preparation), _PREPARED_KIND), None, float(info.get("seconds", 0.0))

    def preparation_seconds(self) -> dict[str, float]:
        """``{preparation id: seconds}`` of every finished preparation."""
        folder = self.prepared_dir
        if not folder.is_dir():
            return {}
        out = {}
        for path in sorted(folder.glob("*.json")):
            info = json.loads(path.read_text())
            out[str(info.get("id", path.stem))] = float(info.get("seconds", 0.0))
        return out

    # --- records --------------------------------------------------------------------------------
    def unit_path(self, unit: Unit) -> Path:
        return self.root / "records" / f"{unit.id}.jsonl"

    def unit_done(self, unit: Unit) -> bool:
        return self.unit_path(unit).is_file()

    def write_unit(self, unit: Unit, records: Iterable[dict]) -> None:
        """Write a unit's records, all at once."""
        text = "".join(json.dumps(record, sort_keys=True, allow_nan=True) + "\n" for record in records)
        atomic_write_text(self.unit_path(unit), text)

    def records(self) -> list[dict]:
        """Every record written so far (units in file-name order, cells in task order); in a published folder
        (no ``records/``), those of its ``records.jsonl.gz``."""
        folder = self.root / "records"
        published = self.root / "records.jsonl.gz"
        if not folder.is_dir() and published.is_file():
            import gzip

            lines = gzip.decompress(published.read_bytes()).decode("utf-8").splitlines()
            return [json.loads(line) for line in lines if line.strip()]
        out: list[dict] = []
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not a JSON record: {error}") from None
        return out

    def status(self, units: list[Unit]) -> dict[str, dict[str, Any]]:
        """Per method: cells done, failed, left."""
        table: dict[str, dict[str, Any]] = {}
        for unit in units:
            row = table.setdefault(unit.method, {"cells": 0, "done": 0, "failed": 0, "left": 0})
            row["cells"] += unit.n_tasks
            if self.unit_done(unit):
                lines = self.unit_path(unit).read_text().splitlines()
                failures = sum(1 for line in lines if json.loads(line).get("error"))
                row["done"] += len(lines)
                row["failed"] += failures
            else:
                row["left"] += unit.n_tasks
        return table
