"""The local executor: a real process pool, bounded in-flight work, order, errors, lock, reports."""
from __future__ import annotations

import os
import pickle
import tracemalloc
import weakref
from dataclasses import replace

import pytest

import helpers_stages as hs
from pipeline.errors import ConversionError, PipelineError, ProcessingError, UsageError
from pipeline.executor import collection_lock, map_items, run_stage
from pipeline.itemstore import ItemStore
from pipeline.model import FileInfo, Item, Package
from pipeline.report import stage_report
from pipeline.stage import Context, Settings, Stage


def make_ctx(tmp_path, workers=2, executor="local", scheduler=""):
    settings = Settings(workers=workers, executor=executor, scheduler=scheduler)
    return Context.create(settings, tmp_path / "ingest" / "coll", tmp_path / "output", "coll")


class CountingItems:
    """A sequence that counts how many items the executor has taken from it."""

    def __init__(self, items):
        self.items, self.taken = items, 0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def __iter__(self):
        for item in self.items:
            self.taken += 1
            yield item


def test_pool_results_match_serial_run_in_input_order(tmp_path):
    ctx = make_ctx(tmp_path, workers=2)
    items = hs.make_items(ctx, 40)
    pooled = map_items(hs.digest_item, items, ctx, "convert")
    serial = map_items(hs.digest_item, items, replace(ctx, settings=Settings(workers=1)), "convert")
    assert pooled == serial
    assert [i.relpath for i in pooled] == [i.relpath for i in items]


def test_pool_runs_items_in_other_processes(tmp_path):
    ctx = make_ctx(tmp_path, workers=2)
    out = map_items(hs.where_item, hs.make_items(ctx, 8), ctx, "convert")
    pids = {i.image["pid"] for i in out}
    assert os.getpid() not in pids


def test_in_flight_items_bounded_by_twice_the_workers(tmp_path):
    ctx = make_ctx(tmp_path, workers=2)
    items = CountingItems(hs.make_items(ctx, 60))
    seen = []

    def progress(stage, done, total):
        seen.append((done, items.taken))

    map_items(hs.digest_item, items, ctx, "convert", progress)
    assert seen[-1] == (60, 60)
    assert max(taken - done for done, taken in seen) <= 2 * 2


def test_progress_reports_every_item_with_the_stage_name(tmp_path):
    ctx = make_ctx(tmp_path, workers=2)
    calls = []
    map_items(hs.digest_item, hs.make_items(ctx, 7), ctx, "validate", lambda *a: calls.append(a))
    assert calls[0] == ("validate", 0, 7)
    assert [c[1] for c in calls] == list(range(8))
    assert {c[0] for c in calls} == {"validate"}


def test_pipeline_error_in_a_worker_reaches_the_caller_unchanged(tmp_path):
    ctx = make_ctx(tmp_path, workers=2)
    with pytest.raises(ConversionError, match="img0002.jpg: cannot be converted"):
        map_items(hs.failing_item, hs.make_items(ctx, 10), ctx, "convert")


def test_workers_write_into_staging_and_it_is_kept(tmp_path):
    ctx = make_ctx(tmp_path, workers=2)
    stage = Stage("convert", per_item=hs.stage_file_item)
    pkg = Package(name="coll", source=ctx.ingest, collection=None, items=tuple(hs.make_items(ctx, 6)))
    out = run_stage(stage, [pkg], ctx)
    assert out.stages_done == ("convert",)
    assert len(hs.staged_files(ctx)) == 6
    assert all(len(i.image["sha256"]) == 64 for i in out.items)


def test_empty_collection_maps_to_nothing(tmp_path):
    ctx = make_ctx(tmp_path, workers=2)
    assert map_items(hs.digest_item, [], ctx, "convert") == []


def test_output_locked_second_run_on_same_collection_refused(tmp_path):
    with collection_lock(tmp_path, "coll"):
        with pytest.raises(PipelineError, match="another run is working on this collection"):
            with collection_lock(tmp_path, "coll"):
                pass
    with collection_lock(tmp_path, "coll"):  # released: a later run may take it
        pass


def test_stage_report_counts_items_bytes_and_new_problems(tmp_path):
    ctx = make_ctx(tmp_path, workers=2)
    items = tuple(replace(i, original=FileInfo("original", f"data/objects/originals/{i.relpath}", 100, {}))
                  for i in hs.make_items(ctx, 3))
    before = Package(name="coll", source=ctx.ingest, collection=None, items=items)
    after = run_stage(Stage("validate", per_item=hs.problem_item), [before], ctx)
    report = stage_report("validate", 0.5, before, after).as_dict()
    assert report.pop("peak_mb") > 10  # this Python process holds more than 10 MB
    assert report == {"stage": "validate", "seconds": 0.5, "items": 3, "bytes": 300,
                      "bytes_added": 0, "problems": 1, "errors": 1}


def test_stage_lets_each_input_item_go_once_handed_out(tmp_path):
    ctx = make_ctx(tmp_path, workers=2)
    refs = []

    def fresh_package():
        items = tuple(hs.make_items(ctx, 40))
        refs.extend(weakref.ref(i) for i in items)
        return Package(name="coll", source=ctx.ingest, collection=None, items=items)

    alive = []
    out = run_stage(Stage("convert", per_item=hs.digest_item), [fresh_package()], ctx,
                    lambda s, done, total: alive.append(sum(r() is not None for r in refs)))
    assert len(out.items) == 40
    assert alive[0] == 40 and alive[-1] <= 2 * 2  # only the items still in flight are held


def test_a_package_handed_in_a_list_lets_its_items_go_while_the_stage_runs(tmp_path):
    """pipeline run names its package; handed over in a list that run_stage empties, the input
    items are freed as the workers take them.  Held by the caller, all of them live to the end
    (that was the discover stage's whole collection, alive through validation)."""
    ctx = make_ctx(tmp_path, workers=2)
    stage = Stage("convert", per_item=hs.digest_item)
    for boxed in (True, False):
        items = tuple(hs.make_items(ctx, 40))
        refs = [weakref.ref(i) for i in items]
        package = Package(name="coll", source=ctx.ingest, collection=None, items=items)
        del items
        alive = []

        def count(s, done, total):
            alive.append(sum(r() is not None for r in refs))
        if boxed:
            handed = [package]
            del package
            out = run_stage(stage, handed, ctx, count)
            assert handed == [] and alive[-1] <= 2 * 2
        else:
            out = run_stage(stage, [package], ctx, count)     # the caller still holds it
            assert alive[-1] == 40
        assert len(out.items) == 40


def test_stage_results_are_kept_on_disk_in_order(tmp_path):
    """Between stages the items live in an ItemStore: in input order, equal to what the workers
    returned, and the process holds an offset per item rather than the items."""
    ctx = make_ctx(tmp_path, workers=2)
    pkg = Package(name="coll", source=ctx.ingest, collection=None, items=tuple(hs.make_items(ctx, 60)))
    out = run_stage(Stage("validate", per_item=hs.event_item), [pkg], ctx, on_disk=True)
    assert isinstance(out.items, ItemStore) and len(out.items) == 60
    assert out.items == tuple(hs.event_item(i, ctx) for i in pkg.items)
    assert [i.relpath for i in out.items] == [i.relpath for i in pkg.items]
    again = run_stage(Stage("convert", per_item=hs.digest_item), [out], ctx, on_disk=True)   # a store in, a store out
    assert [i.image["digest"] for i in again.items] == [hs.digest_item(i, ctx).image["digest"] for i in out.items]


def test_item_store_holds_offsets_not_items(tmp_path):
    big = "x" * 20_000
    items = [Item(id=f"i{n}", relpath=f"{n}.jpg", record=None, image={"note": big + str(n)}) for n in range(300)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = ItemStore.of(tmp_path, iter(items), len(items))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 300 * 1000          # the 6 MB of items are on disk, not here
    assert store[299] == items[299] and store[-1] == items[-1] and store[1:3] == tuple(items[1:3])
    assert list(store) == items and len(store) == 300
    assert pickle.loads(pickle.dumps(store)) == tuple(items)   # travels as a plain tuple


def test_item_store_takes_results_in_any_order(tmp_path):
    items = [Item(id=f"i{n}", relpath=f"{n}.jpg", record=None) for n in range(5)]
    store = ItemStore(tmp_path, 5)
    for n in (3, 0, 4, 1):
        store[n] = items[n]
    with pytest.raises(IndexError):
        store[2]                      # never stored: an error, not a silent None
    store[2] = items[2]
    assert list(store) == items
    assert all(p.name.startswith(".items-") for p in tmp_path.iterdir())   # nothing else left there


def test_item_store_answers_problems_and_sizes_without_loading(tmp_path):
    from pipeline.errors import Problem
    from pipeline.report import payload_bytes
    orig = FileInfo(role="original", bagpath="data/a.jpg", size=10, checksums={})
    items = [Item(id="a", relpath="a.jpg", record=None, original=orig,
                  problems=(Problem("image.warning", "a.jpg", "odd"),)),
             Item(id="b", relpath="b.jpg", record=None)]
    store = ItemStore.of(tmp_path, items, 2)
    package = Package(name="c", source=tmp_path, collection=None, items=store)
    as_tuple = Package(name="c", source=tmp_path, collection=None, items=tuple(items))
    assert package.all_problems == as_tuple.all_problems == list(items[0].problems)
    assert payload_bytes(package) == payload_bytes(as_tuple) == 10


def test_item_store_that_cannot_be_made_is_a_pipeline_error(tmp_path):
    (tmp_path / "taken").write_text("a file where the store's folder should be")
    with pytest.raises(ProcessingError, match="cannot keep the run's items on disk"):
        ItemStore(tmp_path / "taken", 3)


def test_a_worker_that_dies_is_a_processing_error(tmp_path):
    """A worker killed mid-item (the OOM killer, a crash in a C decoder) ends the stage with a
    one-line ProcessingError naming the item, not a BrokenProcessPool traceback."""
    ctx = make_ctx(tmp_path, workers=2)
    with pytest.raises(ProcessingError, match=r"img000\d.jpg: a worker process died"):
        map_items(hs.dies, hs.make_items(ctx, 4), ctx, "convert")     # in a pool of 2


def test_an_output_that_cannot_hold_the_work_area_is_a_usage_error(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".staging").write_text("a file where the work area goes")
    with pytest.raises(UsageError, match="cannot hold the run's work area"):
        with collection_lock(tmp_path / "out", "coll"):
            pass


def test_validate_alone_writes_nothing(tmp_path, monkeypatch):
    """`pipeline validate` keeps its items in memory: no output/ folder appears where it runs."""
    from pipeline import validate_collection
    monkeypatch.chdir(tmp_path)
    coll = tmp_path / "coll"
    coll.mkdir()
    (coll / "collection.json").write_text('{"identifier": "c", "title": "C"}')
    validate_collection(coll)
    assert not (tmp_path / "output").exists()
