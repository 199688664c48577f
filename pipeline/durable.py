"""When written bytes reach the disk: one barrier before publishing, not an fsync per file.

Files written into staging are not fsynced one by one: an fsync per file makes every small
file (records, DC, proof records) wait for a journal commit, and every master wait for its own
36 MB, in the middle of the work.  Instead:

  * `started(f)`: right after a large file is written, ask the kernel to start writing it back
    now (posix_fadvise DONTNEED starts asynchronous writeback of dirty pages and never waits);
  * `barrier(path)`: before anything is published, make everything on the filesystem holding
    `path` durable at once (syncfs(2) on Linux, else sync(2)), and only then rename into output/.
    (POSIX only, as the rest of the pipeline: fcntl locks, rename without replace.)

Nothing is lost by this: a crash before the barrier leaves only staging, which a rerun checks
file by file (proof records hold the digests) before it reuses anything; after the barrier the
bytes are on disk, then the publish renames (journaled and fsynced in publish.py) make them
visible.  `fsync_file` is for the few writes made outside staging (`pipeline convert`).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

KICK_BYTES = 4 * 1024 * 1024     # smaller files are written back with the barrier


def started(f: BinaryIO, size: int) -> None:
    """Start writing back a just-written file of `size` bytes (flushed first); never waits."""
    if size < KICK_BYTES or not hasattr(os, "posix_fadvise"):
        return
    f.flush()
    try:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass    # advice only: the barrier still makes the file durable


def started_path(path: Path) -> None:
    """`started` for a file already closed (a master, once its proof has read it back)."""
    with open(path, "rb") as f:
        started(f, os.fstat(f.fileno()).st_size)


@lru_cache(maxsize=1)
def _syncfs():
    if os.name != "posix":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def barrier(path: Path) -> None:
    """Everything written so far on the filesystem holding `path` is on disk when this returns."""
    fn = _syncfs()
    if fn is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
