"""Reading BagIt bags (RFC 8493): the shared core of `pipeline verify` and `pipeline fixity`.

Reads only; never writes inside a bag; never follows a path outside it.  Manifest paths are
decoded per RFC 8493 section 2.1.3: `%0D`, `%0A` and `%25` (either case) and nothing else.
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MANIFEST_RE = re.compile(r"^(tag)?manifest-([A-Za-z0-9]+)\.txt$")
_PCT = re.compile(r"%(0[dDaA]|25)")


def decode_path(text: str) -> str:
    """Undo RFC 8493 percent-encoding (only CR, LF and %)."""
    if "%" not in text:
        return text
    return _PCT.sub(lambda m: {"0d": "\r", "0a": "\n", "25": "%"}[m.group(1).lower()], text)


def encode_path(path: str) -> str:
    """RFC 8493 percent-encoding of a path for a manifest line."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def nfc(path: str) -> str:
    return unicodedata.normalize("NFC", path)


@dataclass(slots=True)
class ManifestEntry:
    path: str          # decoded, relative to the bag root, POSIX
    digest: str        # lower-case hex
    line: int          # 1-based line number in the manifest


@dataclass
class Manifest:
    name: str                       # file name, e.g. manifest-sha256.txt
    algorithm: str                  # e.g. sha256
    tag: bool                       # tag manifest?
    entries: list[ManifestEntry] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, reason) for bad lines
    legacy_lines: list[int] = field(default_factory=list)         # md5sum-style "digest *path"
    bom: bool = False                                             # started with a byte-order mark


_LINE = re.compile(r"^([^ \t]*)[ \t]+(.*)$", re.S)
_EOL = re.compile(r"\r\n|\n|\r")   # RFC 8493 line ends; U+2028 and friends are not among them
_HEX = re.compile(r"[0-9A-Fa-f]+")


def parse_manifest(path: Path, encoding: str = "utf-8") -> Manifest:
    return parse_manifest_bytes(path.name, path.read_bytes(), encoding)


def parse_manifest_bytes(name: str, data: bytes, encoding: str = "utf-8") -> Manifest:
    """Parse a manifest's bytes.  Raises UnicodeDecodeError/LookupError when they do not decode."""
    m = MANIFEST_RE.match(name)
    if not m:
        raise ValueError(f"{name} is not a manifest name")
    manifest = Manifest(name=name, algorithm=m.group(2).lower(), tag=bool(m.group(1)))
    text = data.decode(encoding)
    if text.startswith("\ufeff"):
        manifest.bom = True
        text = text[1:]
    # Only LF, CRLF and CR end lines here: a literal U+2028 or other separator is part of a name.
    for number, raw in enumerate(_EOL.split(text), start=1):
        if raw == "":
            continue
        match = _LINE.match(raw)
        if not match or not match.group(1) or not match.group(2).strip(" \t"):
            manifest.errors.append((number, "not a 'checksum path' line"))
            continue
        digest, rest = match.groups()
        # Separator is one or more spaces/tabs; the path keeps any trailing spaces.
        if rest.startswith("*"):
            manifest.legacy_lines.append(number)
            rest = rest[1:]
        if not _HEX.fullmatch(digest):
            manifest.errors.append((number, f"checksum {digest!r} is not hexadecimal"))
            continue
        manifest.entries.append(ManifestEntry(decode_path(rest), digest.lower(), number))
    return manifest


def read_tag_file(path: Path, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """Labels and values of a tag file (bagit.txt, bag-info.txt), continuation lines folded."""
    return [(t.label, t.value) for t in parse_tags(path.read_bytes().decode(encoding))]


@dataclass
class Tag:
    label: str         # as written, surrounding whitespace stripped
    value: str         # continuation lines folded with one space
    line: int          # 1-based line of the label
    raw_label: str     # as written, before the colon (may carry whitespace)
    colon: bool = True  # False: a line with no colon at all


def parse_tags(text: str) -> list[Tag]:
    """The tags of a tag file's text; lines end with LF, CRLF or CR (RFC 8493 section 2.2.2)."""
    tags: list[Tag] = []
    for number, raw in enumerate(_EOL.split(text), start=1):
        if raw[:1] in (" ", "\t") and tags and raw.strip():
            tags[-1].value = (tags[-1].value + " " + raw.strip()).strip()
            continue
        if not raw.strip():
            continue
        label, sep, value = raw.partition(":")
        tags.append(Tag(label.strip(), value.strip(), number, label, bool(sep)))
    return tags


def is_inside(bag: Path, relpath: str) -> bool:
    """True when `relpath` names something inside the bag (no `..`, not absolute)."""
    p = PurePosixPath(relpath)
    if p.is_absolute() or relpath.startswith("/") or "\\" in relpath:
        return False
    return ".." not in p.parts and "" != relpath


def payload_files(bag: Path) -> list[str]:
    """Every regular file under data/, as POSIX paths relative to the bag; symlinks not followed."""
    out: list[str] = []
    data = bag / "data"
    if not data.is_dir() or data.is_symlink():
        return out
    stack = [data]
    while stack:
        folder = stack.pop()
        for entry in folder.iterdir():
            if entry.is_symlink():
                out.append(entry.relative_to(bag).as_posix())  # reported by callers, never followed
            elif entry.is_dir():
                stack.append(entry)
            elif entry.is_file():
                out.append(entry.relative_to(bag).as_posix())
    return sorted(out)


def find_manifests(bag: Path) -> list[Path]:
    return sorted(p for p in bag.iterdir() if p.is_file() and MANIFEST_RE.match(p.name))


@dataclass
class Listing:
    """What is inside a bag folder, read without following any link."""

    files: dict[str, int] = field(default_factory=dict)   # regular files: relpath -> size
    links: list[str] = field(default_factory=list)        # symbolic links (never followed)
    special: list[str] = field(default_factory=list)      # fifos, sockets, devices
    dirs: list[str] = field(default_factory=list)         # every folder, relpath
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (folder relpath, reason)


def list_bag(bag: Path) -> Listing:
    """Every entry of the bag, walked with os.scandir and never through a symlink."""
    out = Listing()
    stack = [("", str(bag))]
    while stack:
        prefix, folder = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError as exc:
            out.unreadable.append((prefix.rstrip("/") or ".", exc.strerror or str(exc)))
            continue
        with it:
            for entry in it:
                rel = prefix + entry.name
                if entry.is_symlink():
                    out.links.append(rel)
                elif entry.is_dir(follow_symlinks=False):
                    out.dirs.append(rel)
                    stack.append((rel + "/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    try:
                        out.files[rel] = entry.stat(follow_symlinks=False).st_size
                    except OSError as exc:   # vanished while listed
                        out.unreadable.append((rel, exc.strerror or str(exc)))
                else:
                    out.special.append(rel)
    return out
