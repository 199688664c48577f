"""Benchmark of `pipeline fixity` against bagit-python and OpenSSL, in one run.

    python benchmarks/bench_fixity.py                 # ~2.2 GB in ~2,000 files, and 100,000 tiny files
    python benchmarks/bench_fixity.py --large-mb 200 --large-files 200 --tiny-files 5000   # quick

Builds (once, under benchmarks/work/, reused when present) a large bag of mixed-size files and a bag
of tiny files, both with SHA-256 manifests (`--algorithms sha256,sha512` for both), warms the page
cache, then times on each bag:
  * `pipeline fixity BAG --db ...` (a fresh registry each time),
  * `python -m bagit --validate --processes 2 BAG`,
  * and on the large bag `openssl dgst -sha256` over two processes (two xargs -P2 shards),
and prints the ratios and the peak RSS of each `pipeline fixity` run.
Timings are the best of --repeat runs (default 3).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"


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


def warm(bag: Path) -> None:
    for dirpath, _, names in os.walk(bag):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                while f.read(1 << 22):
                    pass


def timed(cmd: list[str], repeat: int, **kw) -> tuple[float, int]:
    """Best wall time of `repeat` runs and the peak RSS (KiB) of the child processes."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
        best = min(best, time.perf_counter() - t)
        if proc.returncode != 0:
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return best, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def fixity_cmd(bag: Path, db: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", "fixity", str(bag), "--db", str(db), "--quiet"]


def time_fixity(bag: Path, repeat: int) -> tuple[float, int]:
    """Like `timed`, with a fresh registry for each run; peak RSS measured in a wrapper process."""
    best, peak = float("inf"), 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "fixity.sqlite"
            wrapper = ("import resource,subprocess,sys;"
                       "r=subprocess.run(sys.argv[1:]).returncode;"
                       "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);sys.exit(r)")
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", wrapper, *fixity_cmd(bag, db)],
                                  capture_output=True, text=True)
            best = min(best, time.perf_counter() - t)
            if proc.returncode != 0:
                sys.exit(f"pipeline fixity failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
            peak = max(peak, int(proc.stdout.strip().splitlines()[-1]))
    return best, peak


def openssl_two(bag: Path, repeat: int) -> float:
    """`openssl dgst -sha256` over the payload in two shards, two processes at once."""
    files = sorted(str(p) for p in (bag / "data").rglob("*") if p.is_file())
    shards = [files[0::2], files[1::2]]
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        lists = []
        for i, shard in enumerate(shards):
            lst = Path(tmp) / f"shard{i}"
            lst.write_text("\0".join(shard))
            lists.append(lst)
        script = " & ".join(f"xargs -0 -n 500 openssl dgst -sha256 < {lst} > /dev/null" for lst in lists) + " ; wait"
        for _ in range(repeat):
            t = time.perf_counter()
            subprocess.run(["sh", "-c", script], check=True)
            best = min(best, time.perf_counter() - t)
    return best


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
    for bag in (large, tiny):
        warm(bag)
    print(f"machine: {os.cpu_count()} cores; algorithms: {', '.join(algs)}; best of {args.repeat}")
    rows = []
    for label, bag in (("large", large), ("tiny", tiny)):
        fx, rss = time_fixity(bag, args.repeat)
        bg, _ = timed([sys.executable, "-m", "bagit", "--validate", "--processes", "2", str(bag)], args.repeat)
        rows.append((label, bag, fx, rss, bg))
    ssl = openssl_two(large, args.repeat)
    for label, bag, fx, rss, bg in rows:
        size = sum(p.stat().st_size for p in (bag / "data").rglob("*") if p.is_file())
        n = sum(1 for p in (bag / "data").rglob("*") if p.is_file())
        print(f"{label:5} bag: {n} files, {size / 1e9:.2f} GB")
        print(f"  pipeline fixity             {fx:7.2f} s   peak RSS {rss / 1024:.0f} MB")
        print(f"  bagit.py --validate -p 2    {bg:7.2f} s   ratio bagit/fixity {bg / fx:.2f}x "
              f"(target >= {1.25 if label == 'large' else 3}x)")
        if label == "large":
            print(f"  openssl sha256, 2 processes {ssl:7.2f} s   fixity/openssl {fx / ssl:.2f} (target <= 1.15)")


if __name__ == "__main__":
    main()
