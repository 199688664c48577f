"""The floor with public C tools: what decoding each JPEG and writing its pixels costs here, against
ImageMagick, timed by hyperfine (no Python, no code of ours on the clock).

    python benchmarks/floor_c.py [--count 16] [--workers 2] [--runs 7]

Needs Debian's hyperfine, libjpeg-turbo-progs (djpeg), openssl and imagemagick.  On the same
12-megapixel photo-like JPEGs as bench_convert.py (benchmarks/work/convert-COUNT/, generated when
missing), each command run over all files WORKERS at a time (xargs -P), every output written over
the previous run's, as ImageMagick's is:

  * imagemagick          `/usr/bin/convert SRC +compress DST.tif` (issue 3's baseline)
  * decode only          `djpeg -outfile /dev/null SRC` (libjpeg-turbo; the pixels are dropped)
  * decode, write        `djpeg -outfile DST.ppm SRC` (the pixels written to a file, no TIFF header,
                         no proof, no digest)
  * decode, write, hash  the same, then `openssl dgst -sha256 DST.ppm` (one digest; the issue asks
                         for the master's and the canonical pixels', and the proof's read-back)

once with the outputs on the disk that holds `output/` and, where /dev/shm exists, once in memory
(tmpfs).  Prints each command's mean time and its ratio to ImageMagick (ImageMagick's time over
its own): a converter that writes a master cannot be faster than "decode, write", whatever its
language.  Results go to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import WORK, shown, write_section  # noqa: E402
from bench_convert import CONVERT, photo  # noqa: E402

TOOLS = {"hyperfine": "hyperfine", "djpeg": "libjpeg-turbo-progs", "openssl": "openssl"}


def commands(src: Path, out: Path, workers: int) -> dict[str, str]:
    each = f"cd {src} && ls *.jpg | xargs -P{workers} -I{{}}"
    return {
        "imagemagick": f"{each} {CONVERT} {{}} +compress {out}/{{}}.tif",
        "decode only": f"{each} djpeg -outfile /dev/null {{}}",
        "decode, write": f"{each} djpeg -outfile {out}/{{}}.ppm {{}}",
        "decode, write, hash": f"{each} sh -c 'djpeg -outfile {out}/$0.ppm $0 && openssl dgst -sha256 {out}/$0.ppm >/dev/null' {{}}",
    }


def timed(cmds: dict[str, str], runs: int, report: Path) -> dict[str, float]:
    args = ["hyperfine", "-N", "--warmup", "1", "--runs", str(runs), "--export-json", str(report)]
    for name, cmd in cmds.items():
        args += ["-n", name, f"sh -c {json.dumps(cmd)}"]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return {r["command"]: r["mean"] for r in json.loads(report.read_text())["results"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    missing = [f"{tool} (Debian: {pkg})" for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        sys.exit("missing: " + ", ".join(missing))
    if "ImageMagick" not in subprocess.run([CONVERT, "-version"], capture_output=True, text=True).stdout:
        sys.exit(f"{CONVERT} is not ImageMagick (install Debian's imagemagick)")
    src = WORK / f"convert-{args.count}"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        if not (src / f"photo{i:03d}.jpg").exists():
            photo(i).save(src / f".photo{i:03d}.jpg", "JPEG", quality=90)
            (src / f".photo{i:03d}.jpg").rename(src / f"photo{i:03d}.jpg")
    places = [("disk", WORK)] + ([("memory (tmpfs)", Path("/dev/shm"))] if Path("/dev/shm").is_dir() else [])
    lines = [f"{args.count} JPEGs 4000x3000 q90, {args.workers} at a time, mean of {args.runs} runs (hyperfine)"]
    for where, base in places:
        with tempfile.TemporaryDirectory(prefix="floor-c-", dir=base) as out:
            means = timed(commands(src, Path(out), args.workers), args.runs, Path(out) / "report.json")
        lines.append(f"outputs on {where}:")
        for name, mean in means.items():
            lines.append(f"  {name:<20} {mean:6.2f} s  {args.count / mean:6.2f} images/s  "
                         f"{means['imagemagick'] / mean:5.2f}x ImageMagick")
    print("\n".join(lines))
    command = shown(" ".join([sys.executable, *sys.argv]))
    write_section("floor_c", "The floor with public C tools: decode and write, against ImageMagick (issue 3)",
                  command, lines, ["A converter that writes a master (36 MB of pixels per image) cannot be "
                                   "faster than `decode, write`, in any language; the issue's 2.5x target "
                                   "needs more than that here."])


if __name__ == "__main__":
    main()
