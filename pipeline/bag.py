"""Reading BagIt bags (RFC 8493): the shared core of `pipeline verify` and `pipeline fixity`.

Reads only; never writes inside a bag; never follows a path outside it.  Manifest paths are
decoded per RFC 8493 section 2.1.3: `%0D`, `%0A` and `%25` (either case) and nothing else.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MANIFEST_RE = re.compile(r"^(tag)?manifest-([A-Za-z0-9]+)\.txt$")
_PCT = re.compile(r"%(0[dDaA]|25)")


def decode_path(text: str) -> str:
    """Undo RFC 8493 percent-encoding (only CR, LF and %)."""
    return _PCT.sub(lambda m: {"0d": "\r", "0a": "\n", "25": "%"}[m.group(1).lower()], text)


def encode_path(path: str) -> str:
    """RFC 8493 percent-encoding of a path for a manifest line."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def nfc(path: str) -> str:
    return unicodedata.normalize("NFC", path)


@dataclass
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


def parse_manifest(path: Path, encoding: str = "utf-8") -> Manifest:
    m = MANIFEST_RE.match(path.name)
    if not m:
        raise ValueError(f"{path.name} is not a manifest name")
    manifest = Manifest(name=path.name, algorithm=m.group(2).lower(), tag=bool(m.group(1)))
    text = path.read_bytes().decode(encoding)
    # Only LF and CRLF end lines here: a literal U+2028 or other separator is part of a name.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if line == "":
            continue
        digest, sep, rest = line.partition(" ")
        if not sep:
            digest, sep, rest = line.partition("\t")
        if not sep or not rest.strip(" \t"):
            manifest.errors.append((number, "not a 'checksum path' line"))
            continue
        # Separator is one or more spaces/tabs; the path keeps any trailing spaces.
        stripped = rest.lstrip(" \t")
        if stripped.startswith("*"):
            manifest.legacy_lines.append(number)
            stripped = stripped[1:]
        if not re.fullmatch(r"[0-9A-Fa-f]+", digest):
            manifest.errors.append((number, f"checksum {digest!r} is not hexadecimal"))
            continue
        manifest.entries.append(ManifestEntry(decode_path(stripped), digest.lower(), number))
    return manifest


def read_tag_file(path: Path, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """Labels and values of a tag file (bagit.txt, bag-info.txt), continuation lines folded."""
    pairs: list[tuple[str, str]] = []
    for raw in path.read_bytes().decode(encoding).splitlines():
        if raw[:1] in (" ", "\t") and pairs:
            label, value = pairs[-1]
            pairs[-1] = (label, value + " " + raw.strip())
            continue
        if not raw.strip():
            continue
        label, sep, value = raw.partition(":")
        pairs.append((label, value.strip()) if sep else (raw, ""))
    return pairs


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
