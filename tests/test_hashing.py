"""pipeline/hashing.py: single files, and many files in parallel (`hash_many`)."""
import hashlib
import os
import subprocess
import sys
import threading

import pytest

from pipeline import hashing
from pipeline.hashing import BIG_CHUNK, BIG_FILE, hash_bytes, hash_file, hash_many, copy_hashed, write_hashed

ALGS = ("md5", "sha1", "sha256", "sha512")
SIZES = (0, 1, 2047, 2048, 65536, BIG_CHUNK - 1, BIG_CHUNK, BIG_FILE - 1, BIG_FILE, BIG_CHUNK + 12345, 2 * BIG_CHUNK)


def reference(data: bytes, algorithms=ALGS) -> dict:
    return {a: hashlib.new(a, data).hexdigest() for a in algorithms}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Files of every interesting size (below, at and above the thresholds), random content."""
    root = tmp_path_factory.mktemp("hashing")
    out = {}
    for i, size in enumerate(SIZES):
        data = os.urandom(size)
        path = root / f"f{i}-{size}.bin"
        path.write_bytes(data)
        out[str(path)] = data
    return out


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_hash_many_matches_hashlib_for_every_size_and_algorithm(files, workers):
    results = list(hash_many(files, ALGS, workers))
    assert sorted(r.path for r in results) == sorted(files)
    for r in results:
        assert r.error == ""
        assert r.size == len(files[r.path])
        assert r.digests == reference(files[r.path])


def test_hash_many_agrees_with_hash_file(files):
    for r in hash_many(files, ("sha256", "sha512")):
        assert hash_file(r.path, ("sha256", "sha512")) == (r.size, r.digests)


def test_hash_many_reports_unreadable_paths_and_goes_on(files, tmp_path):
    paths = [str(tmp_path / "absent"), str(tmp_path), *files]
    results = {r.path: r for r in hash_many(paths, ["sha256"], 2)}
    assert len(results) == len(paths)
    assert "No such file" in results[str(tmp_path / "absent")].error
    assert results[str(tmp_path)].error and results[str(tmp_path)].digests == {}
    assert all(results[p].error == "" for p in files)


def test_hash_many_refuses_symlinks_unless_asked(files, tmp_path):
    target = next(iter(files))
    link = tmp_path / "link"
    link.symlink_to(target)
    (refused,) = hash_many([str(link)], ["sha256"], follow_symlinks=False)
    assert refused.error and refused.digests == {}
    (followed,) = hash_many([str(link)], ["sha256"])
    assert followed.digests == reference(files[target], ["sha256"])


def test_hash_many_unknown_algorithm_raises_before_any_thread():
    before = threading.active_count()
    with pytest.raises(ValueError):
        next(hash_many(["/nonexistent"], ["sha256", "no-such-hash"]))
    assert threading.active_count() == before


def test_leaving_the_loop_early_stops_the_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(hashing, "RESULT_BATCH", 2)  # many small batches: workers block on a full queue
    paths = []
    for i in range(300):
        p = tmp_path / f"{i}.txt"
        p.write_bytes(b"x" * (i % 50))
        paths.append(str(p))
    before = threading.active_count()
    it = hash_many(paths, ["sha256"], 2)
    first = next(it)
    it.close()
    assert first.error == ""
    assert threading.active_count() == before


def test_hash_many_consumes_paths_lazily(tmp_path, monkeypatch):
    """Only a bounded number of results wait: the producer does not race through a huge input."""
    monkeypatch.setattr(hashing, "RESULT_BATCH", 4)
    p = tmp_path / "a"
    p.write_bytes(b"abc")
    taken = 0

    def source():
        nonlocal taken
        for _ in range(100_000):
            taken += 1
            yield str(p)

    it = hash_many(source(), ["md5"], 2)
    next(it)
    # queue of 4 x workers batches of 4, plus a batch per worker in hand: far below the input size
    assert taken <= 4 * 2 * 4 + 2 * 4 + 2 + 4
    it.close()


def test_single_file_helpers_keep_their_contract(tmp_path):
    data = os.urandom(3 * hashing.CHUNK + 5)
    size, digests = write_hashed(tmp_path / "w" / "a.bin", data, ["sha256", "md5"])
    assert (size, digests) == (len(data), reference(data, ["sha256", "md5"]))
    assert hash_bytes(data, ["sha1"]) == reference(data, ["sha1"])
    size, digests = copy_hashed(tmp_path / "w" / "a.bin", tmp_path / "c" / "b.bin", ["sha512"])
    assert (tmp_path / "c" / "b.bin").read_bytes() == data
    assert digests == reference(data, ["sha512"])


@pytest.mark.parametrize("how", ["write", "copy"])
def test_a_failed_write_leaves_no_temporary_file(tmp_path, how):
    """A write cut short (here by a file-size limit, as by a full disk) raises and leaves
    neither the file nor its .part."""
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 50_000)
    code = f"""
import resource, signal, sys
from pathlib import Path
from pipeline.hashing import copy_hashed, write_hashed
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))
dest = Path(sys.argv[1]) / "out" / "dest.bin"
try:
    if {how!r} == "write":
        write_hashed(dest, Path(sys.argv[2]).read_bytes(), ("sha256",))
    else:
        copy_hashed(Path(sys.argv[2]), dest, ("sha256",))
except OSError:
    sys.exit(7)
"""
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(src)], capture_output=True, text=True)
    assert r.returncode == 7, r.stderr
    assert list((tmp_path / "out").iterdir()) == []
