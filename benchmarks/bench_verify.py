"""`pipeline verify` vs `bagit.py --validate --processes 2`, on the same bags, in one run.

    python benchmarks/bench_verify.py                          # 2 GB mixed bag + 100,000 small files
    python benchmarks/bench_verify.py --size 200M --files 10000   # quicker

Generates (once, under benchmarks/work/verify-*/, reused when present) two BagIt 1.0 bags with
sha256 + sha512 manifests (bagit-python's defaults), written by hand, one read of the data:

  mixed   --size bytes of random data in files of mixed sizes: a few of 5 to 10% of the total,
          some of 1 to 16 MB, many of 4 to 256 KB
  small   --files files of 200 to 4,000 bytes in 100 folders

then, on a warm page cache (every file read once before timing), times each tool --repeat times
(best run kept):

  ours      python -m pipeline verify --quiet --processes P BAG
  bagit     python -m bagit --quiet --validate --processes 2 BAG

and prints seconds, throughput and the ratio bagit/ours for each bag (above 1: ours is faster),
then writes them into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import WORK, machine, shown, timed, update_results, warm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.bag import encode_path  # noqa: E402
from pipeline.cli.options import parse_size  # noqa: E402

ALGORITHMS = ("sha256", "sha512")


def mixed_sizes(total: int, rng: random.Random) -> list[int]:
    sizes, left = [], total
    while left > 0:
        r = rng.random()
        if r < 0.01:
            size = int(total * rng.uniform(0.05, 0.10))
        elif r < 0.15:
            size = rng.randint(1 << 20, 16 << 20)
        else:
            size = rng.randint(4 << 10, 256 << 10)
        size = min(size, left)
        sizes.append(size)
        left -= size
    return sizes


def write_bag(root: Path, files: list[tuple[str, int]], seed: int) -> None:
    """Write payload files of the given sizes and a complete BagIt 1.0 bag around them."""
    if root.is_dir():
        return
    final, root = root, root.with_name(root.name + ".part")
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(seed)
    block = rng.randbytes(32 << 20)
    lines = {alg: [] for alg in ALGORITHMS}
    total = 0
    for i, (rel, size) in enumerate(files):
        path = root / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        start = (i * 7919) % (len(block) // 2)
        data = block[start:start + size] if size <= len(block) // 2 else None
        hashers = {alg: hashlib.new(alg) for alg in ALGORITHMS}
        with open(path, "wb") as f:
            if data is None:
                left = size
                while left:
                    chunk = rng.randbytes(min(left, 8 << 20))
                    f.write(chunk)
                    for h in hashers.values():
                        h.update(chunk)
                    left -= len(chunk)
            else:
                f.write(data)
                for h in hashers.values():
                    h.update(data)
        for alg, h in hashers.items():
            lines[alg].append(f"{h.hexdigest()}  {encode_path('data/' + rel)}\n")
        total += size
    tags = {"bagit.txt": "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
            "bag-info.txt": f"Bagging-Date: 2024-05-01\nPayload-Oxum: {total}.{len(files)}\n"}
    for alg in ALGORITHMS:
        tags[f"manifest-{alg}.txt"] = "".join(lines[alg])
    for name, text in tags.items():
        (root / name).write_text(text, encoding="utf-8")
    for alg in ALGORITHMS:
        (root / f"tagmanifest-{alg}.txt").write_text("".join(
            f"{hashlib.new(alg, text.encode()).hexdigest()}  {name}\n" for name, text in tags.items()),
            encoding="utf-8")
    root.rename(final)




def best(cmd: list[str], repeat: int):
    runs = [timed(cmd) for _ in range(repeat)]
    for r in runs:
        if r.returncode != 0:
            raise SystemExit(f"{shown(r.command)} exited {r.returncode}:\n{r.stderr[-2000:]}{r.stdout[-2000:]}")
    return min(runs, key=lambda r: r.seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="2G", help="payload of the mixed bag (default 2G)")
    ap.add_argument("--files", type=int, default=100_000, help="files in the small-files bag (default 100000)")
    ap.add_argument("--processes", type=int, default=2, help="pipeline verify --processes (default 2)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs of each tool, best kept (default 1)")
    args = ap.parse_args()
    size = parse_size(args.size)

    rng = random.Random(1)
    mixed = WORK / f"verify-mixed-{args.size}"
    write_bag(mixed, [(f"d{i % 20:02d}/file-{i:05d}.bin", s) for i, s in enumerate(mixed_sizes(size, rng))], 2)
    small = WORK / f"verify-small-{args.files}"
    write_bag(small, [(f"d{i % 100:03d}/f{i:06d}.txt", rng.randint(200, 4000)) for i in range(args.files)], 3)

    rows, lines = [], []
    for label, bag in (("mixed", mixed), ("small", small)):
        warm(bag)
        ours = best([sys.executable, "-m", "pipeline", "verify", "--quiet", "--processes",
                     str(args.processes), str(bag)], args.repeat)
        ref = best([sys.executable, "-m", "bagit", "--quiet", "--validate", "--processes", "2", str(bag)],
                   args.repeat)
        n = sum(1 for line in (bag / "manifest-sha256.txt").open(encoding="utf-8"))
        mb = sum(int(x) for x in [(bag / "bag-info.txt").read_text().split("Payload-Oxum: ")[1].split(".")[0]]) / 2**20
        ratio = ref.seconds / ours.seconds
        rows.append((label, ratio))
        lines.append(f"{label:6} {n:>7} files {mb:>8.0f} MB   ours {ours.seconds:7.2f} s ({mb / ours.seconds:6.0f} MB/s, "
                     f"{ours.tree_rss_mb:5.0f} MB RSS)   bagit {ref.seconds:7.2f} s ({mb / ref.seconds:6.0f} MB/s, "
                     f"{ref.tree_rss_mb:5.0f} MB RSS)   ratio bagit/ours {ratio:5.2f}x")
        commands = (shown(ours.command), shown(ref.command))
        lines.append(f"       ours: {commands[0]}\n       bagit: {commands[1]}")
    report = "\n".join(lines)
    print(report)
    print("ratios (bagit time / ours, target > 1): " + ", ".join(f"{label} {r:.2f}x" for label, r in rows))
    update_results("bench_verify", "\n".join([
        "## `pipeline verify` vs `bagit.py --validate --processes 2` (issue 5)", "",
        f"Machine: {machine()}", "",
        f"Command: `python benchmarks/bench_verify.py --size {args.size} --files {args.files} "
        f"--processes {args.processes} --repeat {args.repeat}` (warm page cache, best of {args.repeat})", "",
        "```", report, "```", "",
        "Ratios (bagit time / ours; above 1 ours is faster): "
        + ", ".join(f"{label} {r:.2f}x" for label, r in rows)]))


if __name__ == "__main__":
    main()
