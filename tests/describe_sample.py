"""A package as the describe stage receives it, built from real files (for the describe tests).

The ingest folder holds a collection record, sidecar records and Pillow-made JPEGs; the staging
bag holds byte copies of the originals and real TIFF masters, hashed as they were written, with
the events an upstream stage records.  Used where the upstream stages are not the point.
"""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from pipeline.hashing import copy_hashed, hash_file
from pipeline.model import (Event, FileInfo, Item, Package, ORIGINAL, PRESERVATION, Record,
                            software_agent)
from pipeline.stage import Context, Settings

COLLECTION = {
    "identifier": "khojaly-1992", "title": "Khojaly, February 1992", "creator": "Reza Deghati",
    "description": "Photographs taken immediately after the Khojaly tragedy.",
    "source": "https://example.org/essay", "rights": "All rights reserved", "language": "en",
    "organization": {"name": "Example Archive"},
}

RECORDS = [
    {"identifier": "kh-001", "date": "1992-02", "date_original": "February 1992",
     "place": ["Azerbaijan", "Karabakh", "Aghdam"], "title": "Mosque of Aghdam",
     "caption": "The woman standing among the men identified her brother\u00eds body.",
     "creator": "Reza Deghati", "subjects": ["Khojaly massacre", "Mourning"], "language": "en",
     "rights": "All rights reserved", "source": "Essay, photograph 1"},
    {"identifier": "kh-002", "date": "1992?", "date_original": "1992",
     "place": ["Azerbaijan", "Road between Khojaly and Agdam"], "title": "Road",
     "creator": "Reza Deghati", "rights": "All rights reserved"},
]
NAMES = ["photos/001 first.jpg", "photos/002.jpg"]


def _event(ctx, kind, item_rel, objects, **kw):
    return Event(id=ctx.make_id("event", kind, item_rel), type=kind, datetime=ctx.now(),
                 agents=((software_agent("Pillow", "13.0.0"), "executing program"),), objects=objects, **kw)


def build(tmp_path: Path, records=RECORDS, names=NAMES, monkeypatch=None, settings=None) -> tuple[Package, Context]:
    ingest = tmp_path / "ingest" / "khojaly-1992"
    ingest.mkdir(parents=True)
    (ingest / "collection.json").write_text(json.dumps(COLLECTION, ensure_ascii=False), encoding="utf-8")
    ctx = Context.create(settings or Settings(), ingest, tmp_path / "output", "khojaly-1992", "khojaly-1992")
    items, recs = [], [Record("collection.json", COLLECTION)]
    for n, (name, data) in enumerate(zip(names, records)):
        src = ingest / name
        src.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8 + n, 6), (30 * n, 90, 200)).save(src, "JPEG", quality=90)
        sidecar = str(Path(name).with_suffix(".json"))
        (ingest / sidecar).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        record = Record(sidecar, data)
        orig_path = f"data/objects/originals/{name}"
        size, digests = copy_hashed(src, ctx.staging / orig_path, ctx.settings.algorithms)
        original = FileInfo(ORIGINAL, orig_path, size, digests, ctx.make_id("file", orig_path), "image/jpeg",
                            "JPEG File Interchange Format", "1.01", "fmt/43", name,
                            {"width": 8 + n, "height": 6, "mode": "RGB"})
        master_path = f"data/objects/preservation/{name}.tif"
        (ctx.staging / master_path).parent.mkdir(parents=True, exist_ok=True)
        Image.open(src).save(ctx.staging / master_path, "TIFF", dpi=(300, 300))
        msize, mdigests = hash_file(ctx.staging / master_path, ctx.settings.algorithms)
        master = FileInfo(PRESERVATION, master_path, msize, mdigests, ctx.make_id("file", master_path),
                          "image/tiff", "Tagged Image File Format", "6.0", "fmt/353", "",
                          {"width": 8 + n, "height": 6, "bits_per_sample": 8, "samples_per_pixel": 3,
                           "photometric": "RGB", "compression": "none", "icc_profile": "sRGB IEC61966-2.1",
                           "x_resolution": 300.0, "y_resolution": 300.0, "resolution_unit": "inch"})
        item_id = ctx.make_id("item", name)
        events = (
            _event(ctx, "format identification", name, ((original.id, "source"),),
                   outcome_detail="fmt/43 by signature"),
            _event(ctx, "validation", name, ((original.id, "source"),), detail="decoded fully"),
            _event(ctx, "normalization", name, ((original.id, "source"), (master.id, "outcome")),
                   detail="TIFF 6.0 baseline master", outcome_detail="pixels identical",
                   extra={"pixel_sha256_source": "ab" * 32, "pixel_sha256_master": "ab" * 32}),
        )
        items.append(Item(item_id, name, record, original=original, masters=(master,), events=events))
    package = Package("khojaly-1992", ingest, Record("collection.json", COLLECTION), items=tuple(items),
                      records=tuple(recs), stages_done=("discover", "validate", "convert"))
    return package, ctx
