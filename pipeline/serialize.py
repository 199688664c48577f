"""A bag as one file for deposit: tar, tar.gz or zip, written deterministically.

Same bag, same timestamp => same bytes: entries sorted, one top-level folder named after the bag,
every mtime the run's timestamp, uid/gid 0 and no user or group names, fixed modes, gzip header
without a file name.  The archive is hashed (SHA-256) while it is written, for the `.sha256`
sidecar (`<digest>  <file name>`, the format `sha256sum -c` reads).
"""
from __future__ import annotations

import gzip
import os
import tarfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from . import durable
from .errors import PackagingError
from .hashing import CHUNK
from .xmlio import HashingWriter

EXTENSIONS = {"tar": ".tar", "tar.gz": ".tar.gz", "zip": ".zip"}
ZIP_EPOCH = datetime(1980, 1, 1, tzinfo=timezone.utc)
ZIP_END = datetime(2107, 12, 31, 23, 59, 58, tzinfo=timezone.utc)   # the last time a zip entry holds
GZIP_END = 2**32 - 1                                                # the gzip header's MTIME: 32 bits


class ArchiveWriter(HashingWriter):
    """A write-only, non-seekable file (zipfile then writes data descriptors instead of seeking
    back), hashing what passes through it."""

    def tell(self) -> int:
        return self.size

    def seekable(self) -> bool:
        return False

    def seek(self, *args):
        raise OSError("not seekable")

    def flush(self) -> None:
        self.raw.flush()


def bag_entries(bag: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, path) of every folder and file in the bag, parents first, sorted."""
    out: list[tuple[str, Path]] = []
    for folder, dirs, names in os.walk(bag):
        base = Path(folder)
        for name in dirs + names:
            path = base / name
            if path.is_symlink():
                raise PackagingError(f"{path}: a symbolic link cannot be serialized")
            out.append((path.relative_to(bag).as_posix(), path))
    return sorted(out, key=lambda e: e[0].split("/"))


def _write_tar(entries, root: str, out: BinaryIO, mtime: int) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for rel, path in [("", None), *entries]:
            info = tarfile.TarInfo(f"{root}/{rel}".rstrip("/"))
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
            if path is None or path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            info.mode, info.size = 0o644, path.stat().st_size
            with open(path, "rb") as f:
                tar.addfile(info, f)


def _write_zip(entries, root: str, out: BinaryIO, when: datetime) -> None:
    stamp = min(max(when, ZIP_EPOCH), ZIP_END).timetuple()[:6]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for rel, path in [("", None), *entries]:
            is_dir = path is None or path.is_dir()
            info = zipfile.ZipInfo(f"{root}/{rel}".rstrip("/") + ("/" if is_dir else ""), stamp)
            info.create_system = 3
            if is_dir:
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
                continue
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            size = path.stat().st_size
            with open(path, "rb") as fin, zf.open(info, "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as fout:
                while chunk := fin.read(CHUNK):
                    fout.write(chunk)


def write_archive(bag: Path, dest: Path, fmt: str, when: datetime, root: str = "") -> str:
    """Write `bag` as one `fmt` file at `dest`; returns its SHA-256 hex digest.

    Made durable by the barrier before publishing (pipeline/durable.py).

    `root` is the archive's top-level folder (default: the bag folder's name).
    """
    if fmt not in EXTENSIONS:
        raise PackagingError(f"unknown serialization {fmt!r} (use {', '.join(EXTENSIONS)})")
    root = root or bag.name
    entries = bag_entries(bag)
    mtime = int(when.timestamp())
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(dest, "wb") as raw:
            out = ArchiveWriter(raw, ["sha256"])
            if fmt == "zip":
                _write_zip(entries, root, out, when.astimezone(timezone.utc))
            elif fmt == "tar":
                _write_tar(entries, root, out, mtime)
            else:
                with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=min(mtime, GZIP_END),
                                   compresslevel=6) as gz:
                    _write_tar(entries, root, gz, mtime)
            durable.started(raw, out.size)
    except OSError as exc:
        raise PackagingError(f"{dest}: could not write the {fmt} file: {exc.strerror or exc}") from exc
    return out.digests()["sha256"]


def sidecar_text(digest: str, archive_name: str) -> str:
    return f"{digest}  {archive_name}\n"
