"""clarifylab.io: atomic writes leave whole files with the permissions a plain open() gives."""

from __future__ import annotations

import os
import stat

import pytest

from clarifylab.io import atomic_open, write_json, write_text


@pytest.fixture()
def umask():
    """``umask(value)`` sets the process umask for the test; the old one is restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    write_json(tmp_path / "metrics.json", {"a": 1})
    write_text(tmp_path / "results.md", "x\n")
    with atomic_open(tmp_path / "adapter.bin", "wb") as handle:
        handle.write(b"\0")
    for name in ("metrics.json", "results.md", "adapter.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    with open(tmp_path / "plain", "w"):   # what a plain open() gives under the same umask
        pass
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == mode


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    write_text(tmp_path / "out.txt", "old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "out.txt") as handle:
            handle.write("half")
            raise RuntimeError("killed")
    assert (tmp_path / "out.txt").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
