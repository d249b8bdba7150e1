"""The Ray backend's quick checks: bad addresses refused before anything is written; local executors share values as they are."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mandril.bench import load_suite, run_suite
from mandril.bench.runners import _Inline, _Pool
from mandril.bench.work import PackedState
from mandril.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "benchmarks" / "suites" / "smoke.toml"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:{closed}", "nothing answers there"),
    ("head-node", "must be HOST:PORT"),
    ("10.0.0.1:port", "must be HOST:PORT"),
])
def test_a_ray_address_nothing_answers_at_is_refused_before_the_output_directory_is_made(tmp_path, address, message):
    address = address.format(closed=_closed_port())
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        run_suite(load_suite(SMOKE), out, backend="ray", ray_address=address, progress=False)
    assert not out.exists()


def test_the_cli_says_so_in_one_line_and_exits_2(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["bench", "run", str(SMOKE), "--out", str(out), "--backend", "ray", "--ray-address", f"127.0.0.1:{_closed_port()}", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--ray-address" in err[0] and "nothing answers there" in err[0], err
    assert not out.exists()


def test_an_address_without_ray_is_refused_before_the_output_directory_is_made(tmp_path):
    with pytest.raises(ValueError, match="needs --backend ray"):
        run_suite(load_suite(SMOKE), tmp_path / "run", ray_address="127.0.0.1:6379", progress=False)
    assert not (tmp_path / "run").exists()


def test_the_inline_executor_shares_a_value_as_it_is_and_the_pool_as_bytes_of_it():
    state = {"weights": [1.0, 2.0]}
    assert _Inline().share(state) is state
    pool = _Pool(1, 1)
    try:
        packed = pool.share(state)
        assert isinstance(packed, PackedState) and packed.unpack() == state  # no shared-memory tensors to a pool worker
        assert pool.share(None) is None
    finally:
        pool.shutdown()
