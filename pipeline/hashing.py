"""Hashing: every algorithm of a file in one read, while it is written or copied."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO, Iterable, Mapping

CHUNK = 1 << 20  # 1 MiB reads: hashlib releases the GIL on buffers this size

SUPPORTED = ("md5", "sha1", "sha256", "sha512")


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


def write_hashed(dest: Path, data: bytes, algorithms: Iterable[str]) -> tuple[int, dict[str, str]]:
    """Write bytes to `dest` atomically (temp name, fsync, rename) and return size and digests."""
    digests = hash_bytes(data, algorithms)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    return len(data), digests


def copy_hashed(src: Path, dest: Path, algorithms: Iterable[str]) -> tuple[int, dict[str, str]]:
    """Copy `src` to `dest` (temp name, then rename), hashing the bytes as they pass."""
    hashers = new_hashers(algorithms)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    size = 0
    with open(src, "rb", buffering=0) as fin, open(tmp, "wb") as fout:
        while True:
            chunk = fin.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            for h in hashers.values():
                h.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, dest)
    return size, {alg: h.hexdigest() for alg, h in hashers.items()}


def same_digests(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    common = set(a) & set(b)
    return bool(common) and all(a[k].lower() == b[k].lower() for k in common)
