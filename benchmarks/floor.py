"""The floor: the work no implementation of the issue can skip, timed alone on the same files.

    python benchmarks/floor.py FOLDER [--workers 2] [--with-bag-hashes] [--required]

For each JPEG in FOLDER, in a pool of WORKERS processes (the same cores the pipeline gets):
  * one decode with libjpeg-turbo straight into one array (imagecodecs: the fastest decoder
    here, no second copy);
  * the uncompressed master's pixel bytes written to a file (no TIFF header, no metadata; the
    file is deleted at once, so unlike the pipeline's masters it never has to reach the disk);
  * one SHA-256 over the pixels (the canonical pixel digest the proof records);
  * with --with-bag-hashes: SHA-256 and SHA-512 of the original and of the master bytes (the two
    manifests the bag must carry; one read, both algorithms).
With --required, also what the issues ask for beyond that, at its cheapest:
  * the proof (issue 3: "decode the master and compare its pixels to the decoded source"): the
    written bytes memory-mapped back and compared with the decoded array; and the master's own
    SHA-256 (its PREMIS fixity, which a rerun checks before reusing it: issue 7), unless the bag
    hashes already count it;
  * with --with-bag-hashes (the whole run), validation by content before anything is written
    (the guide's "collect, then reject"): every scan entropy-decoded, the inverse DCT at 1/8 scale
    (Pillow's draft mode, the cheapest decode that still reads every coded block).
Nothing else: no records, no TIFF header or metadata, no METS, no bag files, no durability, no
process per image, and the pool is started before the clock.  Its time is a lower bound for
`pipeline run` (and, without bag hashes, for the convert stage); a benchmark divides the
baseline's time by it to get the most any implementation could reach on this machine.

Prints one line: `floor: SECONDS s, CPU s per image, for N images (WORKERS processes)`; also
importable (`floor()`, which returns the wall seconds and the CPU seconds of the workers).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple


class Floor(NamedTuple):
    wall: float         # seconds for all the images, pool already started
    cpu: float          # user + system seconds of the workers' tasks


def _warm() -> None:
    import imagecodecs  # noqa: F401  (imported before the clock starts, as in the pipeline's workers)
    import numpy  # noqa: F401
    from PIL import Image  # noqa: F401


def _one(job: tuple[str, str, bool, bool]) -> float:
    import imagecodecs
    import numpy as np
    cpu0 = time.process_time()
    src, out_dir, bag_hashes, required = job
    data = Path(src).read_bytes()
    if required and bag_hashes:                         # validation by content (whole runs)
        from PIL import Image
        with Image.open(io.BytesIO(data)) as im:
            im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    pixels = imagecodecs.jpeg8_decode(data)
    view = memoryview(pixels).cast("B")
    hashlib.sha256(view).digest()                       # the canonical pixel digest
    dest = Path(out_dir) / (Path(src).stem + ".raw")
    with open(dest, "wb") as f:
        f.write(view)
    if required:                                        # the proof: read back, compare
        back = np.memmap(dest, np.uint8, "r", shape=pixels.shape)
        if not np.array_equal(back, pixels):
            raise AssertionError(f"{dest}: read back differs")
        del back
        if not bag_hashes:
            hashlib.sha256(view).digest()               # the master's own fixity
    if bag_hashes:
        for blob in (data, view):
            hashlib.sha256(blob).digest()
            hashlib.sha512(blob).digest()
    dest.unlink()
    return time.process_time() - cpu0


def floor(sources: list[Path], workers: int, bag_hashes: bool, required: bool = False) -> Floor:
    """The unavoidable work over `sources` in `workers` processes: wall seconds (pool start
    excluded: it is warmed with one task per worker first) and the workers' CPU seconds."""
    with tempfile.TemporaryDirectory(prefix="floor-", dir=sources[0].parent.parent) as tmp:
        with ProcessPoolExecutor(workers, initializer=_warm) as pool:
            list(pool.map(abs, range(workers)))         # workers started, libraries imported
            t0 = time.perf_counter()
            cpu = sum(pool.map(_one, [(str(s), tmp, bag_hashes, required) for s in sources]))
            return Floor(time.perf_counter() - t0, cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--with-bag-hashes", action="store_true")
    ap.add_argument("--required", action="store_true", help="also the proof (and, with bag hashes, validation)")
    args = ap.parse_args()
    sources = sorted(args.folder.glob("*.jpg"))
    if not sources:
        sys.exit(f"{args.folder}: no .jpg files")
    f = floor(sources, args.workers, args.with_bag_hashes, args.required)
    print(f"floor: {f.wall:.2f} s, {f.cpu / len(sources):.3f} CPU s per image, for {len(sources)} images "
          f"({args.workers} processes)")


if __name__ == "__main__":
    main()
