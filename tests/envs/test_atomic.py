"""The one atomic writer: whole or nothing, the umask's permissions, leftovers of killed writers cleaned."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from mandril_envs.atomic import atomic_write


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = atomic_write(tmp_path / "a.bin", lambda s: s.write(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    path = atomic_write(tmp_path / "b.bin", lambda s: s.write(b"x"))
    plain = tmp_path / "c.bin"
    plain.write_bytes(b"x")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write(tmp_path / "a.bin", lambda s: s.write(b"old"))

    def fail(stream):
        stream.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_the_temporary_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "data.npz"
    script = (
        "import os, signal, sys\n"
        "from mandril_envs.atomic import atomic_write\n"
        "def write(stream):\n"
        "    stream.write(b'partial')\n"
        "    stream.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"atomic_write({str(target)!r}, write)\n"
    )
    result = subprocess.run([sys.executable, "-c", script])
    assert result.returncode == -9
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".data.npz.") and not target.exists()
    atomic_write(target, lambda s: s.write(b"whole"))
    assert [p.name for p in tmp_path.iterdir()] == ["data.npz"] and target.read_bytes() == b"whole"


def test_a_directory_is_not_overwritten(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match="it is a directory"):
        atomic_write(tmp_path / "d", lambda s: s.write(b"x"))
