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


def _traced_peak(work) -> int:
    """The peak of Python's allocations while `work()` runs."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _sealed(pkg: Package, ctx: Context) -> None:
    assert package.package_collection(pkg, ctx).published == ("mem",)


def _peak(root: Path, n: int) -> int:
    pkg, ctx = _package(root, n)
    return _traced_peak(lambda: _sealed(pkg, ctx))


def test_the_package_stage_holds_little_per_item(tmp_path):
    small, large = _peak(tmp_path / "small", 400), _peak(tmp_path / "large", 2000)
    per_item = (large - small) / 1600
    assert per_item < PER_ITEM_LIMIT, f"{per_item:.0f} bytes more per item at the peak"


# Validation's collection-level checks (duplicate identifiers, name twins, place spellings) keep a
# few keys and indexes per item, not the items' records: 1,182 bytes more per item at the peak
# before (the test failed then), 314 now.
CHECKS_PER_ITEM_LIMIT = 700     # bytes
PLACES = ("Khojaly", "Shusha", "Aghdam", "Lachin", "Kalbajar")


def _checks_peak(root: Path, n: int) -> int:
    from pipeline.stages import validate
    ctx = Context.create(Settings(), root / "ingest" / "mem", root / "output", "mem", "mem-1")
    store = ItemStore(store_folder(ctx.output), n)
    for i in range(n):
        rel = f"box{i // 250:02d}/photograph-{i:06d}"
        store[i] = Item(id=ctx.make_id("item", rel), relpath=f"{rel}.jpg", record=Record(
            f"{rel}.json", {"identifier": f"mem-{i:06d}", "title": "A title " * 8,
                            "place": [PLACES[i % len(PLACES)], "Azerbaijan"]}))
    pkg = Package(name="mem", source=ctx.ingest, collection=None, items=store)
    return _traced_peak(lambda: _checked_clean(validate.validate_collection_level(pkg, ctx)))


def _checked_clean(checked: Package) -> None:
    assert not checked.problems, [p.render() for p in checked.problems]


def test_the_collection_level_checks_hold_little_per_item(tmp_path):
    small, large = _checks_peak(tmp_path / "small", 400), _checks_peak(tmp_path / "large", 2000)
    per_item = (large - small) / 1600
    assert per_item < CHECKS_PER_ITEM_LIMIT, f"{per_item:.0f} bytes more per item at the peak"


# Discovery pairs each image with its sidecar by name and reads none of them; the package lists
# only the record files no item carries.  It listed every sidecar a second time before (a Record
# and a dict each): 1,118 bytes per item at the peak then (the test failed), 758 now.
DISCOVERY_PER_ITEM_LIMIT = 900     # bytes


def _discovery_peak(root: Path, n: int) -> int:
    from pipeline.stages import discover
    folder = root / "ingest" / "mem"
    folder.mkdir(parents=True)
    (folder / "collection.json").write_text('{"identifier": "mem-1"}', encoding="utf-8")
    for i in range(n):
        box = folder / f"box{i // 250:02d}"
        box.mkdir(exist_ok=True)
        (box / f"p{i:05d}.jpg").write_bytes(b"\xff\xd8")
        (box / f"p{i:05d}.json").write_bytes(b"{}")
    ctx = Context.create(Settings(), folder, root / "output", "mem")
    empty = Package(name="mem", source=folder, collection=None)
    return _traced_peak(lambda: _discovered(discover.discover(empty, ctx), n))


def _discovered(found: Package, n: int) -> None:
    assert len(found.items) == n and not found.problems
    assert [r.path for r in found.records] == ["collection.json"]


def test_discovery_holds_little_per_item(tmp_path):
    small, large = _discovery_peak(tmp_path / "small", 400), _discovery_peak(tmp_path / "large", 2000)
    per_item = (large - small) / 1600
    assert per_item < DISCOVERY_PER_ITEM_LIMIT, f"{per_item:.0f} bytes more per item at the peak"
