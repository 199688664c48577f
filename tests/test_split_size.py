"""--max-bag-size counts each bag of a split package as it is written: its own METS (the
collection's less the other bags' objects), the metadata every bag carries, its items, and the
tag files.  It once charged every bag the whole package's metadata (the full METS with every
photograph's technical and provenance sections), so a bag's few small photographs were judged
larger than a limit they fitted in many times over (`package.oversize`, one bag each), and it
left the tag files out.  The stages before `package` run once (`--until describe`); each limit
packages a copy of that staging folder."""
from __future__ import annotations

import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import run_cli
from helpers_stages import make_collection
from package_helpers import bagit_valid
from pipeline.partmets import object_shares, write_part_mets

ITEMS = 6


@pytest.fixture(scope="module")
def described(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("split")
    collection = make_collection(root / "ingest", n=ITEMS, size=(24, 16), name="coll")
    proc = run_cli("run", collection, "--output", root / "output", "-q", "--until", "describe")
    assert proc.returncode == 0, proc.stderr
    return collection, root / "output"


def _packaged(described, tmp_path: Path, limit: int) -> tuple[list[Path], str]:
    """The bags `pipeline run --max-bag-size LIMIT` publishes from a copy of the described staging."""
    collection, output = described
    out = tmp_path / f"out-{limit}"
    shutil.copytree(output, out, symlinks=True)
    proc = run_cli("run", collection, "--output", out, "-q", "--max-bag-size", limit)
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
