"""--max-bag-size counts each bag of a split package as it is written: its own METS (the
collection's less the other bags' objects), the metadata every bag carries, its items, and the
tag files.  It once charged every bag the whole package's metadata (the full METS with every
photograph's technical and provenance sections), so a bag's few small photographs were judged
larger than a limit they fitted in many times over (`package.oversize`, one bag each), and it
left the tag files out.  The stages before `package` run once (`--until describe`); each limit
packages a copy of that staging folder."""
from __future__ import annotations

import os
import random
import re
import shutil
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import run_cli
from helpers_stages import make_collection
from package_helpers import bagit_valid
from pipeline.partmets import object_shares, write_part_mets
from pipeline.serialize import EXTENSIONS, Bound, bag_entries, write_archive

ITEMS = 6


@pytest.fixture(scope="module")
def described(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("split")
    collection = make_collection(root / "ingest", n=ITEMS, size=(24, 16), name="coll")
    proc = run_cli("run", collection, "--output", root / "output", "-q", "--until", "describe")
    assert proc.returncode == 0, proc.stderr
    return collection, root / "output"


def _packaged(described, tmp_path: Path, limit: int, *options) -> tuple[list[Path], str]:
    """The bags `pipeline run --max-bag-size LIMIT [OPTIONS]` publishes from a copy of the
    described staging (their archives, if any, beside them)."""
    collection, output = described
    out = tmp_path / "-".join(["out", str(limit), *options])
    shutil.copytree(output, out, symlinks=True)
    proc = run_cli("run", collection, "--output", out, "-q", "--max-bag-size", limit, *options)
    assert proc.returncode == 0, proc.stderr
    return sorted(p for p in out.iterdir() if p.is_dir() and p.name != ".staging"), proc.stdout + proc.stderr


def _on_disk(bag: Path) -> int:
    """Every byte of the bag: payload and tag files."""
    return sum(p.stat().st_size for p in bag.rglob("*") if p.is_file())


def test_every_split_bag_payload_and_tag_files_is_within_max_bag_size(described, tmp_path):
    singles, output = _packaged(described, tmp_path, 1)      # every item over the limit: a bag each
    assert len(singles) == ITEMS and output.count("[package.oversize]") == ITEMS
    largest = max(_on_disk(bag) for bag in singles)           # the largest item in a bag of its own
    limits = (largest + 4096, 2 * largest, 4 * largest)
    with ThreadPoolExecutor(len(limits)) as runs:      # three processes at once: the test's time
        results = list(runs.map(lambda limit: _packaged(described, tmp_path, limit), limits))
    for limit, (bags, output) in zip(limits, results):
        assert "package.oversize" not in output, f"--max-bag-size {limit}: {output}"
        assert [(b.name, _on_disk(b)) for b in bags if _on_disk(b) > limit] == [], limit
        originals = [p.name for b in bags for p in (b / "data/objects/originals").iterdir()]
        assert sorted(originals) == sorted(f"img{i:04d}.jpg" for i in range(ITEMS))
        assert all(bagit_valid(b) for b in bags)
        if limit >= 2 * largest:
            assert len(bags) <= -(-ITEMS // 2), f"two items fit in {limit} bytes: {len(bags)} bags"


def test_object_shares_bound_each_part_mets_closely(described, tmp_path):
    """The METS of a bag keeping some objects is at most the METS that keeps none plus the shares
    of the objects kept, and not much more (the namespace declarations an element serialized
    alone carries): checked for subsets of the objects against the METS write_part_mets writes."""
    staging = described[1] / ".staging" / "coll"
    mets = staging / "data/metadata/mets.xml"
    base, shares = object_shares(mets)
    objects = sorted(p.relative_to(staging).as_posix() for p in (staging / "data/objects").rglob("*") if p.is_file())
    metadata = [p.relative_to(staging).as_posix() for p in (staging / "data/metadata").rglob("*") if p.is_file()]
    assert sorted(shares) == objects
    for kept in ([], objects[:1], random.Random(7).sample(objects, len(objects) // 2), objects):
        size, _ = write_part_mets(mets, tmp_path / "part.xml", kept + metadata, ("sha256",))
        estimate = base + sum(shares[o] for o in kept)
        assert size <= estimate <= size + 1024 * len(kept), (len(kept), size, estimate)


def test_every_serialized_part_is_within_max_bag_size(described, tmp_path):
    """With --serialize the limit bounds each archive (tar: headers, padding, end blocks and
    10240-byte records; zip: headers twice, descriptors, end records; compressed: deflate's
    worst case), and its bag folder, for each format: at the smallest limit no item is over
    (the largest bound `package.oversize` gives an item alone) and at 2.5 times that."""
    def run(fmt: str, limit: int) -> tuple[list[Path], str]:
        return _packaged(described, tmp_path, limit, "--serialize", fmt)

    formats = sorted(EXTENSIONS)
    with ThreadPoolExecutor(2 * len(formats)) as runs:      # a few processes at once: the test's time
        alone = {}
        for fmt, (singles, output) in zip(formats, runs.map(run, formats, [1] * len(formats))):
            alone[fmt] = [int(n) for n in re.findall(r"own is (?:up to )?(\d+) bytes", output)]
            assert len(singles) == len(alone[fmt]) == ITEMS, output
            archives = [b.with_name(b.name + EXTENSIONS[fmt]).stat().st_size for b in singles]
            assert all(size <= bound for size, bound in zip(archives, alone[fmt]))
            if fmt == "tar":    # the bound is close: a record and a block per file whose size it cannot know
                assert max(alone[fmt]) <= max(archives) + tarfile.RECORDSIZE + 16 * tarfile.BLOCKSIZE
        cases = [(fmt, max(alone[fmt]) * k // 2) for fmt in formats for k in (2, 5)]
        results = list(runs.map(lambda case: run(*case), cases))
    for (fmt, limit), (bags, output) in zip(cases, results):
        assert "package.oversize" not in output, f"--serialize {fmt} --max-bag-size {limit}: {output}"
        sizes = {b.name: (b.with_name(b.name + EXTENSIONS[fmt]).stat().st_size, _on_disk(b)) for b in bags}
        assert {name: s for name, s in sizes.items() if max(s) > limit} == {}, (fmt, limit)
        if limit >= 2 * max(alone[fmt]):
            assert len(bags) <= -(-ITEMS // 2), f"two items fit in {limit} bytes: {len(bags)} bags"
        originals = [p.name for b in bags for p in (b / "data/objects/originals").iterdir()]
        assert sorted(originals) == sorted(f"img{i:04d}.jpg" for i in range(ITEMS))


@pytest.mark.parametrize("fmt", sorted(EXTENSIONS))
def test_archive_bound_holds_for_long_names_padding_and_incompressible_bytes(tmp_path, fmt):
    """serialize.Bound against the archive write_archive makes of a bag that tests it: names
    past tar's 100 bytes, not ASCII (PAX headers), sizes about a 512-byte block, random bytes
    (deflate expands them), deep folders; files counted by size or, as the tag files, apart."""
    from datetime import datetime, timezone
    bag = tmp_path / "b-1-of-1"
    deep = bag / "data" / "objects" / ("ü" * 60) / ("ş" * 70)
    deep.mkdir(parents=True)
    rnd = random.Random(13)
    for n, size in enumerate((0, 1, 511, 512, 513, 70_000)):
        (deep / f"{'фото' * 20}-{n}.bin").write_bytes(rnd.randbytes(size))
    (bag / "bag-info.txt").write_bytes(rnd.randbytes(900))
    when = datetime(2023, 11, 14, tzinfo=timezone.utc)
    bound = Bound(fmt, bag.name, when)
    counted = bound.folder("") + sum(
        bound.folder(rel) if path.is_dir() else bound.grown(rel, 10**6) + path.stat().st_size if rel == "bag-info.txt"
        else bound.file(rel, path.stat().st_size) for rel, path in bag_entries(bag))
    write_archive(bag, tmp_path / "b.archive", fmt, when)
    actual = os.path.getsize(tmp_path / "b.archive")
    assert _on_disk(bag) <= bound.total(counted) and actual <= bound.total(counted)
    if fmt != "tar.gz":     # close, but for what deflate makes of the tar's zero padding
        assert bound.total(counted) - actual <= (tarfile.RECORDSIZE if fmt == "tar" else actual // 100 + 2048)
