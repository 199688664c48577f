"""Hashing: every algorithm of a file in one read, while it is written or copied."""
from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Mapping, NamedTuple, Optional

from . import durable

CHUNK = 1 << 20  # 1 MiB reads: hashlib releases the GIL on buffers this size



def new_hashers(algorithms: Iterable[str]) -> dict[str, "hashlib._Hash"]:
    return {alg: hashlib.new(alg) for alg in algorithms}


def hash_stream(stream: BinaryIO, algorithms: Iterable[str]) -> tuple[int, dict[str, str]]:
    hashers = new_hashers(algorithms)
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        n = stream.readinto(buf)
        if not n:
            break
        size += n
        chunk = view[:n]
        for h in hashers.values():
            h.update(chunk)
    return size, {alg: h.hexdigest() for alg, h in hashers.items()}


def hash_file(path: Path | str, algorithms: Iterable[str]) -> tuple[int, dict[str, str]]:
    """Size and hex digests of one file, all algorithms in a single read."""
    with open(path, "rb", buffering=0) as f:
        return hash_stream(f, algorithms)


def hash_bytes(data: bytes, algorithms: Iterable[str]) -> dict[str, str]:
    return {alg: hashlib.new(alg, data).hexdigest() for alg in algorithms}


def write_hashed(dest: Path, data: bytes, algorithms: Iterable[str], *, fsync: bool = False,
                 digests: Optional[Mapping[str, str]] = None) -> tuple[int, dict[str, str]]:
    """Write bytes to `dest` atomically (temp name, then rename) and return size and digests.

    `digests`, when the caller already hashed `data`, are returned as they are instead of hashing
    it again.  Not fsynced unless `fsync`: staging is made durable at once before publishing
    (pipeline/durable.py).  A failed write leaves no temporary file."""
    digests = dict(digests) if digests is not None else hash_bytes(data, algorithms)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
            else:
                durable.started(f, len(data))
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(data), digests


def copy_hashed(src: Path, dest: Path, algorithms: Iterable[str]) -> tuple[int, dict[str, str]]:
    """Copy `src` to `dest` (temp name, then rename), hashing the bytes as they pass.  A failed
    copy leaves no temporary file."""
    hashers = new_hashers(algorithms)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    size = 0
    try:
        with open(src, "rb", buffering=0) as fin, open(tmp, "wb") as fout:
            while True:
                chunk = fin.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                for h in hashers.values():
                    h.update(chunk)
                fout.write(chunk)
            durable.started(fout, size)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size, {alg: h.hexdigest() for alg, h in hashers.items()}


# ---------------------------------------------------------------------------------------------
# Many files at once (fixity audits, verification).

BIG_CHUNK = 1 << 17     # 128 KiB reads: the buffer stays in L2 cache; larger ones cost 3x the system time here
BIG_FILE = 1 << 18      # files from 256 KiB are hashed in parallel; smaller ones one at a time
RESULT_BATCH = 256      # results handed over per queue put (tiny files: the queue is the cost)
RESULT_BYTES = 1 << 24  # ...or fewer results once this many bytes were hashed


class Hashed(NamedTuple):
    """One file of `hash_many`: `path` as given (a str, or str subclass, is the very object given);
    `error` is "" or why the file could not be read."""

    path: str
    size: int
    digests: dict[str, str]
    error: str = ""


def _constructors(algorithms: Iterable[str]) -> list[tuple[str, object]]:
    out = []
    for alg in algorithms:
        hashlib.new(alg)  # ValueError for an unknown algorithm, before any thread starts
        ctor = getattr(hashlib, alg, None) if alg in hashlib.algorithms_guaranteed else None
        out.append((alg, ctor or (lambda a=alg: hashlib.new(a))))
    return out


def _failed(path, exc: OSError, size: int = 0) -> Hashed:
    return Hashed(os.fspath(path), size, {}, exc.strerror or str(exc))


def _hash_fd(path, fd: int, ctors, buf: bytearray, view: memoryview, expected: int = -1) -> Hashed:
    """Read `fd` to the end into `buf` (no allocation per read), every algorithm per chunk; closes fd.
    `expected` is the size fstat gave: a short read that reaches it is the end of the file, so a
    small file costs one read, not two (the second would only return nothing)."""
    hashers = [(alg, ctor()) for alg, ctor in ctors]
    size = 0
    full = len(buf)
    try:
        while n := os.readv(fd, (buf,)):
            size += n
            chunk = view[:n]
            for _, h in hashers:
                h.update(chunk)
            if n < full and size == expected:
                break
    except OSError as exc:
        return _failed(path, exc, size)
    finally:
        os.close(fd)
    return Hashed(os.fspath(path), size, {alg: h.hexdigest() for alg, h in hashers})


def hash_many(paths: Iterable[str | os.PathLike], algorithms: Iterable[str], workers: int = 0,
              follow_symlinks: bool = True) -> Iterator[Hashed]:
    """Hash many files in `workers` threads (default: one per core), every algorithm in one read.

    Yields one `Hashed` per path, in completion order (not input order).  `paths` is consumed
    lazily and only a few batches of results wait in memory, so memory does not grow with the
    number of files.  Large files (>= BIG_FILE) are hashed in parallel: hashlib releases the GIL
    on big buffers, so they go at OpenSSL speed.  Small files are opened, read and hashed by one
    thread at a time (the "lane"), because threads contending for the GIL on every system call
    are slower than one thread alone; the others wait on the lane lock, not on the GIL, until
    the lane meets a large file and hands it to a parallel worker.  With `follow_symlinks=False`
    a symbolic link is an error, never read through.  Leaving the loop early stops the threads.
    """
    ctors = _constructors(algorithms)
    workers = workers if workers > 0 else (os.cpu_count() or 1)
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    source = iter(paths)
    lane = threading.Lock()
    results: queue.Queue = queue.Queue(maxsize=4 * workers)
    stop = threading.Event()
    end = object()

    def work() -> None:
        buf = bytearray(BIG_CHUNK)
        view = memoryview(buf)
        batch: list[Hashed] = []
        hashed = 0

        def emit(item: Hashed) -> None:
            nonlocal batch, hashed
            batch.append(item)
            hashed += item.size
            if len(batch) >= RESULT_BATCH or hashed >= RESULT_BYTES:
                results.put(batch)
                batch, hashed = [], 0

        try:
            exhausted = False
            while not exhausted and not stop.is_set():
                big = None
                with lane:
                    while big is None and not stop.is_set():
                        path = next(source, end)
                        if path is end:
                            exhausted = True
                            break
                        try:
                            fd = os.open(path, flags)
                            size = os.fstat(fd).st_size
                        except OSError as exc:
                            emit(_failed(path, exc))
                            continue
                        if size >= BIG_FILE:
                            big = (path, fd)
                        else:
                            emit(_hash_fd(path, fd, ctors, buf, view, size))
                if big is not None:
                    emit(_hash_fd(big[0], big[1], ctors, buf, view))
            if batch:
                results.put(batch)
        except BaseException as exc:  # surfaced in the consumer's thread, never lost
            results.put(exc)
        finally:
            results.put(end)

    threads = [threading.Thread(target=work, name=f"hash-{i}", daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    running = len(threads)
    try:
        while running:
            got = results.get()
            if got is end:
                running -= 1
            elif isinstance(got, BaseException):
                raise got
            else:
                yield from got
    finally:
        stop.set()
        while any(t.is_alive() for t in threads):  # unblock workers waiting on a full queue
            try:
                results.get(timeout=0.05)
            except queue.Empty:
                pass
