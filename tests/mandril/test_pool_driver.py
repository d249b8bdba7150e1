"""The pool driver: a prepared method's units join the others at their place in the suite's order, and prepared
states travel to workers as bytes that read back bit for bit and cannot run code."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch

from mandril.bench import load_suite, units_of
from mandril.bench.runners import _requeue
from mandril.bench.work import PackedState
from mandril.core.checkpoint import CheckpointError

SMOKE = Path(__file__).resolve().parents[2] / "benchmarks" / "suites" / "smoke.toml"


def test_units_whose_preparation_finishes_run_beside_the_others_of_their_family_split_and_n():
    units = units_of(load_suite(SMOKE))
    position = {unit.id: index for index, unit in enumerate(units)}
    prepared = [u for u in units if u.needs_preparation]
    assert prepared and len(prepared) < len(units)
    ready = [u for u in units if not u.needs_preparation]
    started = [ready.pop(0) for _ in range(3)]  # the pool has taken three units while the preparations ran
    by_preparation: dict[str, list] = {}
    for unit in prepared:
        by_preparation.setdefault(unit.preparation.id, []).append(unit)
    for group in reversed(list(by_preparation.values())):  # preparations finish in any order
        _requeue(ready, group, position)
    assert [u.id for u in ready] == [u.id for u in units if u not in started]
    first_prepared = next(i for i, u in enumerate(ready) if u.needs_preparation)
    assert first_prepared < len(ready) - len(prepared)  # not all at the end, as a plain append would have them


def test_a_packed_state_reads_back_bit_for_bit_and_refuses_pickled_objects():
    generator = torch.Generator().manual_seed(0)
    state = {"net": {"weight": torch.randn(4, 3, generator=generator, dtype=torch.float64), "bias": torch.randn(3, generator=generator)},
             "rates": [torch.tensor([1e-300, -0.0, float("inf")])], "steps": 7, "name": "x", "nothing": None}
    packed = pickle.loads(pickle.dumps(PackedState.pack(state)))  # as a pool's pipe carries it
    back = packed.unpack()
    assert back["steps"] == 7 and back["name"] == "x" and back["nothing"] is None
    for a, b in ((state["net"]["weight"], back["net"]["weight"]), (state["net"]["bias"], back["net"]["bias"]), (state["rates"][0], back["rates"][0])):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert torch.signbit(back["rates"][0][1])  # -0.0 stays -0.0

    class Hostile:
        def __reduce__(self):
            return (print, ("ran code",))

    buffer = io.BytesIO()
    torch.save({"x": Hostile()}, buffer)
    with pytest.raises(CheckpointError, match=r"a prepared state sent to a worker: .*pickled"):
        PackedState(buffer.getvalue()).unpack()
    with pytest.raises(CheckpointError, match="not a torch file"):
        PackedState(b"garbage").unpack()
