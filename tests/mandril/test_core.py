"""mandril.core: the one checkpoint format (safe, checksummed) and the typed dataclass loader."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

import pytest
import torch

from mandril.core import CheckpointError, build_dataclass, dataclass_to_dict, load_checkpoint, load_toml, save_checkpoint


class _Payload:
    """Unpickling this runs a shell command: what a hostile checkpoint would carry."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_keeps_tensors_numbers_and_rng_state(tmp_path):
    import numpy as np

    rng = np.random.default_rng(3)
    payload = {"weights": torch.arange(6.0).reshape(2, 3), "iteration": 7, "rng": rng.bit_generator.state, "history": [{"loss": 0.5}], "blob": b"\x00\x01"}
    path = save_checkpoint(tmp_path / "sub" / "c.pt", "test.kind", payload)
    loaded = load_checkpoint(path, "test.kind")
    assert torch.equal(loaded["weights"], payload["weights"]) and loaded["iteration"] == 7
    assert loaded["rng"] == payload["rng"] and loaded["history"] == [{"loss": 0.5}] and loaded["blob"] == b"\x00\x01"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["c.pt"]  # no temporary file left


@pytest.mark.parametrize("wrap", ["bare", "enveloped"])
def test_a_checkpoint_whose_pickle_runs_code_is_refused_without_running_it(tmp_path, wrap):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if wrap == "bare":
        torch.save({"format": "x", "payload": _Payload(str(marker))}, path)
    else:  # a valid envelope whose inner payload is hostile, with a correct checksum
        import hashlib
        import io

        inner = io.BytesIO()
        torch.save({"model": _Payload(str(marker))}, inner)
        body = inner.getvalue()
        torch.save({"format": "mandril.checkpoint", "version": 1, "kind": "k", "sha256": hashlib.sha256(body).hexdigest(), "payload": body}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path, "k")
    assert not marker.exists()


def test_a_bit_flip_anywhere_is_refused_or_harmless_never_wrong_data(tmp_path):
    original = torch.randn(64, generator=torch.Generator().manual_seed(0))
    path = save_checkpoint(tmp_path / "c.pt", "k", {"w": original})
    data = path.read_bytes()
    flipped = tmp_path / "flipped.pt"
    refused = harmless = 0
    for offset in range(0, len(data), 5):
        damaged = bytearray(data)
        damaged[offset] ^= 0x10
        flipped.write_bytes(bytes(damaged))
        try:
            loaded = load_checkpoint(flipped, "k")
        except CheckpointError as error:
            assert "flipped.pt" in str(error)
            refused += 1
        else:  # zip alignment padding and the like: the data must be exactly the original
            assert torch.equal(loaded["w"], original)
            harmless += 1
    assert refused > harmless  # most bytes matter; the rest (zip padding) never change the data
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_checkpoint(tmp_path / "cut.pt", "k")


def test_every_flip_of_the_payload_bytes_is_a_checksum_error(tmp_path):
    import hashlib
    import io

    body_buffer = io.BytesIO()
    torch.save({"w": torch.zeros(16)}, body_buffer)
    body = body_buffer.getvalue()
    damaged = bytearray(body)
    damaged[len(body) // 2] ^= 0x01
    path = tmp_path / "c.pt"
    torch.save({"format": "mandril.checkpoint", "version": 1, "kind": "k", "sha256": hashlib.sha256(body).hexdigest(), "payload": bytes(damaged)}, path)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path, "k")


def test_wrong_kind_foreign_file_and_missing_file(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", "one.kind", {"a": 1})
    with pytest.raises(CheckpointError, match="'one.kind' checkpoint, not a 'other.kind'"):
        load_checkpoint(path, "other.kind")
    torch.save({"a": 1}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a mandril checkpoint"):
        load_checkpoint(tmp_path / "plain.pt", "one.kind")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="text.pt"):
        load_checkpoint(tmp_path / "text.pt", "one.kind")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pt", "one.kind")


def test_payloads_that_could_not_be_loaded_safely_are_not_written(tmp_path):
    with pytest.raises(TypeError, match="weights_only"):
        save_checkpoint(tmp_path / "c.pt", "k", {"obj": _Payload("x")})
    assert not (tmp_path / "c.pt").exists()


@dataclass(frozen=True)
class _Inner:
    rate: float = 0.1
    widths: tuple[int, ...] = (4, 4)


@dataclass(frozen=True)
class _Outer:
    name: str = "x"
    steps: int = 3
    flag: bool = False
    note: Optional[str] = None
    inner: _Inner = field(default_factory=_Inner)


def test_build_dataclass_checks_keys_and_types():
    built = build_dataclass(_Outer, {"name": "y", "steps": 5, "inner": {"rate": 1, "widths": [8]}})
    assert built == _Outer("y", 5, False, None, _Inner(1.0, (8,)))
    assert dataclass_to_dict(built) == {"name": "y", "steps": 5, "flag": False, "note": None, "inner": {"rate": 1.0, "widths": [8]}}
    with pytest.raises(ValueError, match=r"unknown key \['stesp'\]; allowed: \['flag', 'inner', 'name', 'note', 'steps'\]"):
        build_dataclass(_Outer, {"stesp": 1})
    with pytest.raises(TypeError, match="steps must be an integer, got str 'ten'"):
        build_dataclass(_Outer, {"steps": "ten"})
    with pytest.raises(TypeError, match="steps must be an integer, got float 2.5"):
        build_dataclass(_Outer, {"steps": 2.5})
    with pytest.raises(TypeError, match="name must be a string, got int 5"):
        build_dataclass(_Outer, {"name": 5})
    with pytest.raises(TypeError, match=r"\[inner\] widths\[0\] must be an integer"):
        build_dataclass(_Inner, {"widths": ["a"]}, "[inner]")
    with pytest.raises(TypeError, match="flag must be true or false"):
        build_dataclass(_Outer, {"flag": 1})
    with pytest.raises(ValueError, match="rate must be finite"):
        build_dataclass(_Inner, {"rate": float("nan")})


def test_load_toml_names_the_file(tmp_path):
    (tmp_path / "bad.toml").write_text("a = [1,\n")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        load_toml(tmp_path / "bad.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="bin.toml: not a text"):
        load_toml(tmp_path / "bin.toml")
    with pytest.raises(FileNotFoundError):
        load_toml(tmp_path / "none.toml")
