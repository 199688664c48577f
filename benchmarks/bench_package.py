"""Sealing a staged collection: the package stage vs `bagit.py` making the same bag.

    python benchmarks/bench_package.py                   # 1 GB payload of mixed file sizes
    python benchmarks/bench_package.py --size 200M       # quicker

Generates once (under benchmarks/work/package-SIZE/, reused when present) a payload laid out as
the stages before `package` leave it (data/objects/originals, data/objects/preservation,
data/metadata), its files hashed (sha256 + sha512) while they were written, as those stages do;
the recorded checksums are kept in payload.json.  Then, on a warm page cache, times --repeat
times (best run kept), each on a fresh hard-linked copy:

  ours    the package stage over the staging folder: completeness check by stat, manifests from
          the recorded checksums, tag files, fast validation, atomic publish into output/
  bagit   python -m bagit --processes 2 --sha256 --sha512 FOLDER  (bags in place, hashing
          every payload file: what sealing costs when the checksums are not kept)

and prints seconds and the ratio bagit/ours (above 1: ours is faster), then writes them into
benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

ALGORITHMS = ("sha256", "sha512")
NAME = "bench"


def generate(folder: Path, size: int) -> None:
    """The payload (hashed while written) and payload.json listing every file's checksums."""
    from pipeline.hashing import write_hashed
    rng = random.Random(7)
    files, total, i = [], 0, 0
    while total < size:
        n = min(rng.choice([rng.randint(4 << 10, 256 << 10)] * 6 + [rng.randint(1 << 20, 16 << 20)]), size - total)
        for role, part, ext in (("original", "originals", ".jpg"), ("preservation", "preservation", ".tif")):
            bagpath = f"data/objects/{part}/box{i % 10}/img{i:05d}{ext}"
            length, digests = write_hashed(folder / "payload" / bagpath, rng.randbytes(max(n // 2, 1)), ALGORITHMS)
            files.append({"role": role, "bagpath": bagpath, "size": length, "checksums": digests})
            total += length
        i += 1
    length, digests = write_hashed(folder / "payload" / "data/metadata/mets.xml", b"<mets/>\n" * 1000, ALGORITHMS)
    files.append({"role": "metadata", "bagpath": "data/metadata/mets.xml", "size": length, "checksums": digests})
    (folder / "payload.json").write_text(json.dumps(files), encoding="utf-8")


def seal(folder: Path) -> None:
    """The timed part of `ours`: rebuild the Package from payload.json, run the package stage."""
    from pipeline.model import FileInfo, Item, Package, Record
    from pipeline.stage import Context, Settings
    from pipeline.stages.package import package_collection

    files = [FileInfo(**f) for f in json.loads((folder / "payload.json").read_text(encoding="utf-8"))]
    ctx = Context.create(Settings(algorithms=ALGORITHMS), folder, folder / "output", NAME, NAME)
    originals = [f for f in files if f.role == "original"]
    masters = {f.bagpath: f for f in files if f.role == "preservation"}
    items = tuple(Item(id=str(i), relpath=f.bagpath, record=None, original=f,
                       masters=(masters[f.bagpath.replace("/originals/", "/preservation/")[:-4] + ".tif"],))
                  for i, f in enumerate(originals))
    record = Record("collection.json", {"identifier": NAME, "description": "benchmark",
                                        "organization": {"name": "Benchmark"}})
    package = Package(name=NAME, source=folder, collection=record, items=items,
                      metadata_files=tuple(f for f in files if f.role == "metadata"))
    package_collection(package, ctx)


def fresh_copy(src: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(src), str(dest)], check=True)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seal", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seal:  # the timed subprocess: import only what the stage needs
        return seal(args.seal)
    from benchlib import WORK, shown, timed, warm, write_section
    from pipeline.cli.options import parse_size
    size = parse_size(args.size)
    folder = WORK / f"package-{args.size}"
    if not (folder / "payload.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        generate(folder, size)
    warm(folder / "payload")
    best: dict[str, float] = {}
    commands = {}
    for _ in range(args.repeat):
        shutil.rmtree(folder / "output", ignore_errors=True)
        fresh_copy(folder / "payload", folder / "output" / ".staging" / NAME)
        ours = timed([sys.executable, str(Path(__file__).resolve()), "--seal", str(folder)])
        assert ours.returncode == 0, ours.stderr
        fresh_copy(folder / "payload" / "data", folder / "bagit")
        theirs = timed([sys.executable, "-m", "bagit", "--quiet", "--processes", "2", "--sha256", "--sha512",
                        str(folder / "bagit")])
        assert theirs.returncode == 0, theirs.stderr
        for key, t in (("ours", ours), ("bagit", theirs)):
            best[key] = min(best.get(key, float("inf")), t.seconds)
            commands[key] = shown(t.command.replace("/usr/bin/time -v ", ""))
    files = len(json.loads((folder / "payload.json").read_text(encoding="utf-8")))
    lines = [f"payload {size / 1e9:.2f} GB in {files} files (mixed sizes), sha256 + sha512, best of {args.repeat}",
             f"ours  (package stage): {best['ours']:7.2f} s",
             f"bagit (make bag)     : {best['bagit']:7.2f} s",
             f"ratio bagit/ours: {best['bagit'] / best['ours']:.1f}x"]
    print("\n".join(lines))
    write_section("bench_package", "Sealing: package stage vs bagit-python making the bag (issue 5)",
                  f"`python benchmarks/bench_package.py --size {args.size} --repeat {args.repeat}`", lines,
                  [f"- ours: `{commands['ours']}`", f"- bagit: `{commands['bagit']}`",
                   "- warm page cache; each run on a fresh hard-linked copy of the payload"])


if __name__ == "__main__":
    main()
