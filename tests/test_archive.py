"""pipeline/archive.py: serialized bags streamed without unpacking; zip-slip refused."""
from __future__ import annotations

import hashlib
import io
import os
import struct
import tarfile
import tracemalloc
import zipfile
import zlib

import pytest

from bagmaker import write_bag
from conftest import no_traceback, run_cli
from pipeline.archive import ArchiveBag, unsafe_reason
from pipeline.verify import verify_bag

PAYLOAD = {"a.txt": b"alpha\n", "deep/b.bin": os.urandom((1 << 20) + 4321), "empty": b""}


def codes(report):
    return sorted({p.code for p in report.problems})


def make_tar(bag, dest, mode="w"):
    with tarfile.open(dest, mode) as tf:
        tf.add(bag, arcname=bag.name)
    return dest


def make_zip(bag, dest):
    with zipfile.ZipFile(dest, "w") as zf:
        for path in sorted(bag.rglob("*")):
            zf.write(path, f"{bag.name}/{path.relative_to(bag).as_posix()}")
    return dest


def add_member(tf, name, data=b"", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(data), linkname
    tf.addfile(info, io.BytesIO(data) if data else None)


@pytest.fixture
def bag(tmp_path):
    return write_bag(tmp_path / "src" / "mybag", PAYLOAD)


@pytest.mark.parametrize("suffix, mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tar.xz", "w:xz")])
def test_tar_bags_valid(tmp_path, bag, suffix, mode):
    archive = make_tar(bag, tmp_path / f"mybag{suffix}", mode)
    report = verify_bag(archive)
    assert report.valid, [p.render() for p in report.problems]
    assert report.serialization == suffix[1:] and report.files == 3
    assert not (tmp_path / "mybag").exists()


@pytest.mark.parametrize("suffix, mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".zip", None)])
def test_fast_scan_hashes_nothing(tmp_path, bag, suffix, mode):
    """--fast (completeness only) lists the same files and keeps the same tag files, but hashes
    neither the payload nor the archive for its sidecar (an uncompressed tar is read by seeking)."""
    archive = make_zip(bag, tmp_path / "mybag.zip") if mode is None else make_tar(bag, tmp_path / f"mybag{suffix}", mode)
    (tmp_path / f"mybag{suffix}.sha256").write_text("0" * 64 + f"  mybag{suffix}\n")
    full, fast = ArchiveBag(archive), ArchiveBag(archive, checksums=False)
    assert fast.listing.files == full.listing.files and fast._kept == full._kept
    assert full.sha256 and "archive.sidecar" in codes(full)
    assert fast._digests == {} and fast.sha256 == "" and fast.problems == []
    assert verify_bag(archive, fast=True).valid


def test_zip_bag_valid(tmp_path, bag):
    report = verify_bag(make_zip(bag, tmp_path / "mybag.zip"))
    assert report.valid and report.serialization == "zip" and report.hashed == 3 + 4


@pytest.mark.parametrize("maker", [make_tar, make_zip])
def test_file_mismatch_inside_archive(tmp_path, bag, maker):
    (bag / "data" / "a.txt").write_bytes(b"ALPHA\n")
    report = verify_bag(maker(bag, tmp_path / ("mybag.tar" if maker is make_tar else "mybag.zip")))
    assert [(p.code, p.path) for p in report.problems] == [("file.mismatch", "data/a.txt")] * 2


def test_tar_second_pass_when_manifests_come_last(tmp_path):
    # md5 manifests stored after the payload: the first pass guessed sha256/sha512.
    src = write_bag(tmp_path / "src" / "old", PAYLOAD, algorithms=("md5",), tag_algorithms=("md5",))
    archive = tmp_path / "old.tar"
    with tarfile.open(archive, "w") as tf:
        for rel in ("data/a.txt", "data/deep/b.bin", "data/empty", "bagit.txt", "bag-info.txt",
                    "manifest-md5.txt", "tagmanifest-md5.txt"):
            tf.add(src / rel, arcname=f"old/{rel}")
    assert verify_bag(archive).valid
    (src / "data" / "deep" / "b.bin").write_bytes(os.urandom((1 << 20) + 4321))
    with tarfile.open(archive, "w") as tf:
        tf.add(src, arcname="old")
    assert codes(verify_bag(archive)) == ["file.mismatch"]


@pytest.mark.parametrize("name, kind, linkname, code", [
    ("mybag/../escaped.txt", tarfile.REGTYPE, "", "archive.unsafe"),
    ("/etc/evil.txt", tarfile.REGTYPE, "", "archive.unsafe"),
    ("mybag/data/link", tarfile.SYMTYPE, "../../../etc/passwd", "archive.link"),
    ("mybag/data/hard", tarfile.LNKTYPE, "/etc/passwd", "archive.link"),
    ("mybag/data/dev", tarfile.CHRTYPE, "", "archive.link"),
    ("other/file.txt", tarfile.REGTYPE, "", "archive.layout"),
    ("loose.txt", tarfile.REGTYPE, "", "archive.layout"),
])
def test_tar_entries_refused(tmp_path, bag, name, kind, linkname, code):
    archive = make_tar(bag, tmp_path / "mybag.tar")
    with tarfile.open(archive, "a") as tf:
        add_member(tf, name, b"evil" if kind == tarfile.REGTYPE else b"", kind, linkname)
    report = verify_bag(archive)
    assert codes(report) == [code] and not report.valid
    assert report.problems[0].path == name
    assert not (tmp_path / "escaped.txt").exists()


def test_tar_duplicate_entry(tmp_path, bag):
    archive = make_tar(bag, tmp_path / "mybag.tar")
    with tarfile.open(archive, "a") as tf:
        add_member(tf, "mybag/data/a.txt", b"other content")
    assert "archive.duplicate" in codes(verify_bag(archive))


def _tar_duplicate_before_manifests(tmp_path):
    # md5 manifests stored last: the payload is hashed again in a second pass, by member name.
    src = write_bag(tmp_path / "src" / "mybag", {"a.txt": b"alpha\n"}, algorithms=("md5",), tag_algorithms=("md5",))
    archive = tmp_path / "mybag.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(src / "data" / "a.txt", arcname="mybag/data/a.txt")
        add_member(tf, "mybag/data/a.txt", b"other content")
        for rel in ("bagit.txt", "bag-info.txt", "manifest-md5.txt", "tagmanifest-md5.txt"):
            tf.add(src / rel, arcname=f"mybag/{rel}")
    return archive


def _zip_duplicate(tmp_path):
    archive = make_zip(write_bag(tmp_path / "src" / "mybag", {"a.txt": b"alpha\n"}), tmp_path / "mybag.zip")
    with zipfile.ZipFile(archive, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("mybag/data/a.txt", b"other content")
    return archive


@pytest.mark.parametrize("maker", [_tar_duplicate_before_manifests, _zip_duplicate], ids=["tar", "zip"])
def test_archive_duplicate_second_entry_never_read(tmp_path, maker):
    """The first entry of a name is the file; the refused duplicate is never hashed in its place."""
    report = verify_bag(maker(tmp_path))
    assert [(p.code, p.path) for p in report.problems] == [("archive.duplicate", "data/a.txt")]


def zip_with_raw_name(bag, dest, rel, raw, extra=b""):
    """A zip of `bag` whose entry `rel` is named by the bytes `raw` (after the bag folder) without
    the UTF-8 flag 0x800, as Info-ZIP writes names: written under an ASCII stand-in of the same
    length, whose bytes are then replaced in the local and central headers."""
    stand_in = f"{bag.name}/".encode() + b"#" * len(raw)
    with zipfile.ZipFile(dest, "w") as zf:
        for path in sorted(bag.rglob("*")):
            arc = path.relative_to(bag).as_posix()
            if arc != rel:
                zf.write(path, f"{bag.name}/{arc}")
                continue
            info = zipfile.ZipInfo(stand_in.decode())
            info.extra = extra
            zf.writestr(info, path.read_bytes())
    data = dest.read_bytes()
    assert data.count(stand_in) == 2
    dest.write_bytes(data.replace(stand_in, f"{bag.name}/".encode() + raw))
    return dest


def unicode_path_extra(raw_name, name):
    """Info-ZIP's Unicode Path extra field (0x7075): version 1, CRC-32 of the header name, UTF-8 name."""
    body = struct.pack("<BI", 1, zlib.crc32(raw_name)) + name.encode()
    return struct.pack("<HH", 0x7075, len(body)) + body


@pytest.mark.parametrize("raw, extra", [
    ("data/\u00fc.txt".encode(), b""),                  # UTF-8 bytes, flag clear (zip -r on Linux)
    (b"data/\xfc.txt", unicode_path_extra(b"mybag/data/\xfc.txt", "mybag/data/\u00fc.txt")),  # Latin-1 + 0x7075
], ids=["utf8-without-flag", "unicode-path-extra"])
def test_zip_info_zip_non_ascii_name_valid(tmp_path, raw, extra):
    """zipfile decodes a name without flag 0x800 as cp437 ('data/\u251c\u255d.txt'): no file.missing or
    file.unlisted for data/\u00fc.txt made by Info-ZIP."""
    src = write_bag(tmp_path / "src" / "mybag", {"\u00fc.txt": b"u\n"})
    archive = zip_with_raw_name(src, tmp_path / "mybag.zip", "data/\u00fc.txt", raw, extra)
    report = verify_bag(archive)
    assert report.valid and report.problems == [], [p.render() for p in report.problems]
    assert report.files == 1


def test_zip_slip_and_symlink_refused(tmp_path, bag):
    archive = make_zip(bag, tmp_path / "mybag.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("mybag/../../escaped.txt", b"evil")
        link = zipfile.ZipInfo("mybag/data/link")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
    report = verify_bag(archive)
    assert codes(report) == ["archive.link", "archive.unsafe"]
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_archive_sidecar(tmp_path, bag):
    archive = make_tar(bag, tmp_path / "mybag.tar.gz", "w:gz")
    sidecar = tmp_path / "mybag.tar.gz.sha256"
    sidecar.write_text(f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  mybag.tar.gz\n")
    assert verify_bag(archive).problems == []
    sidecar.write_text(f"{'0' * 64}  mybag.tar.gz\n")
    report = verify_bag(archive)
    assert codes(report) == ["archive.sidecar"] and report.problems[0].path == sidecar.name
    sidecar.write_text("not a checksum\n")
    assert codes(verify_bag(archive)) == ["archive.sidecar"]
    sidecar.write_text(f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  other.tar.gz\n")
    report = verify_bag(archive)
    assert report.valid and [(p.code, p.severity) for p in report.problems] == [("archive.sidecar", "warning")]


def test_archive_unreadable_cli(tmp_path, bag):
    archive = make_tar(bag, tmp_path / "mybag.tar.gz", "w:gz")
    archive.write_bytes(archive.read_bytes()[:5000])
    proc = run_cli("verify", archive)
    assert proc.returncode == 1 and no_traceback(proc)
    assert "[archive.unreadable]" in proc.stdout


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_large_top_level_non_tag_file_streamed_not_kept(tmp_path, suffix):
    """Only the tag files verify parses are kept in memory: an 8 MiB top-level file (listed in the
    tag manifest) is hashed as it streams, so verifying never holds it whole; a changed byte in it
    is still a file.mismatch."""
    big = 12 << 20
    src = write_bag(tmp_path / "src" / "mybag", {"a.txt": b"alpha\n"}, extra_tags={"big.bin": bytes(big)})
    make = (lambda d: make_zip(src, d)) if suffix == ".zip" else (lambda d: make_tar(src, d, "w:gz"))
    archive = make(tmp_path / f"mybag{suffix}")
    tracemalloc.start()
    try:
        report = verify_bag(archive)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.valid, [p.render() for p in report.problems]
    assert peak < big // 2, peak
    assert sorted(ArchiveBag(archive)._kept) == ["bag-info.txt", "bagit.txt", "manifest-sha256.txt",
                                                 "manifest-sha512.txt", "tagmanifest-sha256.txt"]
    (src / "big.bin").write_bytes(bytes(big - 1) + b"x")
    report = verify_bag(make(tmp_path / f"mybag{suffix}"))
    assert [(p.code, p.path) for p in report.problems] == [("file.mismatch", "big.bin")]


def _cut(data, n):
    return data[:-n]


def _flip_gzip_crc(data):
    return data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]


@pytest.mark.parametrize("suffix, mode, damage", [
    (".tar.gz", "w:gz", lambda b: _cut(b, 20)),      # trailer cut: the tar's end blocks still arrive
    (".tar.gz", "w:gz", _flip_gzip_crc),             # CRC-32 of the gzip trailer wrong
    (".tar.xz", "w:xz", lambda b: _cut(b, 12)),      # xz stream footer cut
    (".tar.bz2", "w:bz2", lambda b: _cut(b, 4)),     # bz2 end-of-stream marker cut
    (".tar.xz", "w:xz", lambda b: b[:40] + bytes(x ^ 0x5A for x in b[40:80]) + b[80:]),  # xz data corrupt
], ids=["gz-truncated", "gz-crc", "xz-truncated", "bz2-truncated", "xz-corrupt"])
def test_damaged_compression_trailer_is_archive_unreadable(tmp_path, suffix, mode, damage):
    """The tar inside ends before the damage, so only reading the compressed stream to its end
    (CRC, length, end marker) finds it: full and --fast checks both refuse it."""
    small = write_bag(tmp_path / "src" / "mybag", {"a.txt": b"alpha\n"})
    archive = make_tar(small, tmp_path / f"mybag{suffix}", mode)
    archive.write_bytes(damage(archive.read_bytes()))
    for fast in (False, True):
        report = verify_bag(archive, fast=fast)
        assert codes(report) == ["archive.unreadable"] and not report.valid


def test_damaged_gzip_crc_cli_exit_1(tmp_path, bag):
    archive = make_tar(bag, tmp_path / "mybag.tar.gz", "w:gz")
    archive.write_bytes(_flip_gzip_crc(archive.read_bytes()))
    proc = run_cli("verify", archive)
    assert proc.returncode == 1 and no_traceback(proc)
    assert "mybag.tar.gz" in proc.stdout and "[archive.unreadable]" in proc.stdout


def test_cli_json_for_zip(tmp_path, bag):
    proc = run_cli("verify", "--json", make_zip(bag, tmp_path / "mybag.zip"))
    assert proc.returncode == 0 and '"serialization": "zip"' in proc.stdout


@pytest.mark.parametrize("name, unsafe", [
    ("bag/data/x", False), ("bag/data/..x", False), ("../x", True), ("bag/../../x", True),
    ("/x", True), ("C:/x", True), ("bag\\..\\..\\x", True),
])
def test_unsafe_reason(name, unsafe):
    assert bool(unsafe_reason(name)) == unsafe


def test_archive_listing_never_touches_disk(tmp_path, bag):
    archive = make_tar(bag, tmp_path / "mybag.tar")
    before = set(tmp_path.rglob("*"))
    source = ArchiveBag(archive)
    assert set(tmp_path.rglob("*")) == before
    assert sorted(source.listing.files) == sorted(
        ["bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt",
         "tagmanifest-sha256.txt", "data/a.txt", "data/deep/b.bin", "data/empty"])


def test_archive_layout_without_bag_folder_reported_once_per_name(tmp_path, bag):
    archive = tmp_path / "flat.tar"
    with tarfile.open(archive, "w") as tf:
        for path in sorted(bag.rglob("*")):
            tf.add(path, arcname=f"./{path.relative_to(bag).as_posix()}", recursive=False)
    report = verify_bag(archive)
    layout = [p for p in report.problems if p.code == "archive.layout"]
    assert not report.valid and 0 < len(layout) <= 8


def test_archive_layout_bag_folder_named_unlike_archive_is_a_warning(tmp_path, bag):
    report = verify_bag(make_tar(bag, tmp_path / "renamed.tar.gz", "w:gz"))
    assert report.valid and [(p.code, p.severity) for p in report.problems] == [("archive.layout", "warning")]
