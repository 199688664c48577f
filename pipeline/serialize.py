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
from typing import BinaryIO, Optional

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


def _tar_info(name: str, mtime: int, size: Optional[int]) -> tarfile.TarInfo:
    """The entry of a file of `size` bytes (None: a folder) named `name`."""
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
    if size is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.mode, info.size = 0o644, size
    return info


def _write_tar(entries, root: str, out: BinaryIO, mtime: int) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for rel, path in [("", None), *entries]:
            if path is None or path.is_dir():
                tar.addfile(_tar_info(f"{root}/{rel}".rstrip("/"), mtime, None))
                continue
            with open(path, "rb") as f:
                tar.addfile(_tar_info(f"{root}/{rel}", mtime, path.stat().st_size), f)


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
            # ZIP64 sizes when the deflated data may pass 4 GiB - 1 (incompressible bytes grow)
            zip64 = deflate_bound(size) >= zipfile.ZIP64_LIMIT
            with open(path, "rb") as fin, zf.open(info, "w", force_zip64=zip64) as fout:
                while chunk := fin.read(CHUNK):
                    fout.write(chunk)


# The most a zip entry adds beyond its name (twice: local header and central directory) and its
# data: local header 30, ZIP64 extra field 20, data descriptor 24 (ZIP64 sizes), central
# directory header 46, ZIP64 extra field 28 (sizes and offset); and the end of the central
# directory: 22, with its ZIP64 record 56 and locator 20.  zipfile writes no other field.
ZIP_ENTRY, ZIP_END_RECORDS = 30 + 20 + 24 + 46 + 28, 22 + 56 + 20
GZIP_FRAME = 10 + 8         # gzip header (no file name, no extra field) and trailer (CRC, size)
MAX_TAR_OCTAL = 0o77777777777   # the largest size a ustar header holds; past it a PAX record does
DEFLATE_BLOCKS = 13         # zlib's deflateBound constant (with its 6-byte zlib frame: a raw stream has less)


def deflate_bound(n: int) -> int:
    """The most bytes deflate makes of `n` bytes, whatever they hold: zlib's deflateBound() for
    its default window and memory level (zipfile and gzip use both; level 6), which zlib
    guarantees for a stream compressed with Z_NO_FLUSH and ended with Z_FINISH, as both write."""
    return n + (n >> 12) + (n >> 14) + (n >> 25) + DEFLATE_BLOCKS


class Bound:
    """An upper bound of the size of a bag as `fmt` writes it (None: the bag folder, counted by
    its files' bytes), counted entry by entry: the sum of file(), folder() and grown() of every
    entry, plus the bytes of the files grown() counts, gives total() its bound.  `root` is the
    longest top-level folder the archive may have, `when` the run's time (tar headers hold it).

    tar: each entry's header exactly as _write_tar writes it (a PAX header before it for a long
    or non-ASCII name), its data padded to 512 bytes; the two zero blocks of the end, and the
    whole padded to tarfile's 10240-byte records.  zip: ZIP_ENTRY and the name twice per entry,
    the data deflate_bound() (folders are stored, empty), the end records; deflate_bound of
    the sum is at least the sum of its parts' bounds.  tar.gz: the tar's bound deflated in one
    stream, with the gzip header and trailer.  Nothing is ever counted smaller than the bag
    folder's bytes, so the bound holds for the folder as well."""

    def __init__(self, fmt: Optional[str], root: str = "", when: Optional[datetime] = None) -> None:
        self.fmt, self.root = fmt, root
        self.mtime = int(when.timestamp()) if when else 0
        self._tar_headers: dict[tuple, int] = {}

    def _header(self, rel: str, size: Optional[int]) -> int:
        name = f"{self.root}/{rel}".rstrip("/")
        length = len(name.encode("utf-8"))
        if self.fmt == "zip":
            return ZIP_ENTRY + 2 * (length + (size is None))
        # A tar header's length depends on no more than this (a PAX record's on its value's
        # length): each shape is made once (tobuf takes some 100 us)
        shape = (length, name.isascii(), size is None, size if size and size > MAX_TAR_OCTAL else 0)
        if shape not in self._tar_headers:
            self._tar_headers[shape] = len(_tar_info(name, self.mtime, size).tobuf(
                tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        return self._tar_headers[shape]

    def file(self, rel: str, size: int) -> int:
        """The bytes the file `rel` (bag path) of `size` bytes adds, before total()."""
        if not self.fmt:
            return size
        return self._header(rel, size) + self._data(size)

    def folder(self, rel: str) -> int:
        """The bytes the folder `rel` ("": the top one) adds, before total()."""
        return self._header(rel, None) if self.fmt else 0

    def grown(self, rel: str, most: int) -> int:
        """The bytes a file of at most `most` bytes adds but its bytes (counted apart): a tag
        file, the METS, a manifest, whose size is known only when written."""
        if not self.fmt:
            return 0
        return self._header(rel, most) + self._data(0) + (tarfile.BLOCKSIZE - 1 if self.fmt != "zip" else 0)

    def _data(self, size: int) -> int:
        """A file's data as counted: zip, its bytes and deflate's constant (total() adds the
        rest of deflate_bound); tar, its bytes padded to 512."""
        if self.fmt == "zip":
            return size + DEFLATE_BLOCKS
        return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE

    def total(self, counted: int) -> int:
        """The bound of the whole, from the sum of its entries' counts."""
        if not self.fmt:
            return counted
        if self.fmt == "zip":
            return deflate_bound(counted) - DEFLATE_BLOCKS + ZIP_END_RECORDS
        records = -(-(counted + 2 * tarfile.BLOCKSIZE) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE
        return records if self.fmt == "tar" else deflate_bound(records) + GZIP_FRAME


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
