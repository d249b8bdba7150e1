"""The grid of a suite: cells, grouped into units of work, and the preparation jobs they need.

A **cell** is (family, split, method + settings hash, seed, task, n_demos): a pure function of its
inputs, scored into one record. Cells that share (family, split, method, seed, n_demos) form a
**unit**: one ``fit_batch`` call over all its tasks (one batched kernel call for batched methods),
whose records are written together, atomically, so a unit is done or not, never half. A
**preparation** (meta-training, pre-training) is done once per (method, family, seed) that needs it,
before that method's units on that family and seed.

Units and preparations have readable, stable ids: the file names of their results. Every part of
an id is a checked name (family and method names pass :func:`mandril.bench.suite.check_name` when a
suite is read; splits are the env's), a number or a hex hash; :func:`check_file_stem` refuses anything
else before it becomes a path.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np

from mandril.bench.suite import Suite

__all__ = ["Unit", "Preparation", "units_of", "preparations_of", "cell_seed", "check_file_stem"]

_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,239}")


def check_file_stem(stem: str) -> str:
    """``stem`` if it is safe as a file name in the harness's folders (no separator, no ``..``, no
    leading dot, at most 240 characters), else a ValueError: the last guard before a path is made."""
    if not isinstance(stem, str) or not _STEM.fullmatch(stem) or ".." in stem:
        raise ValueError(f"{str(stem)[:300]!r} cannot name a file of the harness (only letters, digits, '_', '-', '.', no '..')")
    return stem


@dataclass(frozen=True)
class Preparation:
    """One (method, family, seed) preparation; ``preparation_hash`` covers what it depends on
    (:meth:`~mandril.bench.suite.Suite.preparation_hash`), so suites that share it share the file."""

    method: str
    family: str
    seed: int
    preparation_hash: str

    @property
    def id(self) -> str:
        """``method--family--s<seed>--<hash>`` (the prepared state's file name)."""
        return f"{self.method}--{self.family}--s{self.seed}--{self.preparation_hash}"

    @property
    def owner(self) -> dict:
        """What its checkpoints carry in their metadata (:mod:`mandril.core.checkpoint`), and are checked against."""
        return {"preparation": self.id, "preparation_hash": self.preparation_hash}


@dataclass(frozen=True)
class Unit:
    """Cells of one (family, split, method, seed, n_demos): the tasks ``tasks`` of the split."""

    family: str
    split: str
    method: str
    config_hash: str
    seed: int
    n_demos: int
    n_tasks: int
    needs_preparation: bool
    preparation_hash: str = ""

    @property
    def id(self) -> str:
        """``family--split--method--<hash>--s<seed>--n<n_demos>`` (its records' file name)."""
        return f"{self.family}--{self.split}--{self.method}--{self.config_hash}--s{self.seed}--n{self.n_demos}"

    @property
    def preparation(self) -> Preparation:
        """The preparation this unit needs (only meaningful when :attr:`needs_preparation`)."""
        return Preparation(self.method, self.family, self.seed, self.preparation_hash)


def cell_seed(unit: Unit, task_index: int) -> int:
    """The seed a method's fit gets for one cell (its initialisation, its rollouts): a function of the cell."""
    words = [unit.seed, zlib.crc32(unit.family.encode()), zlib.crc32(unit.split.encode()), zlib.crc32(unit.method.encode()), int(task_index), unit.n_demos]
    return int(np.random.SeedSequence(words).generate_state(1)[0] % 2**31)


def units_of(suite: Suite) -> list[Unit]:
    """Every unit of the suite, in a stable order (family, split, n, method, seed), cell limits applied."""
    from mandril.methods import METHODS

    hashes = {(m, f, n): suite.config_hash(m, f, n) for f in suite.families for n in suite.family_n_demos(f) for m in suite.methods}
    prepared = {(m, f): suite.preparation_hash(m, f) for f in suite.families for m in suite.methods if METHODS[m].needs_preparation}
    units = []
    for family, spec in suite.families.items():
        for split in spec.splits:
            for n in suite.family_n_demos(family):
                for method in suite.methods:
                    limits = suite.cells.get(method)
                    for seed in suite.seeds:
                        if limits is not None and not limits.allows(family, split, n, seed):
                            continue
                        n_tasks = spec.n_tasks if limits is None or not limits.n_tasks else min(limits.n_tasks, spec.n_tasks)
                        units.append(Unit(family, split, method, hashes[method, family, n], seed, n, n_tasks, METHODS[method].needs_preparation, prepared.get((method, family), "")))
    return units


def preparations_of(units: list[Unit]) -> list[Preparation]:
    """The distinct preparations the units need, in first-use order."""
    seen: dict[str, Preparation] = {}
    for unit in units:
        if unit.needs_preparation:
            seen.setdefault(unit.preparation.id, unit.preparation)
    return list(seen.values())

