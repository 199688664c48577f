"""Packages over real files in a staging folder, as the stages before `package` leave them.

Used by tests/stages/test_package.py, tests/test_publish.py and tests/test_serialize.py, and by
the subprocess driver of the kill -9 tests (`python tests/package_helpers.py OUTPUT NAME ...`).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Optional

import bagit

from pipeline.hashing import write_hashed
from pipeline.model import METADATA, ORIGINAL, PRESERVATION, FileInfo, Item, Package, Record
from pipeline.stage import Context, Settings

COLLECTION = {"identifier": "coll-1", "title": "Test photographs", "creator": "A. Photographer",
              "description": "Photographs made for the tests,\nover two lines.", "rights": "CC0",
              "organization": {"name": "Test Archive", "address": "1 Main Street, Town",
                               "contact_name": "Ann Archivist", "contact_email": "ann@example.org",
                               "contact_phone": "+1 555 0100"}}

# relpath in the collection -> bytes of the original; each gets a "master" of other bytes.
DEFAULT_ORIGINALS = {
    "a.jpg": b"jpeg bytes " * 50,
    "sub/b.png": b"png bytes " * 80,
    "sub/c d.jpg": b"spaces " * 30,
    "caf\u00e9 \u0424\u043e\u0442\u043e.jpg": b"unicode " * 20,
}


def _file(ctx: Context, role: str, bagpath: str, data: bytes) -> FileInfo:
    size, digests = write_hashed(ctx.staging / bagpath, data, ctx.settings.algorithms)
    return FileInfo(role=role, bagpath=bagpath, size=size, checksums=digests,
                    id=ctx.make_id(role, bagpath))


def build(output: Path, name: str = "coll", originals: Optional[Mapping[str, bytes]] = None,
          settings: Settings = Settings(), collection: Optional[Mapping] = None) -> tuple[Package, Context]:
    """Write originals, masters and metadata into output/.staging/<name>/data and describe them."""
    originals = DEFAULT_ORIGINALS if originals is None else originals
    record = dict(COLLECTION if collection is None else collection)
    ctx = Context.create(settings, output.parent / "ingest" / name, output, name,
                         str(record.get("identifier", "")))
    items = []
    for relpath, data in sorted(originals.items()):
        original = _file(ctx, ORIGINAL, f"data/objects/originals/{relpath}", data)
        master = _file(ctx, PRESERVATION, f"data/objects/preservation/{relpath}.tif", b"TIFF" + data[::-1])
        items.append(Item(id=ctx.make_id("item", relpath), relpath=relpath, record=None,
                          original=original, masters=(master,)))
    meta = (_file(ctx, METADATA, "data/metadata/mets.xml", b"<mets/>\n"),
            _file(ctx, METADATA, "data/metadata/dc.xml", b"<dc/>\n"),
            _file(ctx, METADATA, "data/metadata/submitted/collection.json", b"{}\n"))
    package = Package(name=name, source=ctx.ingest, collection=Record("collection.json", record),
                      items=tuple(items), metadata_files=meta)
    return package, ctx


def bagit_valid(path: Path) -> bool:
    """bagit-python's full validation (every checksum recomputed)."""
    bagit.Bag(str(path)).validate()
    return True


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes, for byte-identical comparisons."""
    out = {}
    for folder, _, names in os.walk(root):
        for n in names:
            p = Path(folder) / n
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


if __name__ == "__main__":
    # Driver for the kill -9 and concurrency tests: build (or rebuild, as upstream stages would on
    # a rerun) the staging payload, then run the package stage under the executor's lock.
    from pipeline.executor import collection_lock
    from pipeline.stages.package import package_collection

    out, name, max_size, fmt = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    originals = {f"img{i:03d}.jpg": os.urandom(1) * (20_000 + i) for i in range(int(sys.argv[5]))}
    with collection_lock(out, name):
        pkg, context = build(out, name, originals, Settings(max_bag_size=max_size, serialize=fmt))
        if os.environ.get("PACKAGE_TEST_PAUSE"):  # hold the lock until told to go on
            Path(os.environ["PACKAGE_TEST_PAUSE"] + ".ready").touch()
            while not Path(os.environ["PACKAGE_TEST_PAUSE"] + ".go").exists():
                time.sleep(0.02)
        result = package_collection(pkg, context)
    print(" ".join(result.published))
