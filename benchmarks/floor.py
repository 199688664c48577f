"""The floor: the work no implementation of the issue can skip, timed alone on the same files.

    python benchmarks/floor.py FOLDER [--workers 2] [--with-bag-hashes]

For each JPEG in FOLDER, in a pool of WORKERS processes (the same cores the pipeline gets):
  * one decode with libjpeg-turbo straight into one array (imagecodecs: the fastest decoder
    here, no second copy), which the issues require (validation by content, the pixel proof);
  * the uncompressed master's pixel bytes written to a file (no TIFF header, no metadata; the
    file is deleted at once, so unlike the pipeline's masters it never has to reach the disk);
  * one SHA-256 over the pixels (the canonical pixel digest the proof records);
  * with --with-bag-hashes: SHA-256 and SHA-512 of the original and of the master bytes (the two
    manifests the bag must carry; one read, both algorithms).
Nothing else: no validation of records, no read-back or comparison, no metadata, no METS, no
bag files, no durability, no process per image, and the pool is started before the clock.  Its time is a lower bound for `pipeline run` (and,
without bag hashes, for the convert stage); a benchmark divides the baseline's time by it to get
the most any implementation could reach on this machine.

Prints one line: `floor: SECONDS s for N images (WORKERS processes)`; also importable (`floor()`).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def _one(job: tuple[str, str, bool]) -> int:
    import imagecodecs
    src, out_dir, bag_hashes = job
    data = Path(src).read_bytes()
    pixels = imagecodecs.jpeg8_decode(data)
    view = memoryview(pixels).cast("B")
    hashlib.sha256(view).digest()                       # the canonical pixel digest
    dest = Path(out_dir) / (Path(src).stem + ".raw")
    with open(dest, "wb") as f:
        f.write(view)
    if bag_hashes:
        for blob in (data, view):
            hashlib.sha256(blob).digest()
            hashlib.sha512(blob).digest()
    dest.unlink()
    return pixels.nbytes


def floor(sources: list[Path], workers: int, bag_hashes: bool) -> float:
    """Wall seconds of the unavoidable work over `sources` in `workers` processes (pool start
    excluded: it is warmed with one task per worker first)."""
    with tempfile.TemporaryDirectory(prefix="floor-", dir=sources[0].parent.parent) as tmp, \
            ProcessPoolExecutor(workers) as pool:
        list(pool.map(abs, range(workers)))             # workers started and idle
        t0 = time.perf_counter()
        list(pool.map(_one, [(str(s), tmp, bag_hashes) for s in sources]))
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--with-bag-hashes", action="store_true")
    args = ap.parse_args()
    sources = sorted(args.folder.glob("*.jpg"))
    if not sources:
        sys.exit(f"{args.folder}: no .jpg files")
    seconds = floor(sources, args.workers, args.with_bag_hashes)
    print(f"floor: {seconds:.2f} s for {len(sources)} images ({args.workers} processes)")


if __name__ == "__main__":
    main()
