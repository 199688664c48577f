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

The consistency pass streams (iterparse, elements cleared as they are read; for `inventory` the
names the METS gives are kept, one string per file, for the walk of data/); schema validation
needs the whole tree in memory, which libxml2 requires to report line numbers.
"""
from __future__ import annotations

import os
import posixpath
import stat
from array import array
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Mapping
from urllib.parse import unquote

import numpy as np
from lxml import etree

from .bag import is_inside, nfc
from .errors import Problem
from .hashing import hash_file
from .mets import METS_PATH
from .xmlio import NS, load_schema, parse, validation_errors

HASH_NAMES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
LOCATED = {f"{{{NS['mets']}}}FLocat", f"{{{NS['mets']}}}mdRef"}
IDREFS = ("ADMID", "DMDID", "FILEID")
HREF = f"{{{NS['xlink']}}}href"
DC_FOLDER = "data/metadata/dc"
CLEARED = {f"{{{NS['mets']}}}{name}" for name in ("dmdSec", "amdSec", "file", "div")}  # done with once read


def check_mets(bag_root: Path, schemas_dir: Path | None = None, rehash: bool = True,
               known: Mapping[str, Mapping[str, str]] | None = None,
               inventory: Iterable[str] | None = None) -> list[Problem]:
    """Every problem of the METS of the bag at `bag_root` (empty when consistent and valid).

    With `rehash` every file the METS names is read and its CHECKSUM compared.  Without it a
    file is checked by its SIZE on disk, and its CHECKSUM against `known` (bag path -> algorithm
    -> digest) where that has it: `pipeline verify` passes the bag's manifests, whose digests its
    fixity pass has just checked against the files; the describe stage passes nothing (the
    METS's checksums are the ones computed while each file was written, and reading it back from
    the page cache would prove nothing more).  `inventory`: the bag's regular files (bag paths,
    as `pipeline verify` has listed them); one under data/ the METS does not name is a problem
    too (mets.undescribed).
    """
    bag_root = Path(bag_root)
    mets = bag_root / METS_PATH
    if not mets.is_file():
        return [Problem("describe.mets_missing", METS_PATH, "the package has no METS document")]
    problems = _consistency(bag_root, mets, rehash, known or {}, inventory)
    if schemas_dir is not None and not any(p.code == "describe.mets_unreadable" for p in problems):
        problems += schema_problems(mets, Path(schemas_dir))
    if schemas_dir is not None:
        problems += dc_schema_problems(bag_root, Path(schemas_dir))
    return problems


def dc_schema_problems(bag_root: Path, schemas_dir: Path) -> list[Problem]:
    """XSD errors of every Dublin Core record of the bag (data/metadata/dc/, links not followed)."""
    out: list[Problem] = []
    folder = os.path.join(bag_root, DC_FOLDER)
    for root, dirs, names in os.walk(folder):      # os.walk does not follow linked folders
        dirs.sort()
        for name in sorted(names):
            path = Path(root, name)
            if name.endswith(".xml") and not path.is_symlink():
                rel = path.relative_to(bag_root).as_posix()
                out += [replace(p, code="describe.dc_schema") for p in schema_problems(path, schemas_dir, shown_as=rel)]
    return out


def schema_problems(path: Path, schemas_dir: Path, shown_as: str = METS_PATH) -> list[Problem]:
    """XSD errors of one document, one Problem per error, with its line."""
    schema = load_schema(schemas_dir)
    try:
        doc = parse(path)
    except (etree.XMLSyntaxError, OSError) as exc:
        return [Problem("describe.mets_unreadable", shown_as, f"cannot be read as XML: {exc}")]
    return [Problem("describe.mets_schema", shown_as, msg.split(": ", 1)[1], msg.split(": ", 1)[0])
            for msg in validation_errors(doc, schema)]


def _mets_elements(mets: Path) -> Iterator[tuple[str, etree._Element]]:
    """The METS elements of the document with their tags, streamed: the PREMIS, DC and MIX
    inside xmlData are parsed (and well-formed) but never reach Python; sections are cleared
    once read."""
    for _, el in etree.iterparse(str(mets), events=("end",), tag=f"{{{NS['mets']}}}*",
                                 resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True):
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


def _consistency(bag_root: Path, mets: Path, rehash: bool, known: Mapping,
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
    root = str(bag_root)
    folders: dict[str, bool] = {}       # folder -> really inside the bag (no link on the way)
    described: set[str] = set()         # the bag paths the METS names, NFC
    try:
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
                problems += _located(bag_root, root, target, href, holder, el.sourceline or 0, rehash,
                                     known, folders)
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
            problems += _id_problems(mets, repeated, unresolved)
        except (etree.XMLSyntaxError, OSError) as exc:     # changed since the first pass
            problems.append(Problem("describe.mets_unreadable", METS_PATH, f"cannot be read again: {exc}"))
    return problems


def _id_problems(mets: Path, repeated: set[int], unresolved: set[int]) -> list[Problem]:
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


def _really_inside(bag_root: Path, folder: str, folders: dict[str, bool]) -> bool:
    """Whether `folder` resolves to a place inside the bag (no linked folder on the way);
    answered once per folder."""
    if folder not in folders:
        folders[folder] = Path(os.path.realpath(folder)).is_relative_to(os.path.realpath(bag_root))
    return folders[folder]


def _undescribed(inventory: Iterable[str], described: set[str]) -> list[Problem]:
    """The payload files of `inventory` no FLocat or mdRef names (the METS itself aside)."""
    found = sorted(rel for rel in inventory
                   if rel.startswith("data/") and rel != METS_PATH and nfc(rel) not in described)
    return [Problem("mets.undescribed", rel, f"in the payload but named by no FLocat or mdRef of "
                    f"{METS_PATH}: the METS does not describe it") for rel in found]


def _located(bag_root: Path, root: str, target: str, href: str, holder: etree._Element,
             line: int, rehash: bool, known: Mapping, folders: dict[str, bool]) -> list[Problem]:
    """The file an FLocat/mdRef points at: inside the bag, present, right size and checksum.
    `root` is `bag_root` as a string, `target` the bag path `href` names relative to the METS's
    folder (paths are handled as strings here: this runs once per file of the bag)."""
    where = f"line {line}"
    if not href or "://" in href or not is_inside(bag_root, target) or target.startswith(".."):
        return [Problem("describe.mets_flocat", METS_PATH, f"href {href!r} does not name a file inside the bag", where)]
    path = os.path.join(root, target)
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):      # missing, a link, a folder...
        return [Problem("describe.mets_flocat", METS_PATH, f"href {href!r}: {target} does not exist", where)]
    if not _really_inside(bag_root, os.path.dirname(path), folders):    # through a linked folder
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
            actual_size, digests = hash_file(path, [algorithm] if algorithm else [])
        else:
            listed = known.get(target, {})
            actual_size = st.st_size
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
