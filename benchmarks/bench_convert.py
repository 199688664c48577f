"""Convert-and-prove throughput against ImageMagick, on the same 12-megapixel JPEGs in one run.

    python benchmarks/bench_convert.py [--count 16] [--workers 2] [--compression none]

Sources: photo-like 4000x3000 JPEGs at quality 90 (gradients plus noise at several scales),
generated once with a fixed seed.  Compared, each under `/usr/bin/time -v`:

  * ours: the convert stage over all files in a pool of WORKERS processes (the executor's pool):
    decode, master written, read back by tifffile and compared sample by sample, canonical pixel
    digest, the original copied into the bag, sha256 and sha512 of both files, fsync, proof record;
  * ImageMagick: `/usr/bin/convert SRC +compress DST.tif` (Archivematica's command, no proof), run
    WORKERS at a time on the same files; once as Archivematica runs it, once with each TIFF
    fsynced after it is written (the durability our masters and originals have: without it the
    36 MB per image are still in the page cache when ImageMagick is "done").

CPU seconds per image (user + system of all processes; ours minus one idle interpreter start) are
the steadier figure on a shared machine.

Prints images/s of both, the ratio, and the peak resident memory of the largest single process
(/usr/bin/time reports the largest of the waited-for processes) against one decoded image.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 4000, 3000
CONVERT = "/usr/bin/convert"


def photo(seed: int) -> Image.Image:
    """Smooth gradients, blobs at a few scales and fine noise: compresses like a photograph."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    base = np.stack([x / W * 180 + 40, y / H * 160 + 50, (x + y) / (W + H) * 120 + 60], -1)
    for scale in (750, 150, 30):
        small = rng.normal(0, 30, (H // scale + 2, W // scale + 2, 3)).astype(np.float32)
        big = np.asarray(Image.fromarray(np.clip(small + 128, 0, 255).astype(np.uint8)).resize(
            (W, H), Image.BICUBIC), np.float32) - 128
        base += big * (scale / 750 + 0.3)
    base += rng.normal(0, 6, (H, W, 3)).astype(np.float32)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def timed(cmd: list[str]) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (KiB) of the largest process and CPU seconds (user + system, all
    processes), from /usr/bin/time -v."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", proc.stderr).group(1))
              for kind in ("User", "System"))
    return wall, rss, cpu


OURS = r"""
import sys
from pathlib import Path
from pipeline.executor import map_items
from pipeline.model import Item
from pipeline.stage import Context, Settings
from pipeline.stages.convert import convert_item
src, out, workers, compression = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = Context.create(Settings(workers=workers, compression=compression), src, out, "bench")
names = sorted(p.name for p in src.glob("*.jpg"))
items = [Item(id=ctx.make_id(n), relpath=n, record=None) for n in names]
done = map_items(convert_item, items, ctx, "convert")
bad = [p.render() for i in done for p in i.problems if p.is_error]
assert not bad and all(i.masters for i in done), bad
"""

IMAGEMAGICK = r"""
import os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
src, out, workers, durable = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "fsync"
def one(p):
    dst = out / (p.stem + ".tif")
    subprocess.run(["/usr/bin/convert", str(p), "+compress", str(dst)], check=True)
    if durable:  # the durability our masters have: on disk before the item is done
        fd = os.open(dst, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
with ThreadPoolExecutor(workers) as pool:
    list(pool.map(one, sorted(src.glob("*.jpg"))))
"""

IDLE = "import numpy, PIL.Image, tifffile, imagecodecs, pipeline.stages.convert"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--compression", choices=["none", "deflate"], default="none")
    args = ap.parse_args()
    version = subprocess.run([CONVERT, "-version"], capture_output=True, text=True).stdout
    if "ImageMagick" not in version:
        sys.exit(f"{CONVERT} is not ImageMagick (install Debian's imagemagick)")
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        src.mkdir()
        for i in range(args.count):
            photo(i).save(src / f"photo{i:03d}.jpg", quality=90)
        size = sum(p.stat().st_size for p in src.iterdir())
        print(f"{args.count} JPEGs {W}x{H} q90, {size / args.count / 1e6:.1f} MB each; "
              f"{args.workers} workers; compression {args.compression}; {os.cpu_count()} CPUs")
        (tmp / "im").mkdir()
        im_wall, im_rss, im_cpu = timed([sys.executable, "-c", IMAGEMAGICK, str(src), str(tmp / "im"),
                                         str(args.workers), "-"])
        (tmp / "imsync").mkdir()
        sync_wall, _, _ = timed([sys.executable, "-c", IMAGEMAGICK, str(src), str(tmp / "imsync"),
                                 str(args.workers), "fsync"])
        ours_wall, ours_rss, ours_cpu = timed([sys.executable, "-c", OURS, str(src), str(tmp / "ours"),
                                     str(args.workers), args.compression])
        _, idle_rss, idle_cpu = timed([sys.executable, "-c", IDLE])
    decoded = W * H * 3 / 1024
    im_rate, ours_rate = args.count / im_wall, args.count / ours_wall
    n = args.count
    print(f"ImageMagick convert +compress : {im_rate:6.2f} images/s  {im_cpu / n:5.2f} CPU s/image  "
          f"peak RSS {im_rss / 1024:7.1f} MiB")
    print(f"ImageMagick, each TIFF fsynced: {args.count / sync_wall:6.2f} images/s")
    print(f"pipeline convert + proof      : {ours_rate:6.2f} images/s  {(ours_cpu - idle_cpu) / n:5.2f} CPU s/image  "
          f"peak RSS {ours_rss / 1024:7.1f} MiB (interpreter and libraries alone: {idle_rss / 1024:.1f} MiB)")
    print(f"throughput ratio (ours / ImageMagick): {ours_rate / im_rate:.2f}x wall, "
          f"{(im_cpu / n) / ((ours_cpu - idle_cpu) / n):.2f}x by CPU time, "
          f"{ours_rate / (args.count / sync_wall):.2f}x against ImageMagick with fsync   (target >= 2.5x)")
    print(f"peak memory / one decoded image ({decoded / 1024:.1f} MiB): {ours_rss / decoded:.2f}x, "
          f"above the idle interpreter {(ours_rss - idle_rss) / decoded:.2f}x   (target < 4x)")


if __name__ == "__main__":
    main()
