"""Small per-item stage functions for the executor and cluster tests.

Module-level so that process pools and Dask workers can import them by name (the Dask workers in
tests/test_cluster.py get tests/ on their PYTHONPATH).
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace
from pathlib import Path

from pipeline.errors import ConversionError, Problem
from pipeline.hashing import write_hashed
from pipeline.model import Item, Record
from pipeline.stage import Context


def make_items(ctx: Context, n: int) -> list[Item]:
    return [Item(id=ctx.make_id(f"img{i:04d}.jpg"), relpath=f"img{i:04d}.jpg",
                 record=Record(path=f"img{i:04d}.json", data={"identifier": f"id-{i}"}))
            for i in range(n)]


def digest_item(item: Item, ctx: Context) -> Item:
    """Deterministic work that depends only on the item and the context."""
    digest = hashlib.sha256(f"{ctx.collection_id}/{item.relpath}".encode()).hexdigest()
    return replace(item, image={"digest": digest, "when": ctx.now()})


def where_item(item: Item, ctx: Context) -> Item:
    """Records which process ran the item (to show the work really left the main process)."""
    return replace(item, image={"pid": os.getpid()})


def slow_item(item: Item, ctx: Context) -> Item:
    time.sleep(0.3)
    return digest_item(item, ctx)


def stage_file_item(item: Item, ctx: Context) -> Item:
    """Writes one file per item into staging, as a converting stage would."""
    data = f"{item.id} {item.relpath}\n".encode()
    size, digests = write_hashed(ctx.staging / "work" / f"{item.relpath}.txt", data, ("sha256",))
    return replace(item, image={"size": size, "sha256": digests["sha256"]})


def failing_item(item: Item, ctx: Context) -> Item:
    """Fails on the third item with a pipeline error, as a stage does on a broken image."""
    if item.relpath == "img0002.jpg":
        raise ConversionError(f"{item.relpath}: cannot be converted")
    return digest_item(item, ctx)


def problem_item(item: Item, ctx: Context) -> Item:
    """Adds an error problem to one item (the way stages report input problems)."""
    if item.relpath == "img0001.jpg":
        return replace(item, problems=(Problem("io.read", item.relpath, "unreadable"),))
    return item


def staged_files(ctx: Context) -> list[Path]:
    return sorted((ctx.staging / "work").glob("*.txt"))


def make_collection(root: Path, n: int = 4, size: tuple[int, int] = (48, 32), name: str = "coll") -> Path:
    """A small valid collection: collection.json, n JPEGs with sidecar records."""
    import json

    from PIL import Image

    folder = root / name
    folder.mkdir(parents=True)
    (folder / "collection.json").write_text(json.dumps({
        "identifier": name, "title": f"Test collection {name}", "creator": "Test Photographer",
        "description": "Generated for the executor tests.", "rights": "CC0",
        "organization": {"name": "Test Archive"}}), encoding="utf-8")
    for i in range(n):
        img = Image.new("RGB", size, (i * 40 % 256, 80, 160))
        img.putpixel((i % size[0], 0), (255, 255, 255))
        img.save(folder / f"img{i:04d}.jpg", quality=90)
        (folder / f"img{i:04d}.json").write_text(json.dumps({
            "identifier": f"{name}-{i:04d}", "date": "1992-02", "place": ["Azerbaijan", "Aghdam"],
            "caption": f"Photograph {i}"}), encoding="utf-8")
    return folder


def make_busy_collection(root: Path, n: int = 16, size: tuple[int, int] = (1600, 1200),
                         name: str = "busy") -> Path:
    """A valid collection whose conversion takes a few seconds (noisy RGB photographs)."""
    import numpy as np
    from PIL import Image

    folder = make_collection(root, n=n, size=(8, 8), name=name)
    rng = np.random.default_rng(7)
    for i in range(n):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"img{i:04d}.jpg", quality=90)
    return folder


def bag_bytes(bag: Path) -> dict[str, bytes]:
    """Every file of a bag by its relative path (to compare two bags byte for byte)."""
    return {p.relative_to(bag).as_posix(): p.read_bytes() for p in sorted(bag.rglob("*")) if p.is_file()}


def wait_for(condition, timeout: float = 60.0, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step)
    return False


def event_item(item: Item, ctx: Context) -> Item:
    """Records a PREMIS event with the pipeline's agent, as every converting stage does."""
    from pipeline.model import Event, pipeline_agent

    event = Event(id=ctx.make_id("event", item.relpath), type="validation", datetime=ctx.now(),
                  agents=((pipeline_agent(), "executing program"),))
    return replace(item, events=item.events + (event,))


def dies(item: Item, ctx: Context) -> Item:
    """A worker killed while it works on an item."""
    os._exit(3)
