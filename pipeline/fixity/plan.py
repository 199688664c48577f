"""What an audit must check in one bag: its manifests read, its files listed, before any hashing.

A bag is a folder (with bagit.txt or a manifest) or a serialized bag (.tar, .tar.gz, .zip ...,
read as a stream by `pipeline.archive.ArchiveBag`, never unpacked).  Planning finds what needs no
checksum: manifest lines that cannot be read, files listed but absent, payload files no manifest
lists, links, and the Payload-Oxum.  What remains is one `FileTask` per file to re-hash.

Manifest names and disk names are compared after Unicode NFC normalization, so a bag written on
macOS (NFD names) still matches; each such file is reported as a `fixity.normalization` warning.
Nothing here writes anything, inside the bag or elsewhere.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from ..bag import (MANIFEST_RE, Listing, Manifest, find_manifests, is_inside, list_bag, nfc,
                   parse_manifest, parse_manifest_bytes, parse_tags)
from ..errors import CODES, Problem, UsageError

# Strongest first: the value a report shows when one is enough (e.g. for a missing file).
STRENGTH = ("sha512", "sha384", "sha256", "sha224", "sha1", "md5")
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
                "field": self.field, "reason": self.reason}


@dataclass(slots=True)
class FileTask:
    """A file to re-hash: `key` is its NFC name (the registry's), `rel` its name in the bag."""

    key: str
    rel: str
    size: int
    expected: dict[str, str]          # algorithm -> hex digest, from every manifest listing it


@dataclass
class BagPlan:
    location: str                     # absolute path: the bag's identity in the registry
    name: str
    folder: Optional[Path] = None
    archive: Optional["ArchiveBag"] = None  # noqa: F821 (pipeline.archive, imported when needed)
    manifests: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    tasks: list[FileTask] = field(default_factory=list)
    payload_files: int = 0            # on disk (or in the archive), under data/
    payload_bytes: int = 0
    normalized: int = 0               # files matched only after NFC

    @property
    def algorithms(self) -> list[str]:
        return sorted({alg for t in self.tasks for alg in t.expected})


def is_bag_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "bagit.txt").is_file() or any(
        MANIFEST_RE.match(p.name) for p in path.iterdir() if p.is_file()))


def is_archive_name(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def find_targets(paths: Iterable[Path], output: Path) -> list[Path]:
    """The bags to audit: each PATH (a bag, a serialized bag or a folder of bags), or every bag
    in `output` (dot-folders such as output/.staging skipped).  A PATH that does not exist is a
    usage error; a folder holding no bag yields nothing (the caller says so)."""
    paths = list(paths)
    if not paths:
        if not output.is_dir():
            raise UsageError(f"{output}: no such output folder (name bags to audit, or --output)")
        paths, explicit = [output], False
    else:
        explicit = True
    found: list[Path] = []
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such bag or folder")
        if is_archive_name(p) or is_bag_folder(p):
            found.append(p)
        elif p.is_dir():
            found.extend(c for c in sorted(p.iterdir()) if not c.name.startswith(".")
                         and (is_bag_folder(c) or is_archive_name(c)))
        elif explicit:
            found.append(p)  # a file that is not an archive by name: planning says why
    return list({p.resolve(): p for p in reversed(found)}.values())[::-1]  # each bag once, first spelling


def _encoding(tags_text: Optional[bytes]) -> str:
    if tags_text is None:
        return "utf-8"
    for tag in parse_tags(tags_text.decode("utf-8", errors="replace")):
        if tag.label.lower() == "tag-file-character-encoding" and tag.value:
            return tag.value
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


def _usable(alg: str) -> bool:
    try:
        hashlib.new(alg)
    except ValueError:
        return False
    return True


class _Expectations:
    """Every manifest line, merged per NFC name."""

    def __init__(self, plan: BagPlan) -> None:
        self.plan = plan
        self.by_key: dict[str, tuple[str, dict[str, str], bool]] = {}   # key -> (name, digests, tag)
        self.payload_algs: list[str] = []

    def add(self, manifest: Manifest) -> None:
        plan, name = self.plan, manifest.name
        plan.manifests.append(name)
        for line, reason in manifest.errors:
            plan.findings.append(Finding("fixity.manifest_line", name, reason, field=f"line {line}"))
        if not _usable(manifest.algorithm):
            plan.findings.append(Finding("fixity.algorithm", name,
                                         f"algorithm {manifest.algorithm!r} is not available here"))
            return
        if not manifest.tag:
            self.payload_algs.append(manifest.algorithm)
        alg = manifest.algorithm
        for entry in manifest.entries:
            path = entry.path
            suspicious = not path or path[:1] == "/" or "\\" in path or ".." in path  # fast path first
            if suspicious and not is_inside(Path("."), path):
                plan.findings.append(Finding("fixity.unsafe_path", entry.path, "path leaves the bag; not opened",
                                             field=f"{name} line {entry.line}"))
                continue
            if not manifest.tag and not entry.path.startswith("data/"):
                plan.findings.append(Finding("fixity.manifest_line", entry.path,
                                             "a payload manifest lists a file outside data/",
                                             field=f"{name} line {entry.line}"))
                continue
            key = nfc(entry.path)
            known = self.by_key.get(key)
            if known is None:
                self.by_key[key] = (entry.path, {alg: entry.digest}, manifest.tag)
            elif alg in known[1] and known[1][alg] != entry.digest:
                plan.findings.append(Finding("fixity.duplicate", entry.path,
                                             f"listed again with another {alg} checksum", alg,
                                             known[1][alg], entry.digest, f"{name} line {entry.line}"))
            else:
                known[1][alg] = entry.digest


def _match(plan: BagPlan, exp: _Expectations, files: dict[str, int], links: list[str]) -> None:
    """Compare what the manifests list with what the bag holds; fill findings and tasks."""
    on_disk = {nfc(rel): rel for rel in files}
    link_keys = {nfc(rel) for rel in links}
    for rel in links:
        plan.findings.append(Finding("fixity.special", rel, "symbolic link or special file; not followed"))
    listed_payload: set[str] = set()
    for key, (name, digests, tag) in exp.by_key.items():
        rel = on_disk.get(key)
        if rel is None:
            if key not in link_keys:
                alg = next((a for a in STRENGTH if a in digests), next(iter(digests)))
                plan.findings.append(Finding("fixity.missing", name, "listed in the manifests, not in the bag",
                                             alg, digests[alg]))
            continue
        if not tag:
            listed_payload.add(key)
            absent = [a for a in exp.payload_algs if a not in digests]
            if absent:
                plan.findings.append(Finding("fixity.unlisted", name,
                                             f"not listed in manifest-{', manifest-'.join(absent)}.txt"))
        if rel != name:
            plan.normalized += 1
            plan.findings.append(Finding("fixity.normalization", rel,
                                         f"the manifest writes this name in another Unicode normalization "
                                         f"({name!r}); matched as the same file"))
        plan.tasks.append(FileTask(key, key if rel == key else rel, files[rel], digests))  # one string if same
    for key, rel in on_disk.items():
        if rel.startswith("data/"):
            plan.payload_files += 1
            plan.payload_bytes += files[rel]
            if key not in listed_payload:
                plan.findings.append(Finding("fixity.unexpected", rel, "in the bag, in no payload manifest"))


def _finish(plan: BagPlan, exp: _Expectations, info: Optional[bytes], encoding: str) -> BagPlan:
    if not exp.payload_algs:
        plan.findings.append(Finding("fixity.no_manifest", "", "no payload manifest (manifest-ALG.txt)"))
    oxum = _oxum(info, encoding)
    if oxum is not None and oxum != (plan.payload_bytes, plan.payload_files):
        plan.findings.append(Finding(
            "fixity.oxum", "bag-info.txt",
            f"says {oxum[0]} bytes in {oxum[1]} files; the payload holds "
            f"{plan.payload_bytes} bytes in {plan.payload_files} files", field="Payload-Oxum"))
    return plan


def _read(path: Path) -> Optional[bytes]:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def plan_folder(bag: Path) -> BagPlan:
    plan = BagPlan(location=str(bag.resolve()), name=bag.name, folder=bag)
    encoding = _encoding(_read(bag / "bagit.txt"))
    exp = _Expectations(plan)
    for path in find_manifests(bag):
        try:
            exp.add(parse_manifest(path, encoding))
        except (UnicodeDecodeError, LookupError, OSError) as exc:
            plan.findings.append(Finding("fixity.manifest", path.name, f"cannot be read as {encoding}: {exc}"))
    listing: Listing = list_bag(bag)
    _match(plan, exp, listing.files, listing.links + listing.special)
    return _finish(plan, exp, _read(bag / "bag-info.txt"), encoding)


def plan_archive(path: Path) -> BagPlan:
    from ..archive import ArchiveBag  # tarfile, zipfile and zlib only when an archive is audited

    archive = ArchiveBag(path)
    plan = BagPlan(location=str(path.resolve()), name=path.name, archive=archive)
    plan.findings.extend(Finding(p.code, p.path, p.reason, field=p.field, severity=p.severity)
                         for p in archive.problems)
    if not archive.readable:
        return plan

    def kept(name: str) -> Optional[bytes]:
        try:
            return archive.read(name)
        except KeyError:
            return None

    encoding = _encoding(kept("bagit.txt"))
    exp = _Expectations(plan)
    for name in sorted(archive.listing.files):
        if "/" not in name and MANIFEST_RE.match(name) and kept(name) is not None:
            try:
                exp.add(parse_manifest_bytes(name, kept(name), encoding))
            except (UnicodeDecodeError, LookupError) as exc:
                plan.findings.append(Finding("fixity.manifest", name, f"cannot be read as {encoding}: {exc}"))
    _match(plan, exp, archive.listing.files, [])
    return _finish(plan, exp, kept("bag-info.txt"), encoding)


def plan_bag(path: Path) -> BagPlan:
    """Plan one target; a path that is no bag yields a plan with one `fixity.not_a_bag` finding."""
    if is_bag_folder(path):
        return plan_folder(path)
    if is_archive_name(path):
        return plan_archive(path)
    plan = BagPlan(location=str(path.resolve()), name=path.name)
    plan.findings.append(Finding("fixity.not_a_bag", "", f"{path}: not a bag folder (no bagit.txt, no manifest) "
                                 f"nor a serialized bag ({', '.join(ARCHIVE_SUFFIXES)})"))
    return plan


def disk_path(plan: BagPlan, task: FileTask) -> str:
    return os.path.join(plan.location, task.rel)
