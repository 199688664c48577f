"""The METS of a 100,000-file package: time and peak memory of the streamed writer.

    python benchmarks/bench_mets.py                      # 100,000 files, compared with 10,000
    python benchmarks/bench_mets.py --files 20000        # quicker

Each size runs in its own process.  The process builds a Package of files/2 photographs (an
original and a master each, with the six PREMIS events and the technical data the pipeline
records), then streams its METS with `pipeline.mets.write_mets` into benchmarks/work/.
Printed per size: wall and CPU seconds (the machine may be shared: CPU time is the steadier
figure), files per CPU second, document size, the resident memory of the package
model before writing, and the writer's own peak (the process's peak resident memory during the
write, minus the memory before it; the peak is reset through /proc/self/clear_refs).  The ratio
of the writer's peaks between the two sizes shows whether memory grows with the number of files.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import WORK, machine, update_results  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def build(files: int):
    from pipeline.model import Event, FileInfo, Item, Package, Record, ORIGINAL, PRESERVATION, software_agent

    pillow, tiff = software_agent("Pillow", "13.0.0"), software_agent("preservation-pipeline", "0.1.0")
    stamp = "2023-11-14T22:13:20Z"
    coll = {"identifier": "bench", "title": "Benchmark collection", "creator": "Photographer",
            "rights": "All rights reserved", "organization": {"name": "Bench Archive"}}
    items = []
    for i in range(files // 2):
        rel = f"photos/{i // 1000:03d}/img-{i:06d}.jpg"
        tech = {"width": 4000, "height": 3000, "mode": "RGB"}
        original = FileInfo(ORIGINAL, f"data/objects/originals/{rel}", 4_000_000 + i,
                            {"sha256": f"{i:064x}", "sha512": f"{i:0128x}"}, f"00000000-0000-5000-8000-{i:012x}",
                            "image/jpeg", "JPEG File Interchange Format", "1.01", "fmt/43", rel, tech)
        master = FileInfo(PRESERVATION, f"data/objects/preservation/{rel[:-4]}.tif", 36_000_000 + i,
                          {"sha256": f"{i + 1:064x}", "sha512": f"{i + 1:0128x}"},
                          f"00000000-0000-5000-9000-{i:012x}", "image/tiff", "TIFF", "6.0", "fmt/353", rel,
                          dict(tech, bits_per_sample=8, samples_per_pixel=3, photometric="RGB", compression="none",
                               x_resolution=300.0, y_resolution=300.0, resolution_unit="inch"))

        def ev(n, kind, objects, **kw):
            return Event(f"00000000-0000-5000-a{n:03d}-{i:012x}", kind, stamp,
                         agents=((pillow if kind != "message digest calculation" else tiff, "executing program"),),
                         objects=objects, **kw)

        src, out = ((original.id, "source"),), ((original.id, "source"), (master.id, "outcome"))
        events = (ev(1, "ingestion", src), ev(2, "format identification", src, outcome_detail="fmt/43 by signature"),
                  ev(3, "validation", src, detail="decoded fully"),
                  ev(4, "message digest calculation", src, extra=dict(original.checksums)),
                  ev(5, "normalization", out, detail="JPEG -> baseline TIFF 6.0", outcome_detail="pixel proof passed",
                     extra={"source_pixel_sha256": [f"{i:064x}"], "master_pixel_sha256": [f"{i:064x}"]}),
                  ev(6, "message digest calculation", ((master.id, "source"),), extra=dict(master.checksums)))
        record = Record(rel[:-4] + ".json", {"identifier": f"img-{i:06d}", "date": "1992-02",
                                             "place": ["Azerbaijan", "Karabakh", "Aghdam"],
                                             "caption": "A caption of moderate length, as most are. " * 3})
        items.append(Item(f"00000000-0000-5000-b000-{i:012x}", rel, record, original=original,
                          masters=(master,), events=events))
    return Package("bench", Path("/nonexistent"), Record("collection.json", coll), items=tuple(items))


def one(files: int) -> dict:
    from pipeline import dc
    from pipeline.mets import write_mets
    from pipeline.model import FileInfo, METADATA

    package = build(files)
    coll = package.collection.data
    dcterms = {item.id: FileInfo(METADATA, f"data/metadata/dc/items/{item.relpath}.dcterms.xml", 1500,
                                 {"sha256": "0" * 64, "sha512": "0" * 128}, "x", "application/xml")
               for item in package.items}
    dcterms["collection"] = FileInfo(METADATA, "data/metadata/dc/collection.dcterms.xml", 900,
                                     {"sha256": "0" * 64}, "y", "application/xml")

    def record(item):
        if item is None:
            return dc.oai_dc(dc.collection_terms(coll, len(package.items)))
        return dc.oai_dc(dc.item_terms(item.record.data, coll, "image/tiff", "4000 x 3000 pixels"))

    dest = WORK / f"mets-{files}" / "mets.xml"
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")       # reset the peak (VmHWM) to the current RSS
    started, cpu = time.perf_counter(), time.process_time()
    size, _ = write_mets(dest, package, created="2023-11-14T22:13:20Z", organization="Bench Archive",
                         dc_record=record, agent_md_id=lambda a: "agent-" + a.name.lower(),
                         dcterms_file=lambda item: dcterms["collection" if item is None else item.id],
                         algorithms=("sha256", "sha512"))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = _status_kb("VmHWM")
    dest.unlink()
    return {"files": files, "seconds": seconds, "cpu": cpu, "bytes": size, "model_mb": before / 1024,
            "writer_mb": (peak - before) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    results = []
    for files in (args.files // 10, args.files):
        proc = subprocess.run([sys.executable, __file__, "--one", str(files)], capture_output=True, text=True,
                              check=True)
        results.append(json.loads(proc.stdout))
    lines = []
    for r in results:
        lines.append(f"{r['files']:>7,} files: {r['seconds']:6.1f} s ({r['cpu']:6.1f} s CPU)  "
                     f"{r['files'] / r['cpu']:6,.0f} files/CPU-s  "
                     f"METS {r['bytes'] / 2**20:8.1f} MB  package model {r['model_mb']:7.1f} MB  "
                     f"writer peak +{r['writer_mb']:5.1f} MB")
    small, large = results
    lines.append(f"files x{large['files'] / small['files']:.0f}: CPU time x{large['cpu'] / small['cpu']:.1f}, "
                 f"writer peak memory x{max(large['writer_mb'], 0.1) / max(small['writer_mb'], 0.1):.2f}")
    text = "\n".join(lines)
    print(text)
    update_results("bench_mets", f"## METS for {large['files']:,} files (issue 4)\n\nMachine: {machine()}\n\n"
                   f"Command: `python benchmarks/bench_mets.py --files {large['files']}`\n\n```\n{text}\n```\n\n"
                   "- writer peak: the process's peak resident memory during `write_mets` minus its resident "
                   "memory before (the package model, which the pipeline holds anyway)\n")


if __name__ == "__main__":
    os.environ.setdefault("SOURCE_DATE_EPOCH", "1700000000")
    main()
