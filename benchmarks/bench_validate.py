#!/usr/bin/env python3
"""Validate 10,000 generated records with small images; print time and peak memory.

    python benchmarks/bench_validate.py [--items 10000] [--workers 0] [--keep]

Generates a collection of N small JPEGs (64 x 48, each different) with sidecar records under
benchmarks/work/validate/ (git-ignored; removed afterwards unless --keep), then runs `pipeline validate --json` on it in a child process and
reports wall time, items per second, and peak resident memory of the main process and of the
largest worker (getrusage of the children).
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

WORK = Path(__file__).resolve().parent / "work" / "validate"   # this script's own folder; others share work/


def generate(folder: Path, n: int) -> int:
    """N images and records in folders of 1,000; returns the bytes written."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "collection.json").write_text(json.dumps({
        "identifier": "bench", "title": "Benchmark", "creator": "Generator", "description": "Generated.",
        "rights": "CC0 1.0", "organization": {"name": "Benchmark"}}), encoding="utf-8")
    base = Image.new("RGB", (64, 48), (90, 120, 150))
    total = 0
    for i in range(n):
        sub = folder / f"batch-{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        base.putpixel((i % 64, (i // 64) % 48), (i % 256, 255 - i % 256, 0))
        buf = io.BytesIO()
        base.save(buf, "JPEG", quality=85)
        (sub / f"p{i:05d}.jpg").write_bytes(buf.getvalue())
        record = {"identifier": f"p{i:05d}", "date": "1992-02", "place": ["Azerbaijan", "Karabakh", "Aghdam"],
                  "caption": f"Generated photograph number {i}.", "creator": "Generator", "language": "en"}
        text = json.dumps(record)
        (sub / f"p{i:05d}.json").write_text(text, encoding="utf-8")
        total += len(buf.getvalue()) + len(text)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=0, help="0 = all cores")
    parser.add_argument("--keep", action="store_true", help="keep benchmarks/work/validate/ afterwards")
    args = parser.parse_args()

    ingest = WORK / "ingest"
    t0 = time.perf_counter()
    size = generate(ingest / "bench", args.items)
    made = time.perf_counter() - t0
    print(f"generated {args.items} images + records ({size / 1e6:.1f} MB) in {made:.1f} s")

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline", "validate", "--ingest", str(ingest), "--json",
                           "--quiet", "--workers", str(args.workers)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"validate failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)["collections"][0]
    assert report["items"] == args.items and report["valid"], report
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"validated {args.items} items: {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"(CPU/wall {cpu / wall:.2f})")
    print(f"  {args.items / wall:.0f} items/s, {1000 * wall / args.items:.2f} ms per item")
    print(f"  peak RSS of the largest process (main or worker): {after.ru_maxrss / 1024:.0f} MB "
          f"({after.ru_maxrss / 1024 / (args.items / 1000):.1f} MB per 1,000 items if it grew with them)")
    if not args.keep:
        shutil.rmtree(WORK)


if __name__ == "__main__":
    main()
