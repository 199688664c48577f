"""Serialized bags: tar, tar.gz and zip, deterministic, with a SHA-256 sidecar."""
from __future__ import annotations

import gzip
import hashlib
import struct
import tarfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from package_helpers import bagit_valid, build, pipeline_valid, tree_bytes
from pipeline.errors import PackagingError
from pipeline.serialize import EXTENSIONS, write_archive
from pipeline.stage import Settings
from pipeline.stages.package import package_collection

WHEN = datetime(2024, 2, 29, 12, 30, 15, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ser") / "output"
    originals = {"a.jpg": b"a" * 3000, "sub/caf\u00e9 b.png": b"b" * 100, "50%.jpg": b"%"}
    package, ctx = build(out, originals=originals)
    package_collection(package, ctx)
    return out / "coll"


def unpack(archive: Path, fmt: str, dest: Path) -> Path:
    if fmt == "zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(dest, filter="data")
    return dest


@pytest.mark.parametrize("fmt", sorted(EXTENSIONS))
def test_archive_holds_the_bag_under_one_folder(bag, tmp_path, fmt):
    archive = tmp_path / f"coll{EXTENSIONS[fmt]}"
    digest = write_archive(bag, archive, fmt, WHEN)
    assert digest == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert pipeline_valid(archive)
    out = unpack(archive, fmt, tmp_path / "x")
    assert [p.name for p in out.iterdir()] == ["coll"]
    assert tree_bytes(out / "coll") == tree_bytes(bag)


@pytest.mark.parametrize("fmt", sorted(EXTENSIONS))
def test_same_bag_same_time_same_bytes(bag, tmp_path, fmt):
    a = tmp_path / f"a{EXTENSIONS[fmt]}"
    b = tmp_path / f"b{EXTENSIONS[fmt]}"
    assert write_archive(bag, a, fmt, WHEN, root="coll") == write_archive(bag, b, fmt, WHEN, root="coll")
    assert a.read_bytes() == b.read_bytes()


def test_tar_entries_are_sorted_and_anonymous(bag, tmp_path):
    archive = tmp_path / "coll.tar"
    write_archive(bag, archive, "tar", WHEN)
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/")) and names[0] == "coll"
    assert "coll/data/objects/originals/sub/caf\u00e9 b.png" in names
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", int(WHEN.timestamp()))
        assert m.mode == (0o755 if m.isdir() else 0o644)


def test_gzip_header_has_the_run_time_and_no_file_name(bag, tmp_path):
    archive = tmp_path / "coll.tar.gz"
    write_archive(bag, archive, "tar.gz", WHEN)
    head = archive.read_bytes()[:10]
    flags, mtime = head[3], struct.unpack("<I", head[4:8])[0]
    assert flags & 0x08 == 0, "no FNAME field"
    assert mtime == int(WHEN.timestamp())
    assert gzip.decompress(archive.read_bytes())[:4] == b"coll"


def test_zip_entries_carry_the_run_time(bag, tmp_path):
    archive = tmp_path / "coll.zip"
    write_archive(bag, archive, "zip", WHEN)
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
    assert all(i.date_time == (2024, 2, 29, 12, 30, 14) for i in infos)  # zip: 2-second resolution
    assert [i.filename for i in infos][0] == "coll/"


def test_zip_before_1980_is_clamped(bag, tmp_path):
    archive = tmp_path / "old.zip"
    write_archive(bag, archive, "zip", datetime(1970, 1, 1, tzinfo=timezone.utc))
    with zipfile.ZipFile(archive) as zf:
        assert zf.infolist()[0].date_time == (1980, 1, 1, 0, 0, 0)


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_run_after_2106_clamps_the_archive_times(tmp_path, monkeypatch, fmt):
    """SOURCE_DATE_EPOCH in 2112: zip entries hold 2107-12-31 23:59:58 at most, the gzip header
    2**32 - 1 seconds (2106); the tar members keep the true time (no traceback, as before)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "4500000000")
    package, ctx = build(tmp_path / "output", settings=Settings(serialize=fmt))
    archive = ctx.output / f"coll{EXTENSIONS[fmt]}"
    assert archive.name in package_collection(package, ctx).published
    assert pipeline_valid(archive)
    if fmt == "zip":
        with zipfile.ZipFile(archive) as zf:
            assert {i.date_time for i in zf.infolist()} == {(2107, 12, 31, 23, 59, 58)}
    else:
        assert struct.unpack("<I", archive.read_bytes()[4:8])[0] == 2**32 - 1
        with tarfile.open(archive) as tf:
            assert {m.mtime for m in tf.getmembers()} == {4500000000}


def test_unknown_format_is_refused(bag, tmp_path):
    with pytest.raises(PackagingError):
        write_archive(bag, tmp_path / "coll.rar", "rar", WHEN)


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_stage_publishes_archive_and_sidecar(tmp_path, fmt):
    package, ctx = build(tmp_path / "output", settings=Settings(serialize=fmt))
    result = package_collection(package, ctx)
    name = f"coll{EXTENSIONS[fmt]}"
    assert result.published == ("coll", name, f"{name}.sha256")
    archive = ctx.output / name
    sidecar = (ctx.output / f"{name}.sha256").read_text(encoding="utf-8")
    assert sidecar == f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  {name}\n"
    assert pipeline_valid(archive)  # streamed, not unpacked
    out = unpack(archive, fmt, tmp_path / "x")
    assert bagit_valid(out / "coll")
    assert tree_bytes(out / "coll") == tree_bytes(ctx.output / "coll")


def test_zip_of_incompressible_file_just_under_the_zip64_limit(tmp_path, monkeypatch):
    """Deflate makes incompressible bytes a little larger: a file just under 4 GiB - 1 has
    deflated data past it, which zipfile refuses (RuntimeError) unless the entry was opened
    with ZIP64 sizes.  The limit is lowered here, as a 4 GiB file is too big for a test."""
    import os
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 100_000)
    out = tmp_path / "output"
    package, ctx = build(out, originals={"noise.jpg": os.urandom(99_990)})
    package_collection(package, ctx)
    archive = tmp_path / "coll.zip"
    write_archive(out / "coll", archive, "zip", WHEN)
    with zipfile.ZipFile(archive) as zf:
        assert zf.read("coll/data/objects/originals/noise.jpg") == (out / "coll/data/objects/originals/noise.jpg").read_bytes()
