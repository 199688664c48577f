"""Consistency (and, given the official schemas, validity) of a package's METS document.

`check_mets(bag_root, schemas_dir)` is what the describe stage runs before sealing and what
`pipeline verify` runs on our own bags:
  * every FLocat and mdRef names a file inside the bag that exists, with the SIZE and CHECKSUM
    the METS states (re-hashed here, one read per file; each bag of a split package carries
    its own METS, see pipeline/partmets.py, so this holds for every bag);
  * with `inventory`, the METS is the package's whole inventory: every regular file under
    data/ (the METS aside) is named by an FLocat or mdRef, names compared after
    percent-decoding and NFC (`pipeline verify`; the describe stage leaves it out: staging may
    still hold an earlier run's leftovers, which the package stage clears before sealing);
  * every ID is unique and every ADMID, DMDID and FILEID reference resolves;
  * with `schemas_dir`, the document is valid against the official schemas (errors with lines).

The bag is read through a small source: `FolderSource` (a folder, lstat-like lookups, links not
followed) or `ArchiveSource` (a tar or zip `pipeline verify` has listed: sizes from the listing,
the METS and DC records streamed from their members, nothing extracted).

The consistency pass streams (iterparse, elements cleared as they are read; for `inventory` the
names the METS gives are kept, one string per file, for the walk of data/); schema validation
needs the whole tree in memory, which libxml2 requires to report line numbers.
"""
from __future__ import annotations

import os
import posixpath
import stat
from array import array
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Mapping
from urllib.parse import unquote

import numpy as np
from lxml import etree

from .bag import is_inside, nfc
from .errors import Problem
from .hashing import hash_stream
from .mets import METS_PATH
from .xmlio import NS, load_schema, parse, validation_errors

HASH_NAMES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
LOCATED = {f"{{{NS['mets']}}}FLocat", f"{{{NS['mets']}}}mdRef"}
IDREFS = ("ADMID", "DMDID", "FILEID")
HREF = f"{{{NS['xlink']}}}href"
DC_FOLDER = "data/metadata/dc"
CLEARED = {f"{{{NS['mets']}}}{name}" for name in ("dmdSec", "amdSec", "file", "div")}  # done with once read


class FolderSource:
    """A bag folder, as `check_mets` reads it (paths are handled as strings: this runs once per
    file of the bag)."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self._folders: dict[str, bool] = {}     # folder -> really inside the bag (no link on the way)

    def is_file(self, rel: str) -> bool:
        return os.path.isfile(os.path.join(self.root, rel))

    def size(self, rel: str) -> int | None:
        """The size of the regular file `rel` (lstat: None for a link, a folder, nothing)."""
        try:
            st = os.lstat(os.path.join(self.root, rel))
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def inside(self, rel: str) -> bool:
        """Whether `rel`'s folder resolves to a place inside the bag (no linked folder on the
        way); answered once per folder."""
        folder = os.path.dirname(os.path.join(self.root, rel))
        if folder not in self._folders:
            self._folders[folder] = Path(os.path.realpath(folder)).is_relative_to(os.path.realpath(self.root))
        return self._folders[folder]

    def open(self, rel: str):
        return open(os.path.join(self.root, rel), "rb", buffering=0)

    @contextmanager
    def xml(self, rel: str) -> Iterator[str]:
        """What lxml parses: the file's path (libxml2 reads it itself)."""
        yield os.path.join(self.root, rel)

    def each(self, folder: str, suffix: str) -> Iterator[tuple[str, str]]:
        """(bag path, what lxml parses) of every regular file under `folder` named *suffix,
        links not followed."""
        for root, dirs, names in os.walk(os.path.join(self.root, folder)):   # linked folders not walked
            dirs.sort()
            for name in sorted(names):
                path = os.path.join(root, name)
                if name.endswith(suffix) and not os.path.islink(path):
                    yield Path(path).relative_to(self.root).as_posix(), path


class ArchiveSource:
    """A serialized bag (pipeline.archive.ArchiveBag), as `check_mets` reads it: sizes from the
    archive's listing (links and devices were refused there, names climbing out too), files
    streamed from their members, never extracted."""

    def __init__(self, archive) -> None:
        self.archive = archive
        self.files: Mapping[str, int] = archive.listing.files

    def is_file(self, rel: str) -> bool:
        return rel in self.files

    def size(self, rel: str) -> int | None:
        return self.files.get(rel)

    def inside(self, rel: str) -> bool:
        return True

    @contextmanager
    def xml(self, rel: str) -> Iterator:
        """What lxml parses: the member's stream (no `open`: rehashing is for folders, a tar.gz
        would be decompressed again for every file)."""
        members = self.archive.members(rel.__eq__)
        try:
            for _, stream in members:
                yield stream
                return
            raise OSError(f"{rel}: not in the archive")
        finally:
            members.close()

    def each(self, folder: str, suffix: str) -> Iterator:
        prefix = folder + "/"
        return self.archive.members(lambda rel: rel.startswith(prefix) and rel.endswith(suffix))


def check_mets(bag_root, schemas_dir: Path | None = None, rehash: bool = True,
               known: Mapping[str, Mapping[str, str]] | None = None,
               inventory: Iterable[str] | None = None) -> list[Problem]:
    """Every problem of the METS of the bag at `bag_root` (empty when consistent and valid):
    a folder's path, or a FolderSource or ArchiveSource.

    With `rehash` (a folder only) every file the METS names is read and its CHECKSUM compared.
    Without it a file is checked by its SIZE on disk, and its CHECKSUM against `known` (bag path -> algorithm
    -> digest) where that has it: `pipeline verify` passes the bag's manifests, whose digests its
    fixity pass has just checked against the files; the describe stage passes nothing (the
    METS's checksums are the ones computed while each file was written, and reading it back from
    the page cache would prove nothing more).  `inventory`: the bag's regular files (bag paths,
    as `pipeline verify` has listed them); one under data/ the METS does not name is a problem
    too (mets.undescribed).
    """
    source = FolderSource(Path(bag_root)) if isinstance(bag_root, (str, os.PathLike)) else bag_root
    if not source.is_file(METS_PATH):
        return [Problem("describe.mets_missing", METS_PATH, "the package has no METS document")]
    problems = _consistency(source, rehash, known or {}, inventory)
    if schemas_dir is not None and not any(p.code == "describe.mets_unreadable" for p in problems):
        try:
            with source.xml(METS_PATH) as doc:
                problems += schema_problems(doc, Path(schemas_dir))
        except OSError as exc:
            problems.append(Problem("describe.mets_unreadable", METS_PATH, f"cannot be read: {exc}"))
    if schemas_dir is not None:
        problems += dc_schema_problems(source, Path(schemas_dir))
    return problems


def dc_schema_problems(source, schemas_dir: Path) -> list[Problem]:
    """XSD errors of every Dublin Core record of the bag (data/metadata/dc/, links not followed)."""
    out: list[Problem] = []
    try:
        for rel, doc in source.each(DC_FOLDER, ".xml"):
            out += [replace(p, code="describe.dc_schema") for p in schema_problems(doc, schemas_dir, shown_as=rel)]
    except OSError as exc:
        out.append(Problem("describe.mets_unreadable", DC_FOLDER, f"cannot be read: {exc}"))
    return out


def schema_problems(document, schemas_dir: Path, shown_as: str = METS_PATH) -> list[Problem]:
    """XSD errors of one document (a path or a binary stream), one Problem per error, with its line."""
    schema = load_schema(schemas_dir)
    try:
        doc = parse(document)
    except (etree.XMLSyntaxError, OSError) as exc:
        return [Problem("describe.mets_unreadable", shown_as, f"cannot be read as XML: {exc}")]
    return [Problem("describe.mets_schema", shown_as, msg.split(": ", 1)[1], msg.split(": ", 1)[0])
            for msg in validation_errors(doc, schema)]


def _mets_elements(mets) -> Iterator[tuple[str, etree._Element]]:
    """The METS elements of the document (a path or a binary stream) with their tags, streamed:
    the PREMIS, DC and MIX inside xmlData are parsed (and well-formed) but never reach Python;
    sections are cleared once read."""
    for _, el in etree.iterparse(mets, events=("end",),
                                 tag=f"{{{NS['mets']}}}*", resolve_entities=False, no_network=True,
                                 load_dtd=False, huge_tree=True):
        tag = el.tag
        yield tag, el
        if tag in CLEARED:
            el.clear(keep_tail=True)
            while el.getprevious() is not None:
                del el.getparent()[0]


def _references(el: etree._Element) -> Iterator[tuple[str, str]]:
    for attr in IDREFS:
        for ref in (el.get(attr) or "").split():
            yield attr, ref


def _reference_keys(el: etree._Element) -> list[int]:
    """The keys of the IDs an element refers to (the first pass's `_references`)."""
    keys = []
    for attr in IDREFS:
        value = el.get(attr)
        if value:
            keys += map(hash, value.split())
    return keys


def _consistency(source, rehash: bool, known: Mapping,
                 inventory: Iterable[str] | None) -> list[Problem]:
    """Files, IDs and ID references.  Memory stays flat in the size of the document: the first
    pass keeps a 64-bit key per ID and per reference (not the strings; a 100,000-photograph
    METS has millions of IDs); only when the keys show a repeated ID or a reference to no ID
    does a second pass collect the strings concerned and report them exactly, with lines.  With
    `inventory`, the bag paths the hrefs name are kept (one string per file), then the
    inventory's payload files are checked against them."""
    problems: list[Problem] = []
    ids, refs = array("q"), array("q")
    base = PurePosixPath(METS_PATH).parent.as_posix()
    described: set[str] = set()         # the bag paths the METS names, NFC
    try:
        with source.xml(METS_PATH) as mets:
            for tag, el in _mets_elements(mets):
                ident = el.get("ID")
                if ident is not None:
                    ids.append(hash(ident))
                refs.extend(_reference_keys(el))
                if tag in LOCATED:
                    holder = el.getparent() if tag.endswith("FLocat") else el
                    href = el.get(HREF, "")
                    target = os.path.normpath(posixpath.join(base, unquote(href))) if href else ""
                    if inventory is not None:
                        described.add(nfc(target))
                    problems += _located(source, target, href, holder, el.sourceline or 0, rehash, known)
    except etree.XMLSyntaxError as exc:
        return problems + [Problem("describe.mets_unreadable", METS_PATH, f"not well-formed XML: {exc.msg}",
                                   f"line {exc.lineno}")]
    except OSError as exc:
        return problems + [Problem("describe.mets_unreadable", METS_PATH, f"cannot be read: {exc}")]
    if inventory is not None:
        problems += _undescribed(inventory, described)
    del described
    keys = np.frombuffer(ids, dtype=np.int64).copy()
    del ids
    keys.sort()
    repeated = set(keys[1:][keys[1:] == keys[:-1]].tolist())
    ref_keys = np.frombuffer(refs, dtype=np.int64)
    at = np.minimum(np.searchsorted(keys, ref_keys), max(len(keys) - 1, 0))
    unresolved = set(ref_keys[keys[at] != ref_keys].tolist()) if len(keys) else set(ref_keys.tolist())
    if repeated or unresolved:
        try:
            with source.xml(METS_PATH) as mets:
                problems += _id_problems(mets, repeated, unresolved)
        except (etree.XMLSyntaxError, OSError) as exc:     # changed since the first pass
            problems.append(Problem("describe.mets_unreadable", METS_PATH, f"cannot be read again: {exc}"))
    return problems


def _id_problems(mets, repeated: set[int], unresolved: set[int]) -> list[Problem]:
    """The second pass: the IDs used more than once (keys can collide: the strings decide) and
    the references that name no ID, each at its line."""
    out, seen, dangling = [], set(), []
    for _, el in _mets_elements(mets):
        ident = el.get("ID")
        if ident is not None and hash(ident) in repeated:
            if ident in seen:
                out.append(Problem("describe.mets_duplicate_id", METS_PATH,
                                   f"ID {ident!r} is used more than once", f"line {el.sourceline}"))
            seen.add(ident)
        dangling += [(attr, ref, el.sourceline or 0) for attr, ref in _references(el) if hash(ref) in unresolved]
    return out + [Problem("describe.mets_idref", METS_PATH, f"{attr} {ref!r} names no element of the document",
                          f"line {line}") for attr, ref, line in dangling]


def _undescribed(inventory: Iterable[str], described: set[str]) -> list[Problem]:
    """The payload files of `inventory` no FLocat or mdRef names (the METS itself aside)."""
    found = sorted(rel for rel in inventory
                   if rel.startswith("data/") and rel != METS_PATH and nfc(rel) not in described)
    return [Problem("mets.undescribed", rel, f"in the payload but named by no FLocat or mdRef of "
                    f"{METS_PATH}: the METS does not describe it") for rel in found]


def _located(source, target: str, href: str, holder: etree._Element, line: int, rehash: bool,
             known: Mapping) -> list[Problem]:
    """The file an FLocat/mdRef points at: inside the bag, present, right size and checksum.
    `target` is the bag path `href` names relative to the METS's folder."""
    where = f"line {line}"
    if not href or "://" in href or not is_inside(Path(), target) or target.startswith(".."):
        return [Problem("describe.mets_flocat", METS_PATH, f"href {href!r} does not name a file inside the bag", where)]
    size_now = source.size(target)
    if size_now is None:      # missing, a link, a folder...
        return [Problem("describe.mets_flocat", METS_PATH, f"href {href!r}: {target} does not exist", where)]
    if not source.inside(target):    # through a linked folder
        return [Problem("describe.mets_flocat", METS_PATH,
                        f"href {href!r}: {target} leads outside the bag (a symbolic link on the way)", where)]
    out: list[Problem] = []
    size = holder.get("SIZE")
    kind, expected = holder.get("CHECKSUMTYPE", ""), (holder.get("CHECKSUM") or "").lower()
    algorithm = HASH_NAMES.get(kind)
    if expected and algorithm is None:
        return [Problem("describe.mets_checksum", METS_PATH, f"{target}: unknown CHECKSUMTYPE {kind!r}", where)]
    try:
        if rehash:
            with source.open(target) as f:
                actual_size, digests = hash_stream(f, [algorithm] if algorithm else [])
        else:
            listed = known.get(target, {})
            actual_size = size_now
            digests = {algorithm: listed.get(algorithm, expected).lower()} if algorithm else {}
    except OSError as exc:      # this file only: the rest of the METS is still checked
        return [Problem("describe.mets_flocat", METS_PATH, f"href {href!r}: {target} cannot be read "
                        f"({exc.strerror or exc})", where)]
    if size is not None and size != str(actual_size):
        out.append(Problem("describe.mets_checksum", target, f"SIZE is {size} in the METS, the file has {actual_size} bytes", where))
    if algorithm and digests[algorithm] != expected:
        out.append(Problem("describe.mets_checksum", target,
                           f"{kind} is {expected} in the METS, the {'file' if rehash else 'manifest'}'s is "
                           f"{digests[algorithm]}", where))
    return out
