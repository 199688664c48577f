"""The METS of one bag of a split package (--max-bag-size).

Each bag of a group carries all of `data/metadata/`, but its METS is the collection's METS less
the files that travel in the other bags: their `mets:file` elements, the `mets:fptr` pointers to
them and the amdSecs only they referred to.  Every link left resolves inside the bag, so each bag
passes the METS consistency check (metscheck) on its own; the descriptive metadata of the whole
collection (dmdSecs, structMap divisions) is kept.

Two streaming passes over the source (iterparse, elements cleared as read): the first finds the
files to leave out, the second copies the document one top-level section at a time, hashing the
bytes as they are written.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Callable, Collection, Sequence
from urllib.parse import unquote

from lxml import etree

from .mets import METS_PATH
from .xmlio import NS, HashingWriter, hashed_output

_FILE, _FLOCAT, _FPTR, _AMD = (f"{{{NS['mets']}}}{n}" for n in ("file", "FLocat", "fptr", "amdSec"))
_HREF = f"{{{NS['xlink']}}}href"
_OBJECTS = "data/objects/"
_PARSE = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


def _target(href: str) -> str:
    """The bag path an href relative to the METS names."""
    return os.path.normpath((PurePosixPath(METS_PATH).parent / unquote(href)).as_posix())


def _left_out(src: Path, keep: Collection[str]) -> tuple[set[str], set[str]]:
    """IDs of the files whose content is in another bag, and of the techMD/digiprovMD sections
    only they refer to (an amdSec made only of those is left out)."""
    files: set[str] = set()
    their_amd: set[str] = set()
    used_amd: set[str] = set()
    for _, el in etree.iterparse(str(src), events=("end",), **_PARSE):
        admids = (el.get("ADMID") or "").split()
        if el.tag == _FILE:
            if any(h not in keep for h in _objects(el)):
                files.add(el.get("ID", ""))
                their_amd.update(admids)
                admids = []
        used_amd.update(admids)
        parent = el.getparent()
        if parent is not None and parent.getparent() is None:  # a whole top-level section: done
            el.clear(keep_tail=True)
    return files, their_amd - used_amd


def write_part_mets(src: Path, dest: Path, keep: Collection[str],
                    algorithms: Sequence[str]) -> tuple[int, dict[str, str]]:
    """Write to `dest` the METS `src` less what is not in `keep` (bag paths of this bag's
    payload); returns its size and digests."""
    with hashed_output(dest, algorithms) as out:
        _copy(src, out, *_left_out(src, keep))
    return out.size, out.digests()


def object_shares(src: Path) -> tuple[int, dict[str, int]]:
    """What the METS of one bag of a split package weighs, before any bag is written: the size
    of the METS that keeps no object (written as write_part_mets would write it, to nowhere),
    and for each object's bag path the most bytes that keeping it adds: its `mets:file`, its
    `mets:fptr`s (each with the indentation before it) and every amdSec it refers to.  A bag's
    METS is at most the first plus the shares of its objects: a section two objects share is
    counted with each, and an element serialized alone carries the namespace declarations of
    its ancestors, which it does not repeat in place."""
    shares: dict[str, int] = {}
    sections: dict[str, tuple[str, int]] = {}  # techMD/digiprovMD ID -> (its amdSec, that section's bytes)
    objects: dict[str, list[str]] = {}         # mets:file ID -> the objects it locates

    def removed(el: etree._Element) -> None:
        if el.tag == _AMD:
            section = (el.get("ID", ""), len(etree.tostring(el, with_tail=True)))
            sections.update((c.get("ID"), section) for c in el)
            return
        before = el.getprevious().tail if el.getprevious() is not None else el.getparent().text
        size = len((before or "").encode("utf-8")) + len(etree.tostring(el, with_tail=False))
        if el.tag == _FILE:
            paths = objects[el.get("ID", "")] = _objects(el)
            size += sum(s for _, s in dict(sections[a] for a in (el.get("ADMID") or "").split()
                                           if a in sections).items())
        else:
            paths = objects.get(el.get("FILEID", ""), [])
        for path in paths:
            shares[path] = shares.get(path, 0) + size

    with open(os.devnull, "wb") as sink:
        out = HashingWriter(sink, ())
        _copy(src, out, *_left_out(src, ()), removed)
    return out.size, shares


def _objects(file: etree._Element) -> list[str]:
    """The bag paths under data/objects/ that a `mets:file` locates."""
    return [h for h in (_target(loc.get(_HREF, "")) for loc in file.iter(_FLOCAT)) if h.startswith(_OBJECTS)]


def _copy(src: Path, out, files: set[str], amd: set[str],
          removed: Callable[[etree._Element], None] = lambda el: None) -> None:
    """Copy the METS `src` to the binary stream `out`, one top-level section at a time, less
    the `mets:file`s and `mets:fptr`s of `files` and the amdSecs made only of `amd`; each
    element left out is shown to `removed` first (in document order)."""
    with etree.xmlfile(out, encoding="UTF-8") as xf:
        xf.write_declaration()
        root = section = None
        for event, el in etree.iterparse(str(src), events=("start", "end"), **_PARSE):
            if root is None:
                root = el
                section = xf.element(el.tag, dict(el.attrib), nsmap=el.nsmap)
                section.__enter__()
                xf.write(el.text or "")
            elif event == "end" and el.getparent() is root:
                inner = {c.get("ID") for c in el} if el.tag == _AMD else set()
                if inner and inner <= amd:
                    removed(el)
                else:
                    for gone in [e for e in el.iter(_FILE, _FPTR)
                                 if e.get("ID" if e.tag == _FILE else "FILEID") in files]:
                        removed(gone)
                        _remove(gone)
                    xf.write(el)
                el.clear(keep_tail=True)  # memory: drop what is written, never what is read ahead
                while el.getprevious() is not None:
                    del root[0]
        section.__exit__(None, None, None)


def _remove(el: etree._Element) -> None:
    """Take `el` out of its parent, keeping the indentation of what follows."""
    parent = el.getparent()
    previous = el.getprevious()
    if previous is not None:
        previous.tail = el.tail
    else:
        parent.text = el.tail
    parent.remove(el)
