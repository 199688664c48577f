"""Serialized bags (tar, tar.gz, tar.bz2, tar.xz, zip) read as streams, never unpacked to disk.

The bag is the single top-level folder of the archive.  Entries that would land outside it (an
absolute name, a `..` component, a drive letter: "zip-slip"), links and devices are refused with a
problem and never read.  The tag files verify parses (bagit.txt, bag-info.txt, manifests, tag
manifests, fetch.txt) are kept in memory; every other file is hashed while it streams past.  A compressed tar is decompressed here (gzip, bzip2 or xz, by its magic bytes) and
read to the end of the compressed stream after the tar's end blocks, so a cut or a bad CRC is
found.  A tar is read once with `tarfile` in streaming mode ('r|'): its files are
hashed with the algorithms of the manifests seen so far (or SHA-256 and SHA-512 before any), and a
second streaming pass computes only what the first one could not guess.  A zip is read through its
central directory: tag files first, then each payload member streamed once with the right
algorithms.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional

from .bag import MANIFEST_RE, Listing
from .errors import Problem
from .hashing import CHUNK, hash_bytes, hash_file, hash_stream, new_hashers

GUESS = ("sha256", "sha512")       # what a tar's files are hashed with before any manifest is seen
SPECIAL = "device, fifo or other special entry"
KEEP_LIMIT = 256 << 20             # tag files verify parses are kept in memory up to this size
PARSED = ("bagit.txt", "bag-info.txt", "package-info.txt", "fetch.txt")   # and the manifests
_DRIVE = re.compile(r"^[A-Za-z]:")
# zipfile raises RuntimeError for an encrypted member, NotImplementedError for an unknown method.
_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError,
           RuntimeError, NotImplementedError)

# MIME types of each serialization, as BagIt profiles name them in Accept-Serialization.
MIME = {
    "zip": ("application/zip",),
    "tar": ("application/tar", "application/x-tar"),
    "tar.gz": ("application/gzip", "application/x-gzip", "application/tar+gzip", "application/x-gtar"),
    "tar.bz2": ("application/x-bzip2",),
    "tar.xz": ("application/x-xz",),
}

Result = tuple[str, Optional[int], Optional[dict], str]   # (relpath, size, digests, error)

# The decompressor of each compressed tar: each checks its stream's CRC and end when read to EOF.
_DECOMPRESS = {"tar.gz": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
               "tar.bz2": bz2.BZ2File, "tar.xz": lzma.LZMAFile}


def kind_of(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(6)
    if zipfile.is_zipfile(path):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[:3] == b"BZh":
        return "tar.bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "tar.xz"
    return "tar"


def kept(rel: str, size: int) -> bool:
    """True for a tag file that verify parses, read whole into memory; any other file streams."""
    return (rel in PARSED or bool(MANIFEST_RE.match(rel))) and size <= KEEP_LIMIT


def unsafe_reason(name: str) -> str:
    """Why an archive entry name would escape the extraction folder, or ''."""
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "absolute name"
    if ".." in re.split(r"[/\\]", name):
        return "'..' climbs out of the bag"
    return ""


def zip_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as its writer meant it.  zipfile decodes a name without the UTF-8 flag
    (0x800) as cp437, but Info-ZIP writes such names in UTF-8, or adds the UTF-8 name in a
    Unicode Path extra field (0x7075: version 1, CRC-32 of the header name, the name)."""
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.orig_filename.encode("cp437")          # cp437 maps every byte: the header's bytes
    extra = info.extra
    while len(extra) >= 4:
        tag, size = struct.unpack_from("<HH", extra)
        body, extra = extra[4:4 + size], extra[4 + size:]
        if tag == 0x7075 and len(body) > 5 and body[0] == 1 and body[1:5] == struct.pack("<I", zlib.crc32(raw)):
            raw = body[5:]
            break
    try:
        return zipfile.ZipInfo(raw.decode("utf-8")).filename
    except UnicodeDecodeError:
        return info.filename


class _HashingReader:
    """A file wrapper that hashes every byte read through it (the archive's own SHA-256)."""

    def __init__(self, f, want: bool) -> None:
        self.f = f
        self.h = new_hashers(["sha256"])["sha256"] if want else None

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        if self.h is not None:
            self.h.update(data)
        return data

    def drain(self) -> str:
        if self.h is None:
            return ""
        while self.read(1 << 20):
            pass
        return self.h.hexdigest()


class _Unreadable:
    """A member that cannot be opened (a zip entry's damaged header): reading it says why."""

    def __init__(self, why: str) -> None:
        self.why = why

    def read(self, n: int = -1) -> bytes:
        raise OSError(self.why)


class _Guarded:
    """A member's stream whose read errors (a bad CRC, a cut compressed stream) are OSErrors."""

    def __init__(self, f) -> None:
        self.f = f

    def read(self, n: int = -1) -> bytes:
        try:
            return self.f.read(n)
        except _ERRORS as exc:
            raise OSError(str(exc)) from exc


class ArchiveBag:
    """A serialized bag.  `problems` holds what the scan refused; `listing` what the bag holds."""

    def __init__(self, path: Path, progress=None, checksums: bool = True) -> None:
        """Scan the archive.  Without `checksums` (a completeness check: `--fast`) nothing is
        hashed, neither the payload files as they pass nor the archive for its sidecar, and an
        uncompressed tar's file data is skipped by seeking, not read."""
        self.path = Path(path)
        self._checksums = checksums
        self.kind = "tar"
        self.label = self.path.name
        self.problems: list[Problem] = []
        self.listing = Listing()
        self.root = ""                       # the bag's folder name inside the archive
        self.sha256 = ""                     # the whole archive's SHA-256, when a sidecar asks for it
        self._kept: dict[str, bytes] = {}
        self._digests: dict[str, dict[str, str]] = {}
        self._members: dict[str, str] = {}   # relpath -> member name
        self._zip_entries: dict[str, zipfile.ZipInfo] = {}   # relpath -> its first (admitted) entry
        self._seen_algs: set[str] = set()
        self._outside: set[str] = set()
        self._sidecar = self.path.with_name(self.path.name + ".sha256")
        self._progress = progress
        try:
            self.kind = kind_of(self.path)
            self._scan_zip() if self.kind == "zip" else self._scan_tar()
        except _ERRORS as exc:
            self.problems.append(Problem("archive.unreadable", "", f"{self.label}: {exc}"))
        self._check_sidecar()
        self._check_name()

    def _check_name(self) -> None:
        base = re.sub(r"\.(tar(\.(gz|bz2|xz))?|tgz|zip)$", "", self.path.name)
        if self.root and self.readable and self.root != base:
            self.problems.append(Problem("archive.layout", self.root, f"the bag folder should be named "
                                         f"like the archive ({base!r})", severity="warning"))

    @property
    def readable(self) -> bool:
        return not any(p.code == "archive.unreadable" for p in self.problems)

    # -- names ----------------------------------------------------------------------------------

    def _relpath(self, name: str, is_dir: bool) -> Optional[str]:
        """The entry's path inside the bag, or None when it is refused or is the bag folder itself."""
        reason = unsafe_reason(name)
        if reason:
            self.problems.append(Problem("archive.unsafe", name, f"entry refused: {reason}"))
            return None
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if not parts:
            return None
        if not self.root and (is_dir or len(parts) > 1):
            self.root = parts[0]
        if parts[0] != self.root or (len(parts) == 1 and not is_dir):
            if parts[0] not in self._outside:   # one problem per stray top-level name
                self._outside.add(parts[0])
                self.problems.append(Problem("archive.layout", name, "entry beside the bag folder "
                                             f"{self.root or '(none yet)'!r}; not read"))
            return None
        rel = "/".join(parts[1:])
        if rel and rel in self._members:
            self.problems.append(Problem("archive.duplicate", rel, "the archive holds this entry twice"))
            return None
        if rel:
            self._members[rel] = name
        return rel or None

    def _admit(self, name: str, is_dir: bool, refused: str) -> Optional[str]:
        """The relpath of a regular file entry; None for a refused entry or a folder (listed)."""
        if refused:
            self.problems.append(Problem("archive.link", name, f"{refused}: refused, never followed"))
            return None
        rel = self._relpath(name, is_dir)
        if rel is not None and is_dir:
            self.listing.dirs.append(rel)
            return None
        return rel

    def _keep_or_hash(self, rel: str, size: int, stream, algorithms) -> None:
        self.listing.files[rel] = size
        if kept(rel, size):
            self._kept[rel] = stream.read()
            m = MANIFEST_RE.match(rel)
            if m:
                self._seen_algs.add(m.group(2).lower())
        elif self._checksums:
            _, self._digests[rel] = hash_stream(stream, algorithms)

    # -- tar ------------------------------------------------------------------------------------

    def _tar_members(self, reader, seek: bool = False) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
        """The members in order; streamed ('r|'), or with `seek` read by seeking past the data
        of members nobody reads.  A compressed stream is then read to its end, so that a cut or a
        bad CRC after the tar's end blocks raises."""
        decompress = _DECOMPRESS.get(self.kind)
        stream = decompress(reader) if decompress else reader
        with tarfile.open(fileobj=stream, mode="r:" if seek else "r|") as tf:
            for member in tf:
                yield tf, member
        while decompress and stream.read(CHUNK):
            pass

    def _scan_tar(self) -> None:
        total = self.path.stat().st_size
        with open(self.path, "rb") as raw:
            reader = _HashingReader(raw, self._checksums and self._sidecar.is_file())
            source = reader if self._checksums else raw
            for tf, member in self._tar_members(source, seek=not self._checksums):
                refused = (f"link to {member.linkname!r}" if member.issym() or member.islnk() else
                           "" if member.isreg() or member.isdir() else SPECIAL)
                rel = self._admit(member.name, member.isdir(), refused)
                if rel is not None:
                    algorithms = sorted(self._seen_algs) or GUESS
                    self._keep_or_hash(rel, member.size, tf.extractfile(member), algorithms)
                if self._progress:
                    self._progress("verify", raw.tell(), total)
            self.sha256 = reader.drain()

    def _rehash_tar(self, wanted: Mapping[str, Iterable[str]]) -> dict[str, dict[str, str]]:
        by_member = {self._members[rel]: rel for rel in wanted}
        out: dict[str, dict[str, str]] = {}
        with open(self.path, "rb") as raw:
            for tf, member in self._tar_members(_HashingReader(raw, False)):
                rel = by_member.get(member.name)
                if rel is not None and member.isreg() and rel not in out:   # a duplicate's first entry
                    _, out[rel] = hash_stream(tf.extractfile(member), sorted(wanted[rel]))
        return out

    # -- zip ------------------------------------------------------------------------------------

    def _scan_zip(self) -> None:
        with zipfile.ZipFile(self.path) as zf:
            for info in zf.infolist():
                mode = info.external_attr >> 16
                refused = ("symbolic link" if stat.S_ISLNK(mode) else
                           SPECIAL if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR) else "")
                rel = self._admit(zip_name(info), info.is_dir(), refused)
                if rel is None:
                    continue
                self._zip_entries[rel] = info
                self.listing.files[rel] = info.file_size
                if kept(rel, info.file_size):
                    self._kept[rel] = zf.read(info)
        if self._checksums and self._sidecar.is_file():
            self.sha256 = hash_file(self.path, ["sha256"])[1]["sha256"]

    def _hash_zip(self, wanted: Mapping[str, Iterable[str]]) -> Iterator[Result]:
        with zipfile.ZipFile(self.path) as zf:
            for rel, algorithms in wanted.items():
                try:
                    with zf.open(self._zip_entries[rel]) as f:
                        size, digests = hash_stream(f, sorted(algorithms))
                except _ERRORS as exc:
                    yield rel, None, None, str(exc)
                    continue
                yield rel, size, digests, ""

    # -- what verify asks -----------------------------------------------------------------------

    def read(self, rel: str) -> bytes:
        """A top-level tag file's bytes (KeyError when the archive has no such file)."""
        return self._kept[rel]

    def members(self, wanted: Callable[[str], bool]) -> Iterator[tuple[str, _Guarded]]:
        """The listed files of the bag that `wanted` accepts (relpath -> bool), each as a stream
        good until the next is asked for, in the archive's order and in one pass (a compressed
        tar is decompressed once, up to the last one wanted).  Read errors raise OSError."""
        try:
            if self.kind == "zip":
                with zipfile.ZipFile(self.path) as zf:
                    for rel, info in self._zip_entries.items():
                        if rel in self.listing.files and wanted(rel):
                            try:
                                f = zf.open(info)
                            except _ERRORS as exc:      # this entry's header: the others still read
                                yield rel, _Unreadable(f"{self.label}: {rel}: {exc}")
                                continue
                            with f:
                                yield rel, _Guarded(f)
                return
            names = {name: rel for rel, name in self._members.items() if rel in self.listing.files and wanted(rel)}
            if not names:
                return
            with open(self.path, "rb") as raw:
                for tf, member in self._tar_members(raw, seek=True):
                    rel = names.get(member.name)
                    if rel is not None and member.isreg():      # a refused link of that name aside
                        del names[member.name]
                        yield rel, _Guarded(tf.extractfile(member))
                        if not names:
                            return
        except _ERRORS as exc:
            raise OSError(f"{self.label}: {exc}") from exc

    def digests(self, wanted: Mapping[str, Iterable[str]], workers: int = 1, progress=None) -> Iterator[Result]:
        """Size and digests of each wanted file (relpath -> algorithms), streamed from the archive."""
        kept = {rel: algs for rel, algs in wanted.items() if rel in self._kept}
        for rel, algorithms in kept.items():
            data = self._kept[rel]
            yield rel, len(data), hash_bytes(data, algorithms), ""
        rest = {rel: algs for rel, algs in wanted.items() if rel not in self._kept}
        if self.kind == "zip":
            yield from self._hash_zip(rest)
            return
        missing = {rel: algs for rel, algs in rest.items() if not set(algs) <= set(self._digests.get(rel, {}))}
        try:
            extra = self._rehash_tar(missing) if missing else {}
        except _ERRORS as exc:
            extra = {}
            self.problems.append(Problem("archive.unreadable", "", f"{self.label}: {exc}"))
        for rel, algorithms in rest.items():
            digests = extra.get(rel) if rel in missing else self._digests.get(rel)
            if digests is None:
                yield rel, None, None, "could not be read from the archive"
            else:
                yield rel, self.listing.files.get(rel), digests, ""

    def _check_sidecar(self) -> None:
        if not self._sidecar.is_file() or not self.sha256:
            return
        try:
            text = self._sidecar.read_text(encoding="utf-8", errors="replace").strip()
        except OSError as exc:
            self.problems.append(Problem("io.read", self._sidecar.name, f"could not be read: {exc}"))
            return
        first = text.split()[0].lower() if text else ""
        if not re.fullmatch(r"[0-9a-f]{64}", first):
            self.problems.append(Problem("archive.sidecar", self._sidecar.name,
                                         "not a SHA-256 checksum file ('HEX  NAME')"))
        elif first != self.sha256:
            self.problems.append(Problem("archive.sidecar", self._sidecar.name,
                                         f"says {first}, the archive's SHA-256 is {self.sha256}"))
        named = text.split(None, 1)[1].strip().lstrip("*") if len(text.split(None, 1)) > 1 else ""
        if named and named != self.path.name:
            self.problems.append(Problem("archive.sidecar", self._sidecar.name,
                                         f"names {named!r}, not {self.path.name!r}", severity="warning"))
