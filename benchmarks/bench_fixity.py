"""Benchmark of `pipeline fixity` against bagit-python and OpenSSL, in one run.

    python benchmarks/bench_fixity.py                 # ~2.2 GB in ~2,000 files, and 100,000 tiny files
    python benchmarks/bench_fixity.py --large-mb 200 --large-files 200 --tiny-files 5000   # quick

Builds (once, under benchmarks/work/, reused when present) a large bag of mixed-size files and a bag
of tiny files, both with SHA-256 manifests (`--algorithms sha256,sha512` for both), warms the page
cache, then times on each bag:
  * `pipeline fixity BAG --db ...` (a fresh registry each time),
  * `python -m bagit --validate --processes 2 BAG`,
  * and on the large bag `openssl dgst -sha256` over two processes (two xargs -P2 shards),
and prints the ratios and the peak RSS of each `pipeline fixity` run, and the peak RSS on a
tiny-file bag a tenth the size (memory must not grow with the number of files); the figures also go to
benchmarks/RESULTS.md.  Timings are the best of --repeat warm-cache runs (default 3).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from benchlib import WORK, Timed, shown, timed, warm, write_section


def write_bag(bag: Path, files, algorithms: tuple[str, ...]) -> None:
    """Write a BagIt 1.0 bag from (relpath, bytes) pairs, hashing as it goes; atomic by rename."""
    tmp = bag.with_name(bag.name + ".part")
    if tmp.exists():
        shutil.rmtree(tmp)
    manifests = {alg: [] for alg in algorithms}
    total = count = 0
    for rel, data in files:
        dest = tmp / "data" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        total += len(data)
        count += 1
        for alg in algorithms:
            manifests[alg].append(f"{hashlib.new(alg, data).hexdigest()}  data/{rel}\n")
    tags = {"bagit.txt": "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
            "bag-info.txt": f"Payload-Oxum: {total}.{count}\nBagging-Date: 2026-01-01\n"}
    for alg, lines in manifests.items():
        tags[f"manifest-{alg}.txt"] = "".join(lines)
    for name, text in tags.items():
        (tmp / name).write_text(text, encoding="utf-8")
    for alg in algorithms:
        lines = [f"{hashlib.new(alg, (tmp / n).read_bytes()).hexdigest()}  {n}\n" for n in sorted(tags)]
        (tmp / f"tagmanifest-{alg}.txt").write_text("".join(lines), encoding="utf-8")
    tmp.rename(bag)


def large_files(total_mb: int, count: int, seed: int = 1):
    """Mixed sizes (log-normal, like photographs and their masters), scaled to `total_mb`."""
    rnd = random.Random(seed)
    weights = [rnd.lognormvariate(0, 1.5) for _ in range(count)]
    scale = total_mb * 1_000_000 / sum(weights)
    for i, w in enumerate(weights):
        yield f"{i % 20:02d}/file-{i:05d}.bin", rnd.randbytes(max(1, int(w * scale)))


def tiny_files(count: int, seed: int = 2):
    rnd = random.Random(seed)
    for i in range(count):
        yield f"{i // 1000:03d}/t{i:06d}.txt", rnd.randbytes(rnd.randint(20, 2000))


def build(name: str, files, algorithms) -> Path:
    bag = WORK / name
    if not bag.is_dir():
        print(f"building {bag} ...", flush=True)
        WORK.mkdir(parents=True, exist_ok=True)
        write_bag(bag, files, algorithms)
    return bag


def best(cmd: list[str], bag: Path, repeat: int, fresh_db: Path | None = None) -> Timed:
    """The fastest of `repeat` runs (page cache warmed before each; a fresh registry for fixity)."""
    runs = []
    for _ in range(repeat):
        if fresh_db is not None:
            for f in fresh_db.parent.glob(fresh_db.name + "*"):
                f.unlink()
        warm(bag)
        t = timed_cpu(cmd)
        if t.returncode != 0:
            sys.exit(f"failed ({t.returncode}): {shown(' '.join(cmd))}\n{t.stdout[-2000:]}{t.stderr[-2000:]}")
        runs.append(t)
    return min(runs, key=lambda t: t.seconds)


CPU: dict[int, float] = {}   # id(Timed) -> user + system CPU seconds of the command and its children


def cpu(t: Timed) -> float:
    """CPU seconds of a timed run: steadier than wall time on a busy machine."""
    return CPU.get(id(t), float("nan"))


def timed_cpu(cmd: list[str]) -> Timed:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = timed(cmd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[id(t)] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return t


def openssl_cmd(bag: Path, lists: Path) -> list[str]:
    """`openssl dgst -sha256` over the payload in two shards, two processes at once (xargs)."""
    files = sorted(str(p) for p in (bag / "data").rglob("*") if p.is_file())
    shards = []
    for i, shard in enumerate((files[0::2], files[1::2])):
        lst = lists / f"shard{i}"
        lst.write_text("\0".join(shard))
        shards.append(f"xargs -0 -n 500 openssl dgst -sha256 < {lst} > /dev/null")
    return ["sh", "-c", " & ".join(shards) + " & wait"]


def memory_by_files(count: int, bag: Path, algs: tuple[str, ...], tag: str, db: Path) -> list[str]:
    """Peak RSS of `pipeline fixity` on a tiny-file bag a tenth the size of the main one: a bag's
    plan lives in a temporary SQLite file, so the two should be within a few MB."""
    small = build(f"tiny-{count // 10}-{tag}", tiny_files(count // 10), algs)
    peaks = {}
    for n, b in ((count // 10, small), (count, bag)):
        peaks[n] = best([sys.executable, "-m", "pipeline", "fixity", str(b), "--db", str(db), "--quiet"],
                        b, 1, fresh_db=db).max_rss_mb
    (a, pa), (b, pb) = peaks.items()
    return [f"peak RSS by files per bag: {a:,} files {pa:.0f} MB, {b:,} files {pb:.0f} MB "
            f"({(pb - pa) / (b - a) * 1e6:+.0f} bytes per extra file; target: flat)"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large-mb", type=int, default=int(os.environ.get("BENCH_LARGE_MB", 2200)))
    ap.add_argument("--large-files", type=int, default=int(os.environ.get("BENCH_LARGE_FILES", 2000)))
    ap.add_argument("--tiny-files", type=int, default=int(os.environ.get("BENCH_TINY_FILES", 100_000)))
    ap.add_argument("--algorithms", default="sha256", help="manifest algorithms, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    algs = tuple(a for a in args.algorithms.split(",") if a)
    tag = "-".join(algs)
    large = build(f"large-{args.large_mb}mb-{args.large_files}-{tag}", large_files(args.large_mb, args.large_files), algs)
    tiny = build(f"tiny-{args.tiny_files}-{tag}", tiny_files(args.tiny_files), algs)
    lines = [f"algorithms: {', '.join(algs)}; best of {args.repeat} warm-cache runs"]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "fixity.sqlite"
        for label, bag, target in (("large", large, 1.25), ("tiny", tiny, 3.0)):
            fx = best([sys.executable, "-m", "pipeline", "fixity", str(bag), "--db", str(db), "--quiet"],
                      bag, args.repeat, fresh_db=db)
            bg = best([sys.executable, "-m", "bagit", "--validate", "--processes", "2", str(bag)], bag, args.repeat)
            files = [p for p in (bag / "data").rglob("*") if p.is_file()]
            lines += [f"{label} bag: {len(files)} files, {sum(p.stat().st_size for p in files) / 1e9:.2f} GB",
                      f"  pipeline fixity              {fx.seconds:7.2f} s wall {cpu(fx):7.2f} s CPU   "
                      f"peak RSS {fx.max_rss_mb:4.0f} MB",
                      f"  bagit.py --validate -p 2     {bg.seconds:7.2f} s wall {cpu(bg):7.2f} s CPU   "
                      f"peak RSS {bg.tree_rss_mb:4.0f} MB (all processes)",
                      f"  bagit / fixity               {bg.seconds / fx.seconds:7.2f}x wall {cpu(bg) / cpu(fx):6.2f}x CPU"
                      f"   (target >= {target}x)"]
            if label == "large":
                ssl = best(openssl_cmd(bag, Path(tmp)), bag, args.repeat)
                lines += [f"  openssl sha256, 2 processes  {ssl.seconds:7.2f} s wall {cpu(ssl):7.2f} s CPU",
                          f"  fixity / openssl             {fx.seconds / ssl.seconds:7.2f}  wall {cpu(fx) / cpu(ssl):6.2f}  CPU"
                          f"   (target <= 1.15)"]
        lines += memory_by_files(args.tiny_files, tiny, algs, tag, db)
    print("\n".join(lines))
    command = shown(" ".join([sys.executable, *sys.argv]))
    write_section("bench_fixity", "pipeline fixity against bagit-python and OpenSSL", command, lines,
                  ["Warm page cache; `pipeline fixity` starts from an empty registry each run and records "
                   "every file in it. Peak RSS of fixity is its single process (threads, no workers)."])


if __name__ == "__main__":
    main()
