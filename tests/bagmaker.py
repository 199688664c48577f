"""Bags written by hand for the verify tests (never with bagit-python's make_bag in-process: it
calls os.chdir).  `make_bag_subprocess` runs bagit-python's make_bag in a child process."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Mapping, Optional

from pipeline.bag import encode_path


def digest(data: bytes, alg: str) -> str:
    return hashlib.new(alg, data).hexdigest()


def manifest_text(files: Mapping[str, bytes], alg: str) -> str:
    return "".join(f"{digest(data, alg)}  {encode_path(rel)}\n" for rel, data in sorted(files.items()))


def write_bag(root: Path, payload: Mapping[str, bytes], *, algorithms: Iterable[str] = ("sha256", "sha512"),
              tag_algorithms: Iterable[str] = ("sha256",), version: str = "1.0",
              info: Optional[list[tuple[str, str]]] = None, extra_tags: Mapping[str, bytes] = {}) -> Path:
    """A bag at `root` holding `payload` (paths relative to data/), manifests for each algorithm,
    bag-info.txt (Payload-Oxum and Bagging-Date unless `info` is given) and tag manifests."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    files = {f"data/{rel}": data for rel, data in payload.items()}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    if info is None:
        info = [("Bagging-Date", "2024-05-01"),
                ("Payload-Oxum", f"{sum(map(len, files.values()))}.{len(files)}")]
    tags = {"bagit.txt": f"BagIt-Version: {version}\nTag-File-Character-Encoding: UTF-8\n".encode()}
    info_name = "package-info.txt" if version in ("0.93", "0.94", "0.95") else "bag-info.txt"
    tags[info_name] = "".join(f"{k}: {v}\n" for k, v in info).encode()
    for alg in algorithms:
        tags[f"manifest-{alg}.txt"] = manifest_text(files, alg).encode()
    tags.update(extra_tags)
    for rel, data in tags.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    for alg in tag_algorithms:
        (root / f"tagmanifest-{alg}.txt").write_text(manifest_text(tags, alg), encoding="utf-8")
    return root


def rewrite_tagmanifests(root: Path) -> None:
    """Recompute the tag manifests after a test edited a tag file on purpose."""
    for tm in root.glob("tagmanifest-*.txt"):
        alg = tm.name[len("tagmanifest-"):-4]
        tags = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.iterdir()
                if p.is_file() and not p.name.startswith("tagmanifest-")}
        tm.write_text(manifest_text(tags, alg), encoding="utf-8")


MAKE_BAG = "import sys, bagit; bagit.make_bag(sys.argv[1], checksums=sys.argv[2:] or None)"


def make_bag_subprocess(folder: Path, *algorithms: str) -> Path:
    """bagit-python's make_bag, in a child process (it changes the working directory)."""
    subprocess.run([sys.executable, "-c", MAKE_BAG, str(folder), *algorithms], check=True,
                   capture_output=True, timeout=120)
    return folder
