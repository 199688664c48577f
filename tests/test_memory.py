"""The package stage holds one file at a time, not the payload list: its memory follows the
workers and the largest file, not the number of photographs (issue 7).  Measured with
tracemalloc (Python's allocations; deterministic for a given code path) on packages of 400 and
2,000 items as the describe stage leaves them (original, master, record copy and DC record per
item; the items in an ItemStore on disk, as in `pipeline run`).  Before the payload list moved
into a SQLite table, the stage held about 5.3 KB more per item at its peak (this test then failed)."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

from package_helpers import staged_file
from pipeline.itemstore import ItemStore, store_folder
from pipeline.model import METADATA, ORIGINAL, PRESERVATION, Item, Package, Record
from pipeline.stage import Context, Settings
from pipeline.stages import package

PER_ITEM_LIMIT = 400       # bytes


def _package(root: Path, n: int) -> tuple[Package, Context]:
    ctx = Context.create(Settings(), root / "ingest" / "mem", root / "output", "mem", "mem-1")
    store = ItemStore(store_folder(ctx.output), n)
    for i in range(n):
        rel = f"box{i // 250:02d}/p{i:05d}"
        store[i] = Item(
            id=ctx.make_id("item", rel), relpath=f"{rel}.jpg", record=Record(f"{rel}.json", {}),
            original=staged_file(ctx, ORIGINAL, f"data/objects/originals/{rel}.jpg", b"jpeg" * 10),
            masters=(staged_file(ctx, PRESERVATION, f"data/objects/preservation/{rel}.tif", b"tiff" * 30),),
            metadata=(staged_file(ctx, METADATA, f"data/metadata/submission/{rel}.json", b"{}"),
                      staged_file(ctx, METADATA, f"data/metadata/dc/items/{rel}.jpg.dcterms.xml", b"<dc/>")))
    meta = (staged_file(ctx, METADATA, "data/metadata/mets.xml", b"<mets/>"),)
    return Package(name="mem", source=ctx.ingest, collection=Record("collection.json", {"identifier": "mem-1"}),
                   items=store, metadata_files=meta), ctx


def _peak(root: Path, n: int) -> int:
    pkg, ctx = _package(root, n)
    tracemalloc.start()
    try:
        assert package.package_collection(pkg, ctx).published == ("mem",)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_package_stage_holds_little_per_item(tmp_path):
    small, large = _peak(tmp_path / "small", 400), _peak(tmp_path / "large", 2000)
    per_item = (large - small) / 1600
    assert per_item < PER_ITEM_LIMIT, f"{per_item:.0f} bytes more per item at the peak"
