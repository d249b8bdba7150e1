"""Helpers shared by the harness tests: a run's records in comparable form, and a suite written as TOML."""

from __future__ import annotations

import json
from pathlib import Path

from mandril.core.config import toml_value


def comparable(directory: Path) -> list[str]:
    """Every record of a run, timings removed, sorted: what two runs must share exactly."""
    out = []
    for path in sorted((directory / "records").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            record.pop("seconds")
            (record.get("info") or {}).pop("seconds", None)
            out.append(json.dumps(record, sort_keys=True))
    return sorted(out)


def toml_text(data: dict) -> str:
    """A suite (or any table of tables) as TOML, every table inline."""
    return "".join(f"{json.dumps(key)} = {toml_value(value)}\n" for key, value in data.items())
