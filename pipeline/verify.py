"""`pipeline verify`: full RFC 8493 validation of any bag, folder or serialized (BagIt 0.93 to 1.0).

    verify_bag(path) -> Report          every problem, each named with its file and reason

What is checked, in order: bagit.txt's exact grammar; bag-info.txt (Payload-Oxum format and value,
Bagging-Date, Bag-Count, repeated elements); every manifest's lines (RFC 8493 percent-decoding of
`%0A`, `%0D`, `%25` in either case and nothing else, md5sum-style `*` lines as warnings, checksum
lengths, duplicates, unsafe paths); completeness (every payload file in EVERY payload manifest,
every listed file present, fetch.txt entries fetched); fixity (each file read once for all its
algorithms, in parallel); then, for this project's own packages, the METS; then a BagIt profile.

Nothing outside the bag is read: the bag is listed without following links, a manifest path that
is absolute or holds `..` is refused before any file is opened, and only files found by that
listing are opened (with O_NOFOLLOW).  Names that differ only by Unicode normalization between a
manifest and the disk are matched and warned about; two such names on disk are an error.
"""
from __future__ import annotations

import codecs
import hashlib
import os
import re
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from . import bag as bagmod
from .bagwrite import PROFILE_ID
from .pools import shut, worker_pool
from .archive import ArchiveBag, Result
from .bag import Listing, Manifest, decode_path, list_bag, nfc, parse_manifest_bytes, parse_tags
from .errors import Problem, UsageError
from .hashing import CHUNK, hash_bytes, hash_stream

Progress = Callable[[str, int, int], None]

KNOWN_VERSIONS = ((0, 93), (0, 94), (0, 95), (0, 96), (0, 97), (1, 0))
NOT_REPEATABLE = ("Payload-Oxum", "Bagging-Date", "Bag-Size", "Bag-Group-Identifier", "Bag-Count")
BATCH_FILES, BATCH_BYTES = 256, 8 << 20


@dataclass
class Report:
    """The verdict on one bag."""

    bag: str                              # as named by the caller
    problems: list[Problem] = field(default_factory=list)
    version: str = ""
    files: int = 0                        # payload files
    bytes: int = 0                        # payload bytes
    hashed: int = 0                       # files whose checksums were computed
    serialization: str = ""               # "" for a folder, else tar / tar.gz / zip ...
    info: list[tuple[str, str]] = field(default_factory=list)   # bag-info.txt elements

    @property
    def valid(self) -> bool:
        return not any(p.is_error for p in self.problems)

    def as_dict(self) -> dict:
        return {"bag": self.bag, "valid": self.valid, "version": self.version,
                "serialization": self.serialization or "folder", "payload_files": self.files,
                "payload_bytes": self.bytes, "hashed": self.hashed,
                "problems": [p.as_dict() for p in self.problems]}


# -- reading a bag folder -------------------------------------------------------------------------

def _open_nofollow(path: str):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    return open(fd, "rb", buffering=0)


def _hash_batch(root: str, batch: list[tuple[str, tuple[str, ...], int]]) -> list[Result]:
    """Hash files of one folder bag: every algorithm of a file in one read (picklable worker)."""
    out: list[Result] = []
    for rel, algorithms, size in batch:
        try:
            with _open_nofollow(os.path.join(root, rel)) as f:
                if size < CHUNK:   # small file: one read, no 1 MiB buffer per file
                    data = f.read()
                    out.append((rel, len(data), hash_bytes(data, algorithms), ""))
                else:
                    n, digests = hash_stream(f, algorithms)
                    out.append((rel, n, digests, ""))
        except OSError as exc:
            out.append((rel, None, None, exc.strerror or str(exc)))
    return out


def _batches(root: str, wanted: dict[str, dict], sizes: dict[str, int]) -> Iterator[list]:
    batch, total = [], 0
    for rel, algorithms in wanted.items():
        size = sizes.get(rel, 0)
        batch.append((rel, tuple(sorted(algorithms)), size))
        total += size
        if len(batch) >= BATCH_FILES or total >= BATCH_BYTES:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


class FolderBag:
    """A bag that is a folder on disk."""

    def __init__(self, path: Path, workers: int = 1) -> None:
        self.path = path
        self.label = str(path)
        self.problems: list[Problem] = []
        self.listing: Listing = list_bag(path)
        self.readable = True
        self._pool: Optional[ProcessPoolExecutor] = None
        if workers > 1 and len(self.listing.files) >= 64:
            # Fork the workers now, while this process holds only the listing, not the manifests.
            self._pool = worker_pool(workers)
            list(self._pool.map(abs, range(workers)))

    def close(self) -> None:
        if self._pool is not None:
            shut(self._pool)
            self._pool = None

    def read(self, rel: str) -> bytes:
        with _open_nofollow(os.path.join(self.path, rel)) as f:
            return f.read()

    def digests(self, wanted: dict[str, dict], workers: int = 1,
                progress: Optional[Progress] = None) -> Iterator[Result]:
        done = 0
        for results in self._hash_batches(wanted, workers):
            done += len(results)
            yield from results
            if progress:
                progress("verify", done, len(wanted))

    def _hash_batches(self, wanted: dict[str, dict], workers: int) -> Iterator[list[Result]]:
        root = str(self.path)
        batches = _batches(root, wanted, self.listing.files)
        if self._pool is None or len(wanted) < 64:
            yield from (_hash_batch(root, batch) for batch in batches)
            return
        # A bounded number of batches in flight: memory does not grow with the number of files.
        pending: set = set()
        for batch in batches:
            pending.add(self._pool.submit(_hash_batch, root, batch))
            if len(pending) >= 2 * workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (fut.result() for fut in finished)
        yield from (fut.result() for fut in pending)


def open_bag(path: Path, progress: Optional[Progress] = None, workers: int = 1, fast: bool = False):
    path = Path(path)
    if path.is_dir():
        return FolderBag(path, workers)
    if path.is_file():
        return ArchiveBag(path, progress, checksums=not fast)
    raise UsageError(f"{path}: no such bag (neither a folder nor a tar or zip file)")


# -- the checks -----------------------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def path_problem(rel: str) -> str:
    """Why a manifest or fetch path is unsafe or not a plain relative path, or ''."""
    if rel.startswith("/") or _DRIVE.match(rel):
        return "absolute path"
    if "/." not in rel and "//" not in rel and not rel.startswith(".") and not rel.endswith("/"):
        return ""   # the common case, without splitting
    parts = rel.split("/")
    if ".." in parts:
        return "'..' climbs out of the bag"
    if "" in parts or "." in parts:
        return "empty or '.' path component"
    return ""


class Checker:
    """Collects every problem of one bag; `run()` returns the Report."""

    def __init__(self, source, label: str, fast: bool, workers: int,
                 progress: Optional[Progress]) -> None:
        self.src = source
        self.fast = fast
        self.workers = workers
        self.progress = progress
        self.report = Report(bag=label, serialization=getattr(source, "kind", ""))
        self.version = (1, 0)
        self.encoding = "utf-8"
        self.manifests: list[Manifest] = []
        self.fetch: dict[str, tuple[str, str, int]] = {}      # relpath -> (url, length, line)
        self.mismatched: set[str] = set()     # files whose digests disagree with a manifest

    def add(self, code: str, path: str, reason: str, field: str = "", severity: str = "") -> None:
        self.report.problems.append(Problem(code, path, reason, field, severity))

    def read_text(self, rel: str, code: str) -> Optional[str]:
        try:
            return self.src.read(rel).decode(self.encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            self.add(code, rel, f"does not decode as {self.encoding}: {exc}")
        except (KeyError, OSError) as exc:
            self.add("io.read", rel, f"could not be read: {exc}")
        return None

    # bagit.txt ---------------------------------------------------------------------------------

    def check_bagit_txt(self) -> None:
        files = self.src.listing.files
        if "bagit.txt" not in files:
            self.add("bag.not_a_bag", "bagit.txt", "missing: this is not a bag (checked as BagIt 1.0)")
            return
        try:
            data = self.src.read("bagit.txt")
        except (KeyError, OSError) as exc:
            self.add("io.read", "bagit.txt", f"could not be read: {exc}")
            return
        if data.startswith(codecs.BOM_UTF8):
            self.add("bagit.bom", "bagit.txt", "starts with a UTF-8 byte-order mark, which RFC 8493 forbids")
            data = data[3:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self.add("bagit.grammar", "bagit.txt", "is not UTF-8")
            return
        lines = [ln for ln in re.split(r"\r\n|\n|\r", text)]
        while lines and lines[-1] == "":
            lines.pop()
        expected = (("BagIt-Version", r"(\d+)\.(\d+)"), ("Tag-File-Character-Encoding", r"(\S+)"))
        for number, (label, value_re) in enumerate(expected, start=1):
            line = lines[number - 1] if len(lines) >= number else None
            m = re.fullmatch(re.escape(label) + r":[ \t]" + value_re, line) if line is not None else None
            if m is None:
                shown = "nothing" if line is None else repr(line)
                self.add("bagit.grammar", "bagit.txt",
                         f"expected exactly '{label}: ...' (no space before the colon), found {shown}",
                         f"line {number}")
        if len(lines) > 2:
            self.add("bagit.grammar", "bagit.txt", f"has {len(lines)} lines; exactly 2 are allowed", "line 3")
        tags = {t.label: t.value for t in parse_tags(text)}
        version = tags.get("BagIt-Version", "")
        m = re.fullmatch(r"(\d+)\.(\d+)", version)
        if m:
            self.version = (int(m.group(1)), int(m.group(2)))
            self.report.version = version
            if self.version not in KNOWN_VERSIONS:
                self.add("bagit.version", "bagit.txt", f"BagIt-Version {version} is not 0.93 to 1.0; "
                         "checked as BagIt 1.0", "BagIt-Version")
        elif version:
            self.add("bagit.grammar", "bagit.txt", f"BagIt-Version {version!r} is not M.N", "BagIt-Version")
        encoding = tags.get("Tag-File-Character-Encoding", "")
        if encoding:
            try:
                codecs.lookup(encoding)
                self.encoding = encoding
            except LookupError:
                self.add("bagit.encoding", "bagit.txt", f"unknown encoding {encoding!r}; read as UTF-8",
                         "Tag-File-Character-Encoding")

    # bag-info.txt ------------------------------------------------------------------------------

    @property
    def info_name(self) -> str:
        return "package-info.txt" if (0, 93) <= self.version <= (0, 95) else "bag-info.txt"

    def check_bag_info(self) -> None:
        name = self.info_name
        if name not in self.src.listing.files:
            return
        text = self.read_text(name, "baginfo.decode")
        if text is None:
            return
        text = text.lstrip("\ufeff")
        counts: dict[str, int] = {}
        for tag in parse_tags(text):
            where = f"line {tag.line}"
            if not tag.colon or not tag.label:
                self.add("baginfo.syntax", name, f"{tag.raw_label!r} is not 'Label: value'", where)
                continue
            if tag.raw_label != tag.label:
                self.add("baginfo.label", name, f"label {tag.raw_label!r} has whitespace around it", where)
            self.report.info.append((tag.label, tag.value))
            counts[tag.label] = counts.get(tag.label, 0) + 1
            if counts[tag.label] == 2 and tag.label in NOT_REPEATABLE:
                self.add("baginfo.repeated", name, f"{tag.label} must not be repeated", where,
                         "" if tag.label == "Payload-Oxum" else "warning")
            if tag.label == "Bagging-Date" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", tag.value):
                self.add("baginfo.date", name, f"Bagging-Date {tag.value!r} is not YYYY-MM-DD", where)
            if tag.label == "Bag-Count" and not re.fullmatch(r"\d+ of (\d+|\?)", tag.value):
                self.add("baginfo.bag_count", name, f"Bag-Count {tag.value!r} is not 'N of TOTAL'", where)
            if tag.label == "Payload-Oxum" and counts[tag.label] == 1:
                self.check_oxum(name, tag.value, where)

    def check_oxum(self, name: str, value: str, where: str) -> None:
        m = re.fullmatch(r"(\d+)\.(\d+)", value)
        if not m:
            self.add("baginfo.oxum_format", name, f"Payload-Oxum {value!r} is not OCTETCOUNT.STREAMCOUNT", where)
            return
        if any(rel not in self.payload for rel in self.fetch):
            return  # incomplete until fetched: fetch.pending says so
        octets, streams = int(m.group(1)), int(m.group(2))
        if (octets, streams) != (self.report.bytes, self.report.files):
            self.add("baginfo.oxum", name, f"Payload-Oxum says {octets} bytes in {streams} files; "
                     f"the payload has {self.report.bytes} bytes in {self.report.files} files", where)

    # manifests ---------------------------------------------------------------------------------

    def load_manifests(self) -> None:
        names = sorted(n for n in self.src.listing.files if "/" not in n and bagmod.MANIFEST_RE.match(n))
        if not any(n.startswith("manifest-") for n in names):
            self.add("bag.missing_manifest", "", "no payload manifest (manifest-ALGORITHM.txt)")
        for name in names:
            try:
                manifest = parse_manifest_bytes(name, self.src.read(name), self.encoding)
            except (UnicodeDecodeError, LookupError) as exc:
                self.add("manifest.decode", name, f"does not decode as {self.encoding}: {exc}")
                continue
            except (KeyError, OSError) as exc:
                self.add("io.read", name, f"could not be read: {exc}")
                continue
            if manifest.algorithm not in hashlib.algorithms_available:
                self.add("manifest.algorithm", name, f"algorithm {manifest.algorithm!r} is not available; "
                         "its checksums are not verified")
            if manifest.bom:
                self.add("manifest.bom", name, "starts with a byte-order mark")
            for line, reason in manifest.errors:
                self.add("manifest.line", name, reason, f"line {line}")
            for line in manifest.legacy_lines:
                self.add("manifest.legacy", name, "md5sum-style '*' before the path; read without it",
                         f"line {line}")
            manifest.entries = self.clean_entries(manifest)
            self.manifests.append(manifest)

    def clean_entries(self, manifest: Manifest) -> list:
        """Drop (and report) unsafe, out-of-scope, malformed and duplicate entries."""
        name = manifest.name
        try:
            length = hashlib.new(manifest.algorithm).digest_size * 2
        except ValueError:
            length = 0
        kept, seen, seen_nfc = [], {}, {}
        for e in manifest.entries:
            where = f"{name} line {e.line}"   # (cheap next to the hashing; kept simple)
            reason = path_problem(e.path)
            if reason:
                self.add("manifest.unsafe", e.path, f"{reason}; never read", where)
                continue
            in_payload = e.path.startswith("data/")
            if in_payload == manifest.tag:
                what = "a tag manifest lists a payload file" if manifest.tag else \
                    "a payload manifest lists a file outside data/"
                self.add("manifest.scope", e.path, what, where)
                continue
            if length and len(e.digest) != length:
                self.add("manifest.digest", e.path, f"{manifest.algorithm} checksums have {length} hex digits, "
                         f"this one has {len(e.digest)}", where)
                continue
            if e.path in seen:
                first = seen[e.path]
                same = first.digest == e.digest
                severity = "warning" if same and self.version < (1, 0) else ""
                self.add("manifest.duplicate", e.path, f"listed again (first at line {first.line}), "
                         + ("same checksum" if same else "with a different checksum"), where, severity)
                continue
            key = nfc(e.path)
            if key in seen_nfc:
                self.add("manifest.duplicate", e.path, f"differs from line {seen_nfc[key].line} "
                         "only by Unicode normalization", where)
                continue
            seen[e.path] = seen_nfc[key] = e
            kept.append(e)
        return kept

    # completeness ------------------------------------------------------------------------------

    def match_files(self) -> dict[str, dict[str, tuple]]:
        """Map each listed entry to a file of the listing; report missing and unlisted files.

        Returns disk relpath -> {algorithm: (expected digest, manifest name, line)}.
        """
        files = self.src.listing.files
        by_nfc: dict[str, str] = {}
        ambiguous: set[str] = set()
        for rel in sorted(files):
            key = nfc(rel)
            if key in by_nfc:
                ambiguous.add(key)
                self.add("file.normalization_conflict", rel,
                         f"differs from {by_nfc[key]!r} only by Unicode normalization")
            else:
                by_nfc[key] = rel
        wanted: dict[str, dict[str, tuple]] = {}
        missing: dict[str, list[str]] = {}
        warned: set[str] = set()
        covered: dict[str, set[str]] = {}      # manifest name -> the files it lists
        for m in self.manifests:
            mine = covered.setdefault(m.name, set())
            usable = m.algorithm in hashlib.algorithms_available
            for e in m.entries:
                rel = e.path
                if rel not in files:
                    key = nfc(rel)
                    rel = by_nfc.get(key) if key not in ambiguous else None
                    if rel is None:
                        missing.setdefault(e.path, []).append(f"{m.name} line {e.line}")
                        continue
                    if rel not in warned:
                        warned.add(rel)
                        self.add("file.normalization", rel, f"listed as {e.path!r} (another Unicode "
                                 "normalization of the same name)", f"{m.name} line {e.line}")
                mine.add(rel)
                if usable:
                    wanted.setdefault(rel, {})[m.algorithm] = (e.digest, m.name, e.line)
        for path, wheres in missing.items():
            if path in self.fetch:
                continue
            self.add("file.missing", path, f"listed in {', '.join(w.split(' line')[0] for w in wheres)} "
                     "but not in the bag", wheres[0])
        self.check_coverage(covered)
        return wanted

    def check_coverage(self, covered: dict[str, set[str]]) -> None:
        payload_manifests = [m.name for m in self.manifests if not m.tag]
        tag_manifests = [m.name for m in self.manifests if m.tag]
        severity = "warning" if self.version < (1, 0) else ""
        for rel in sorted(self.payload):
            lacking = [name for name in payload_manifests if rel not in covered[name]]
            if payload_manifests and len(lacking) == len(payload_manifests):
                self.add("file.unlisted", rel, "in the payload but in no payload manifest")
                continue
            for name in lacking:
                self.add("manifest.incomplete", rel, f"not listed in {name} (every payload manifest "
                         "must list every payload file)", name, severity)
        for rel in sorted(self.src.listing.files):
            if rel.startswith("data/") or rel.startswith("tagmanifest-"):
                continue
            for name in tag_manifests:
                if rel not in covered[name]:
                    self.add("tagmanifest.incomplete", rel, f"tag file not listed in {name}", name)

    # fetch.txt ---------------------------------------------------------------------------------

    def load_fetch(self) -> None:
        if "fetch.txt" not in self.src.listing.files:
            return
        text = self.read_text("fetch.txt", "fetch.line")
        for number, line in enumerate(re.split(r"\r\n|\n|\r", text or ""), start=1):
            if not line.strip():
                continue
            where = f"line {number}"
            m = re.fullmatch(r"(\S+)[ \t]+(\d+|-)[ \t]+(.+)", line)
            if not m:
                self.add("fetch.line", "fetch.txt", f"{line!r} is not 'URL LENGTH FILENAME'", where)
                continue
            url, length, rel = m.group(1), m.group(2), decode_path(m.group(3))
            reason = path_problem(rel)
            if reason or not rel.startswith("data/"):
                self.add("fetch.unsafe", "fetch.txt", f"{rel!r}: {reason or 'not under data/'}; ignored", where)
                continue
            if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]+", url) and not url.startswith("file:"):
                self.add("fetch.url", "fetch.txt", f"{url!r} is not a URL with a scheme and a host", where)
            self.fetch[rel] = (url, length, number)

    def check_fetch(self, listed: set[str]) -> None:
        for rel, (url, _, number) in self.fetch.items():
            where = f"fetch.txt line {number}"
            if rel not in listed:
                self.add("fetch.unlisted", rel, "listed in fetch.txt but in no payload manifest", where)
            if rel not in self.payload:
                self.add("fetch.pending", rel, f"not fetched yet from {url}: the bag is incomplete "
                         "(pipeline verify never fetches)", where)

    # fixity ------------------------------------------------------------------------------------

    def check_fixity(self, wanted: dict[str, dict[str, tuple]]) -> None:
        # The algorithms wanted for a file are the keys of its expectations: no second map is built.
        known = len(self.src.problems)
        for rel, size, digests, error in self.src.digests(wanted, self.workers, self.progress):
            expected = wanted[rel]
            if digests is None:
                self.add("io.read", rel, f"could not be read: {error}")
                continue
            self.report.hashed += 1
            for alg, (digest, manifest, line) in sorted(expected.items()):
                if digests.get(alg) != digest:
                    self.mismatched.add(rel)
                    self.add("file.mismatch", rel, f"{alg} is {digests.get(alg)}, the manifest says {digest}",
                             f"{manifest} line {line}")
        self.report.problems.extend(self.src.problems[known:])   # e.g. an archive damaged further on

    # the whole run -----------------------------------------------------------------------------

    def run(self) -> Report:
        listing = self.src.listing
        self.report.problems.extend(self.src.problems)
        for rel in listing.links:
            self.add("file.link", rel, "symbolic link; not followed")
        for rel in listing.special:
            self.add("file.special", rel, "not a regular file; not read")
        for rel, reason in listing.unreadable:
            self.add("io.read", rel, f"could not be listed: {reason}")
        if not self.src.readable:
            return self.report
        self.check_bagit_txt()
        if "bagit.txt" not in listing.files and not listing.files:
            return self.report
        dirs = set(listing.dirs) | {rel.rsplit("/", 1)[0] for rel in listing.files if "/" in rel}
        if "data" not in dirs and not any(r.startswith("data/") for r in listing.files):
            self.add("bag.missing_data", "data", "the payload folder data/ is missing")
        self.payload = {rel: size for rel, size in listing.files.items() if rel.startswith("data/")}
        self.report.files, self.report.bytes = len(self.payload), sum(self.payload.values())
        self.load_fetch()
        self.check_bag_info()
        self.load_manifests()
        wanted = self.match_files()
        self.check_fetch({e.path for m in self.manifests if not m.tag for e in m.entries})
        if not self.fast:
            self.check_fixity(wanted)
        return self.report


def _is_ours(report: Report) -> bool:
    """Whether the bag says it was made by this pipeline (our profile, or our software agent):
    only then is data/metadata/mets.xml our METS, held to our layout."""
    return any((label == "BagIt-Profile-Identifier" and value == PROFILE_ID) or
               (label == "Bag-Software-Agent" and value.startswith("preservation-pipeline "))
               for label, value in report.info)


def _check_mets(checker: Checker, source, schemas: Optional[Path]) -> None:
    if not _is_ours(checker.report):    # ours without its METS: describe.mets_missing
        return
    try:
        from .metscheck import ArchiveSource, FolderSource, check_mets
    except ImportError:
        checker.add("mets.unchecked", "data/metadata/mets.xml", "pipeline.metscheck is not installed; "
                    "METS consistency not checked")
        return
    # No file read again: sizes from the disk or the archive's listing, checksums against the
    # manifests, which the fixity pass (unless --fast) has just checked against every file.  A
    # file whose digests disagree with a manifest is reported as such already: its manifest
    # lines say nothing of the METS.  In an archive the METS and DC records stream from members.
    known: dict[str, dict[str, str]] = {}
    for m in checker.manifests:
        for e in m.entries:
            if e.path not in checker.mismatched:
                known.setdefault(e.path, {})[m.algorithm] = e.digest
    bag = FolderSource(source.path) if isinstance(source, FolderBag) else ArchiveSource(source)
    checker.report.problems.extend(check_mets(bag, schemas, rehash=False, known=known,
                                                inventory=source.listing.files))


def verify_bag(path: Path | str, *, fast: bool = False, workers: int = 0, schemas: Optional[Path] = None,
               profile: Optional[dict] = None, progress: Optional[Progress] = None,
               label: str = "") -> Report:
    """Validate one bag (a folder, or a tar/tar.gz/zip file) and return every problem found.

    `fast`: completeness and Payload-Oxum only, no checksums.  `workers`: processes hashing files
    (0 = all cores).  `schemas`: folder of the official XSDs for the METS of our own packages.
    `profile`: a loaded BagIt profile (see pipeline.profile.load_profile).
    Raises UsageError when `path` does not exist; every problem of the bag itself is in the Report.
    """
    path = Path(path)
    workers = workers if workers > 0 else (os.cpu_count() or 1)
    source = open_bag(path, progress, 1 if fast else workers, fast)
    try:
        checker = Checker(source, label or str(path), fast, workers, progress)
        report = checker.run()
    finally:
        getattr(source, "close", lambda: None)()
    if source.readable and "bagit.txt" in source.listing.files:
        _check_mets(checker, source, schemas)
    if profile is not None:
        from .profile import check_profile
        report.problems.extend(check_profile(profile, report, source.listing, checker.manifests,
                                             "fetch.txt" in source.listing.files))
    return report


