"""Writing a bag's tag files (RFC 8493): bagit.txt, bag-info.txt, manifests, tag manifests.

Payload manifests are written from the checksums the earlier stages computed while they wrote
each file (`FileInfo.checksums`); no payload file is read here.  The payload comes as a
`filetable.FileTable` (files in bag-path order, one row at a time): manifests are streamed to
their files, so no tag file of any size is held in memory.  Tag files are hashed as they are
written (`hashing.write_hashed`, `xmlio.hashed_output`), and the tag manifests list every one of
them.  Manifest paths
are percent-encoded with `bag.encode_path` (CR, LF and `%` only); unicode names are kept as given.
"""
from __future__ import annotations

import re
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from . import __version__
from .bag import encode_path
from .filetable import BATCH, FileTable
from .hashing import hash_bytes, write_hashed
from .model import FileInfo
from .xmlio import hashed_output

BAGIT_TXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"

# The identifier of schemas/bagit-profile.json (its BagIt-Profile-Info/BagIt-Profile-Identifier).
PROFILE_ID = "urn:preservation-pipeline:bagit-profile:1.0"

_TAG_NAME = re.compile(r"^(bagit\.txt|bag-info\.txt|fetch\.txt|(tag)?manifest-[A-Za-z0-9]+\.txt)$")
_SPACE = re.compile(r"[\s\x00-\x1f\x7f\u2028\u2029]+")


def is_tag_file_name(name: str) -> bool:
    """A top-level name this module writes (or a stale one of its kind, e.g. another algorithm)."""
    return bool(_TAG_NAME.match(name))


def tag_value(value: Any) -> str:
    """One line of text: whitespace and control characters folded into single spaces."""
    return _SPACE.sub(" ", str(value)).strip()


def manifest_line(f: FileInfo, algorithm: str) -> str:
    """`checksum  path` of one file, the path percent-encoded."""
    return f"{f.checksums[algorithm].lower()}  {encode_path(f.bagpath)}\n"


def manifest_bytes(bagpath: str, algorithms: Sequence[str]) -> int:
    """The bytes the lines of the file `bagpath` take in the manifests, one per algorithm (a
    checksum is as long as the empty input's, in hex)."""
    return len(algorithms) * (len(encode_path(bagpath).encode("utf-8")) + 3) + _hex_width(tuple(algorithms))


@lru_cache(maxsize=None)
def _hex_width(algorithms: tuple[str, ...]) -> int:
    return sum(len(digest) for digest in hash_bytes(b"", algorithms).values())


INFO_SLACK = 16     # bag-info.txt bytes a bag's own Payload-Oxum and Bag-Size may take beyond another's


def tag_bytes_bound(info: Sequence[tuple[str, str]], algorithms: Sequence[str]) -> int:
    """The most bytes bagit.txt, bag-info.txt and the tag manifests (every tag file but the
    payload manifests) take in a bag whose bag-info is `info` but for its Payload-Oxum and
    Bag-Size (the values of another payload: INFO_SLACK covers a digit more or less)."""
    names = ["bagit.txt", "bag-info.txt"] + [f"manifest-{alg}.txt" for alg in algorithms]
    tag_manifests = sum(manifest_bytes(name, algorithms) for name in names)
    return len(BAGIT_TXT.encode("utf-8")) + len(tag_text(info).encode("utf-8")) + INFO_SLACK + tag_manifests


def payload_oxum(files: FileTable) -> str:
    return f"{files.total_size()}.{len(files)}"


def human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"


def organization_tags(collection: Mapping[str, Any], override: str = "") -> list[tuple[str, str]]:
    """Source-Organization, Organization-Address and Contact-* from the collection record's
    `organization` object (schemas/collection.schema.json); `override` (Settings.organization)
    replaces the organization's name."""
    org = collection.get("organization") or {}
    if not isinstance(org, Mapping):
        org = {"name": org}
    pairs = [("Source-Organization", override or org.get("name")),
             ("Organization-Address", org.get("address")),
             ("Contact-Name", org.get("contact_name")),
             ("Contact-Phone", org.get("contact_phone")),
             ("Contact-Email", org.get("contact_email"))]
    return [(k, tag_value(v)) for k, v in pairs if v and tag_value(v)]


def bag_info(*, collection: Mapping[str, Any], identifier: str, description: str, date: str,
             files: FileTable, organization: str = "",
             group: Optional[tuple[str, int, int]] = None) -> list[tuple[str, str]]:
    """The bag-info.txt labels and values, in a fixed order."""
    pairs = organization_tags(collection, organization)
    pairs += [("External-Identifier", tag_value(identifier)),
              ("External-Description", tag_value(description)),
              ("Bagging-Date", date),
              ("Bag-Software-Agent", f"preservation-pipeline {__version__}"),
              ("BagIt-Profile-Identifier", PROFILE_ID),
              ("Payload-Oxum", payload_oxum(files)),
              ("Bag-Size", human_size(files.total_size()))]
    if group is not None:
        group_id, number, count = group
        pairs += [("Bag-Group-Identifier", tag_value(group_id)), ("Bag-Count", f"{number} of {count}")]
    return [(k, v) for k, v in pairs if v]


def tag_text(pairs: Iterable[tuple[str, str]]) -> str:
    return "".join(f"{label}: {value}\n" for label, value in pairs)


def write_tag_files(bag: Path, files: FileTable, info: Sequence[tuple[str, str]],
                    algorithms: Sequence[str]) -> list[str]:
    """Write every tag file of `bag`; returns their names.  Stale tag files are removed first.
    Payload manifests are written a batch of lines at a time, hashed as they are written."""
    for entry in bag.iterdir():
        if entry.is_file() and is_tag_file_name(entry.name):
            entry.unlink()
    written: dict[str, dict[str, str]] = {}

    def put(name: str, text: str) -> None:
        _, digests = write_hashed(bag / name, text.encode("utf-8"), algorithms)
        written[name] = digests

    put("bagit.txt", BAGIT_TXT)
    put("bag-info.txt", tag_text(info))
    for alg in algorithms:
        name = f"manifest-{alg}.txt"
        lines = (manifest_line(f, alg) for f in files)
        with hashed_output(bag / name, algorithms) as out:
            while chunk := "".join(islice(lines, BATCH)):
                out.write(chunk.encode("utf-8"))
        written[name] = out.digests()
    tagged = sorted(written)
    for alg in algorithms:
        lines = "".join(f"{written[name][alg]}  {encode_path(name)}\n" for name in tagged)
        put(f"tagmanifest-{alg}.txt", lines)
    return sorted(written)
