"""Issue 20 (items 6 and 7) on the mandril_envs side: sizes, env kwargs, datasets."""

from __future__ import annotations

import gymnasium as gym
import pytest

import mandril_envs  # noqa: F401  (registers the ids)


@pytest.mark.parametrize("env_id", ["mandril_envs/GridWorld-v0", "mandril_envs/Bandit-v0", "mandril_envs/TabularMDP-v0"])
def test_sample_tasks_refuses_an_absurd_count_before_drawing_any(env_id):
    base = gym.make(env_id).unwrapped
    with pytest.raises(ValueError, match=r"sample_tasks n=1000000000000 .* would take about .* more than"):
        base.sample_tasks(10**12, "test")
    assert len(base.sample_tasks(3, "test")) == 3


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _lying_archive(honest: "Path", out: "Path", m: int, declared: int, data: int = 64) -> None:
    """``honest`` with its states member replaced by a header of ``M = m`` demos and a few bytes of data,
    and the zip's declared uncompressed size of that member patched to ``declared`` bytes."""
    import struct
    import zipfile

    with zipfile.ZipFile(honest) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    n, _, h1 = __import__("numpy").load(honest)["states"].shape
    members["states.npy"] = _npy_header((n, m, h1), "<i8") + bytes(data)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    raw = bytearray(out.read_bytes())
    name = b"states.npy"
    local = raw.find(b"PK\x03\x04" + raw[4:4])  # first local header
    while local >= 0:
        if raw[local + 30 : local + 30 + len(name)] == name:
            struct.pack_into("<I", raw, local + 22, declared)
        local = raw.find(b"PK\x03\x04", local + 4)
    central = raw.find(b"PK\x01\x02")
    while central >= 0:
        if raw[central + 46 : central + 46 + len(name)] == name:
            struct.pack_into("<I", raw, central + 24, declared)
        central = raw.find(b"PK\x01\x02", central + 4)
    out.write_bytes(bytes(raw))


def test_a_small_file_cannot_declare_arrays_its_bytes_cannot_hold(tmp_path):
    """A few-KB file whose zip header and .npy header declare a 1 GB states array: refused before the
    array is allocated (the old loader allocated the declared size, then failed reading)."""
    from mandril_envs import dataset as dataset_module
    from mandril_envs.dataset import DatasetError, DemoDataset, collect

    honest = collect("mandril_envs/Bandit-v0", 2, 2).save(tmp_path / "honest.npz")
    lying = tmp_path / "lying.npz"
    _lying_archive(honest, lying, m=5_000_000, declared=2**30)  # 2 x 5e6 x 11 int64 = 880 MB declared
    assert lying.stat().st_size < 10_000
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=r"lying.npz: array 'states' declares 1073741824 bytes from \d+ compressed ones .*deflate expands at most 1032-fold"):
            DemoDataset.load(lying)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak  # numpy reports its allocations to tracemalloc: nothing near the declared 880 MB
    assert dataset_module.MAX_DEFLATE_RATIO == 1032


def test_declared_demo_shapes_must_match_the_meta_data_before_anything_is_read(tmp_path):
    from mandril_envs.dataset import DatasetError, DemoDataset, collect

    honest = collect("mandril_envs/Bandit-v0", 2, 2).save(tmp_path / "honest.npz")
    other = tmp_path / "other.npz"
    _lying_archive(honest, other, m=3, declared=len(_npy_header((2, 3, 11), "<i8")) + 528, data=528)  # M = 3 here, 2 in actions and rewards
    with pytest.raises(DatasetError, match=r"other.npz: actions declares shape \(2, 2, 10\), expected \(2, 3, 10\)"):
        DemoDataset.load(other)
