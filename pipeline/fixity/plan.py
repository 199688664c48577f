"""What an audit must check in one bag: its manifests read, its files listed, before any hashing.

A bag is a folder (with bagit.txt or a manifest) or a serialized bag (.tar, .tar.gz, .zip ...,
read as a stream by `pipeline.archive.ArchiveBag`, never unpacked).  Planning finds what needs no
checksum: manifest lines that cannot be read, files listed but absent, payload files no manifest
lists, links, and the Payload-Oxum.  What remains is one `FileTask` per file to re-hash, streamed
from the plan's database (store.py): no list of the bag's files is held in memory.

Manifest names and disk names are compared after Unicode NFC normalization, so a bag written on
macOS (NFD names) still matches; each such file is reported as a `fixity.normalization` warning.
Nothing here writes anything, inside the bag or elsewhere.
"""
from __future__ import annotations

import codecs

import hashlib
import io
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Optional

from ..bag import _HEX, _LINE, MANIFEST_RE, decode_path, find_manifests, is_inside, nfc, parse_tags
from ..errors import CODES, Problem, UsageError
from .store import BATCH, PlanStore, digests_of

# Strongest first: the value a report shows when one is enough (e.g. for a missing file).
STRENGTH = ("sha512", "sha384", "sha256", "sha224", "sha1", "md5")
TAG_FILE_CAP = 4 << 20    # bytes of bagit.txt or bag-info.txt read at most (manifests are streamed)
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth saying) about one file of a bag."""

    code: str
    path: str                 # relative to the bag, as the manifest or the disk names it
    reason: str
    algorithm: str = ""
    expected: str = ""
    actual: str = ""
    field: str = ""           # e.g. "manifest-sha256.txt line 4"
    severity: str = ""        # "" means: the registry's severity for this code
    since: str = ""           # an error, by the file's check before this audit: new | known ("" first check)
    key: str = ""             # the registry's path of the file, where it is not `path` (its NFC name)

    @property
    def level(self) -> str:
        return self.severity or CODES[self.code].severity

    @property
    def is_error(self) -> bool:
        return self.level == "error"

    def problem(self) -> Problem:
        return Problem(self.code, self.path, self.reason, self.field, self.level)

    def as_dict(self) -> dict:
        return {"code": self.code, "severity": self.level, "path": self.path,
                "algorithm": self.algorithm, "expected": self.expected, "actual": self.actual,
                "field": self.field, "reason": self.reason, "since": self.since or None}


@dataclass(slots=True)
class FileTask:
    """A file to re-hash: `key` is its NFC name (the registry's), `rel` its name in the bag."""

    key: str
    rel: str
    size: int
    expected: dict[str, str]          # algorithm -> hex digest, from every manifest listing it


@dataclass
class BagPlan:
    location: str                     # absolute path (as text_name): the bag's identity in the registry
    name: str
    folder: Optional[Path] = None     # absolute, as on disk (the files are opened below it)
    archive: Optional["ArchiveBag"] = None  # noqa: F821 (pipeline.archive, imported when needed)
    manifests: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    store: Optional[PlanStore] = None  # the manifest lines and file list, on disk (see store.py)
    algorithms: list[str] = field(default_factory=list)
    files_total: int = 0              # files to re-hash: listed and present
    bytes_total: int = 0
    payload_files: int = 0            # on disk (or in the archive), under data/
    payload_bytes: int = 0
    normalized: int = 0               # files matched only after NFC
    oxum_bytes: Optional[int] = None  # the payload's bytes as Payload-Oxum gives them
    blind: list[tuple[str, str]] = field(default_factory=list)  # folders not listed: ("" or "data/x/", why)

    def tasks(self) -> Iterator[FileTask]:
        """The files to re-hash, in key order, read from the plan database as they are needed."""
        if self.store is None:
            return
        for key, rel, size, digests in self.store.tasks():
            yield FileTask(key, key if rel == key else rel, size, digests)  # one string if same

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


def text_name(name: str) -> str:
    """A file system name as text SQLite, JSON and a terminal can hold: bytes that are not UTF-8
    (os.fsdecode's surrogates) written as \\xNN escapes; every other name is itself.  A manifest
    never lists such a name (its lines are decoded text), so nothing is lost for matching."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_bag_folder(path: Path) -> bool:
    """A folder with anything of a bag: bagit.txt, bag-info.txt, data/ or a manifest (a bag that
    lost some of them is a damaged bag, audited and reported, not a folder of bags)."""
    if not path.is_dir():
        return False
    if any(os.path.lexists(path / name) for name in ("bagit.txt", "bag-info.txt", "data")):
        return True
    try:
        return any(MANIFEST_RE.match(p.name) for p in path.iterdir())
    except OSError:         # a folder that cannot be listed: planned as a bag, so that it is reported
        return True


def is_archive_name(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def find_targets(paths: Iterable[Path], output: Path) -> tuple[list[Path], dict[Path, bool]]:
    """The bags to audit: each PATH (a bag, a serialized bag or a folder of bags), or every bag
    in `output` (dot-folders such as output/.staging skipped); and each folder of bags searched,
    with True when it is a PATH holding no bag (the audit decides what that is: a folder whose bags
    all vanished, or no bag at all).  A PATH that does not exist is a usage error; any other PATH
    that is not a folder is a target (planning says what it is)."""
    paths = list(paths)
    if not paths:
        if not output.is_dir():
            raise UsageError(f"{output}: no such output folder (name bags to audit, or --output)")
        paths, explicit = [output], False
    else:
        explicit = True
    found: list[Path] = []
    folders: dict[Path, bool] = {}
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such bag or folder")
        if is_archive_name(p) or is_bag_folder(p):
            found.append(p)
        elif p.is_dir():
            bags = [c for c in sorted(p.iterdir()) if not c.name.startswith(".")
                    and (is_bag_folder(c) or is_archive_name(c))]
            found.extend(bags)
            folders[p] = explicit and not bags
        else:
            found.append(p)  # a file that is not an archive by name: planning says why
    return list({p.resolve(): p for p in reversed(found)}.values())[::-1], folders  # each bag once, first spelling


def _encoding(plan: BagPlan, tags_text: Optional[bytes]) -> str:
    """The Tag-File-Character-Encoding of bagit.txt; UTF-8 (and a `fixity.encoding` warning) when
    it names no text encoding Python knows (unknown, or a bytes codec such as base64 or zlib)."""
    if tags_text is None:
        return "utf-8"
    for tag in parse_tags(tags_text.decode("utf-8", errors="replace")):
        if tag.label.lower() == "tag-file-character-encoding" and tag.value:
            try:
                info = codecs.lookup(tag.value)
            except LookupError:
                info = None
            if info is not None and info._is_text_encoding:
                return info.name
            plan.findings.append(Finding("fixity.encoding", "bagit.txt", f"{tag.value!r} is not a text encoding "
                                         "Python knows; tag files read as UTF-8", field="Tag-File-Character-Encoding"))
            return "utf-8"
    return "utf-8"


def _oxum(info: Optional[bytes], encoding: str) -> Optional[tuple[int, int]]:
    if info is None:
        return None
    for tag in parse_tags(info.decode(encoding, errors="replace")):
        if tag.label.lower() == "payload-oxum":
            octets, _, count = tag.value.partition(".")
            if octets.isdigit() and count.isdigit():
                return int(octets), int(count)
    return None


def _unusable(alg: str) -> str:
    """Why the checksums of `alg` cannot be checked here; "" when they can."""
    try:
        if not hashlib.new(alg).digest_size:
            return f"algorithm {alg!r} has no fixed digest size (an extendable-output function); not supported"
    except ValueError:
        return f"algorithm {alg!r} is not available here"
    return ""


def _lines(stream: BinaryIO, encoding: str) -> Iterator[tuple[int, str]]:
    """(number, text) of a manifest's lines, read as they come; LF, CRLF and CR end lines (a literal
    U+2028 is part of a name).  Raises UnicodeDecodeError/LookupError when they do not decode."""
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    for number, raw in enumerate(text, start=1):
        raw = raw.rstrip("\r\n")
        if number == 1 and raw.startswith("\ufeff"):
            raw = raw[1:]
        yield number, raw


class _Expectations:
    """Every manifest line, streamed into the plan database."""

    def __init__(self, plan: BagPlan) -> None:
        self.plan, self.store = plan, plan.store
        self.payload_algs: list[str] = []
        self.names: list[str] = []      # every manifest read; lines name theirs by its index here

    def read(self, name: str, stream: BinaryIO, encoding: str) -> None:
        plan, store = self.plan, self.store
        m = MANIFEST_RE.match(name)
        alg, tag = m.group(2).lower(), bool(m.group(1))
        unusable = _unusable(alg)
        found: list[Finding] = []   # this manifest's problems: kept only when all of it decodes
        rows, index = store.pending["lines"], len(self.names)
        self.names.append(name)
        try:
            for number, raw in _lines(stream, encoding):
                if raw == "":
                    continue
                match = _LINE.match(raw)
                if not match or not match.group(1) or not match.group(2).strip(" \t"):
                    found.append(Finding("fixity.manifest_line", name, "not a 'checksum path' line",
                                         field=f"line {number}"))
                    continue
                digest, rest = match.groups()
                if rest.startswith("*"):
                    rest = rest[1:]
                if not _HEX.fullmatch(digest):
                    found.append(Finding("fixity.manifest_line", name, f"checksum {digest!r} is not hexadecimal",
                                         field=f"line {number}"))
                    continue
                if not unusable and (row := _entry(name, index, alg, tag, decode_path(rest), digest.lower(), number, found)):
                    rows.append(row)
                    if len(rows) >= BATCH:
                        store.flush()
        except (UnicodeDecodeError, LookupError, OSError) as exc:
            store.forget_manifest(index)
            plan.findings.append(Finding("fixity.manifest", name, f"cannot be read as {encoding}: {exc}"))
            return
        plan.manifests.append(name)
        plan.findings.extend(found)
        if unusable:
            plan.findings.append(Finding("fixity.algorithm", name, unusable))
        elif not tag:
            self.payload_algs.append(alg)


def _entry(name: str, index: int, alg: str, tag: bool, path: str, digest: str, number: int,
           found: list[Finding]) -> Optional[tuple]:
    """The row of one manifest line, or None (and a finding) when it names no file to check."""
    suspicious = not path or path[:1] == "/" or "\\" in path or ".." in path  # fast path first
    if suspicious and not is_inside(Path("."), path):
        found.append(Finding("fixity.unsafe_path", path, "path leaves the bag; not opened",
                             field=f"{name} line {number}"))
    elif not tag and not path.startswith("data/"):
        found.append(Finding("fixity.manifest_line", path, "a payload manifest lists a file outside data/",
                             field=f"{name} line {number}"))
    else:
        key = nfc(path)
        return key, None if path == key else path, alg, digest, tag, index, number
    return None


def _walk(bag: Path, blind: list[tuple[str, str]]) -> Iterator[tuple[str, Optional[int]]]:
    """(relpath, size) of every regular file of a bag folder, (relpath, None) of every link or
    special file; walked with os.scandir, never through a link, as it goes (cf. bag.list_bag).
    A folder that cannot be listed is added to `blind`: (its prefix, "" or "data/x/"; why)."""
    stack = [("", str(bag))]
    while stack:
        prefix, folder = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError as exc:
            blind.append((prefix, exc.strerror or str(exc)))
            continue
        with it:
            for entry in it:
                rel = prefix + entry.name
                if entry.is_symlink():
                    yield rel, None
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((rel + "/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    try:
                        yield rel, entry.stat(follow_symlinks=False).st_size
                    except OSError:   # vanished while listed
                        continue
                else:
                    yield rel, None


def _match(plan: BagPlan, exp: _Expectations, files: Iterable[tuple[str, Optional[int]]]) -> None:
    """Compare what the manifests list with what the bag holds; fill findings and counts."""
    store = plan.store
    rows = store.pending["disk"]
    for rel, size in files:
        rel = text_name(rel)
        if size is None:
            plan.findings.append(Finding("fixity.special", rel, "symbolic link or special file; not followed"))
            store.pending["links"].append((nfc(rel),))
        else:
            key = nfc(rel)
            rows.append((key, None if rel == key else rel, size))
            if len(rows) >= BATCH:
                store.flush()
    store.merge()
    for prefix, why in plan.blind:
        plan.findings.append(Finding("fixity.unreadable", text_name(prefix.rstrip("/")) or ".",
                                     f"the folder cannot be listed: {why}"))
    for name, alg, first, digest, manifest, number in store.duplicates():
        plan.findings.append(Finding("fixity.duplicate", name, f"listed again with another {alg} checksum", alg,
                                     first, digest, f"{exp.names[manifest]} line {number}"))
    for name, pairs in store.missing():
        digests = digests_of(pairs)
        alg = next((a for a in STRENGTH if a in digests), next(iter(digests)))
        folder = next((p for p, _ in plan.blind if name.startswith(p)), None)
        if folder is not None:   # unseen, not known to be absent
            plan.findings.append(Finding("fixity.unreadable", name, f"in {folder.rstrip('/') or 'the bag'}, "
                                         "a folder that cannot be listed", alg, digests[alg]))
        else:
            plan.findings.append(Finding("fixity.missing", name, "listed in the manifests, not in the bag",
                                         alg, digests[alg]))
    if len(exp.payload_algs) > 1:  # with one, a payload file is listed in it or in no manifest
        for name, algs in store.unlisted(exp.payload_algs):
            absent = [a for a in exp.payload_algs if a not in algs.split(" ")]
            plan.findings.append(Finding("fixity.unlisted", name,
                                         f"not listed in manifest-{', manifest-'.join(absent)}.txt"))
    for rel, name in store.renamed():
        plan.normalized += 1
        plan.findings.append(Finding("fixity.normalization", rel,
                                     f"the manifest writes this name in another Unicode normalization "
                                     f"({name!r}); matched as the same file"))
    for rel, kept in store.twins():
        plan.findings.append(Finding("fixity.twin", rel, f"differs from {kept!r} only by Unicode normalization "
                                     "(NFC/NFD); not checked, the other file is"))
    for rel, in store.unexpected():
        plan.findings.append(Finding("fixity.unexpected", rel, "in the bag, in no payload manifest"))
    plan.payload_files, plan.payload_bytes = store.payload()
    plan.files_total, plan.bytes_total = store.totals()
    plan.algorithms = store.algorithms()
    store.write_tasks()


def _blind_bag(plan: BagPlan) -> bool:
    """The bag's own folder could not be listed (reported as such: nothing else is known)."""
    return any(prefix == "" for prefix, _ in plan.blind)


def _finish(plan: BagPlan, exp: _Expectations, info: Optional[bytes], encoding: str) -> BagPlan:
    if not exp.payload_algs and not _blind_bag(plan):
        plan.findings.append(Finding("fixity.no_manifest", "", "no payload manifest (manifest-ALG.txt)"))
    oxum = _oxum(info, encoding)
    plan.oxum_bytes = oxum and oxum[0]
    if oxum is not None and not plan.blind and oxum != (plan.payload_bytes, plan.payload_files):
        plan.findings.append(Finding(
            "fixity.oxum", "bag-info.txt",
            f"says {oxum[0]} bytes in {oxum[1]} files; the payload holds "
            f"{plan.payload_bytes} bytes in {plan.payload_files} files", field="Payload-Oxum"))
    return plan


def _open_regular(path: Path) -> Optional[BinaryIO]:
    """`path` opened for reading when it is a regular file; None when it is a link or a special
    file (never followed, never opened: a fifo would block, a device never end; the walk reports
    them as `fixity.special`).  Raises OSError (absent, unreadable)."""
    if not stat.S_ISREG(os.lstat(path).st_mode):
        return None
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):     # swapped since the lstat
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def _read(plan: BagPlan, path: Path) -> Optional[bytes]:
    """A tag file's bytes, or None when it is absent or no regular file (the manifests still
    decide); one larger than TAG_FILE_CAP is not read (`fixity.tag_file`)."""
    try:
        stream = _open_regular(path)
        if stream is None:
            return None
        with stream:
            data = stream.read(TAG_FILE_CAP + 1)
    except OSError:     # missing, a folder, unreadable: as absent
        return None
    if len(data) > TAG_FILE_CAP:
        plan.findings.append(Finding("fixity.tag_file", path.name, f"larger than {TAG_FILE_CAP >> 20} MiB; not read"))
        return None
    return data


def plan_folder(bag: Path) -> BagPlan:
    folder = bag.resolve()
    plan = BagPlan(location=text_name(str(folder)), name=text_name(bag.name), folder=folder, store=PlanStore())
    encoding = _encoding(plan, _read(plan, bag / "bagit.txt"))
    exp = _Expectations(plan)
    try:
        manifests = find_manifests(bag)
    except OSError:         # the walk reports the folder (fixity.unreadable)
        manifests = []
    for path in manifests:
        try:
            stream = _open_regular(path)    # a link to a manifest is reported by the walk, never read
        except OSError as exc:
            plan.findings.append(Finding("fixity.manifest", path.name, f"cannot be read: {exc.strerror or exc}"))
            continue
        if stream is not None:
            with stream:
                exp.read(path.name, stream, encoding)
    _match(plan, exp, _walk(bag, plan.blind))
    if not os.path.lexists(bag / "bagit.txt") and not _blind_bag(plan):
        plan.findings.append(Finding("fixity.no_bagit", "bagit.txt", "the bag has no bagit.txt: it is damaged"))
    return _finish(plan, exp, _read(plan, bag / "bag-info.txt"), encoding)


def plan_archive(path: Path, fast: bool = False) -> BagPlan:
    """Plan a serialized bag; `fast` (completeness only) hashes nothing while scanning it."""
    from ..archive import ArchiveBag  # tarfile, zipfile and zlib only when an archive is audited

    archive = ArchiveBag(path, checksums=not fast)
    plan = BagPlan(location=text_name(str(path.resolve())), name=text_name(path.name), archive=archive)
    plan.findings.extend(Finding(p.code, p.path, p.reason, field=p.field, severity=p.severity)
                         for p in archive.problems)
    if not archive.readable:
        return plan

    def kept(name: str) -> Optional[bytes]:
        try:
            return archive.read(name)
        except KeyError:
            return None

    plan.store = PlanStore()
    encoding = _encoding(plan, kept("bagit.txt"))
    exp = _Expectations(plan)
    for name in sorted(archive.listing.files):
        if "/" not in name and MANIFEST_RE.match(name) and kept(name) is not None:
            exp.read(name, io.BytesIO(kept(name)), encoding)
    _match(plan, exp, archive.listing.files.items())
    return _finish(plan, exp, kept("bag-info.txt"), encoding)


def plan_bag(path: Path, fast: bool = False) -> BagPlan:
    """Plan one target; a path that is no bag yields a plan with one `fixity.not_a_bag` finding."""
    if is_bag_folder(path):
        return plan_folder(path)
    if is_archive_name(path):
        return plan_archive(path, fast)
    plan = BagPlan(location=text_name(str(path.resolve())), name=text_name(path.name))
    plan.findings.append(Finding("fixity.not_a_bag", "", f"{text_name(str(path))}: not a bag folder (no bagit.txt, no manifest) "
                                 f"nor a serialized bag ({', '.join(ARCHIVE_SUFFIXES)})"))
    return plan


def disk_path(plan: BagPlan, task: FileTask) -> str:
    return os.path.join(plan.folder, task.rel)
