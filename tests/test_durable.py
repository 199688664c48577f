"""The durability barrier: staging written without per-file fsync, made durable before publishing."""
from __future__ import annotations

import os
import sys

import pytest

from pipeline import durable
from pipeline.hashing import write_hashed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs(2) is Linux's")
def test_barrier_uses_syncfs_on_linux(tmp_path):
    assert durable._syncfs() is not None
    write_hashed(tmp_path / "a.bin", b"x" * 10, ("sha256",))
    durable.barrier(tmp_path)          # returns only once the filesystem is synced


def test_barrier_on_a_missing_folder_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        durable.barrier(tmp_path / "missing")


def test_large_files_are_written_whole_and_renamed(tmp_path):
    data = os.urandom(durable.KICK_BYTES + 1)
    size, digests = write_hashed(tmp_path / "big.bin", data, ("sha256",))
    assert size == len(data) and (tmp_path / "big.bin").read_bytes() == data
    assert not list(tmp_path.glob(".*.part"))
