"""The convert stage on generated sources of every format and mode: masters proven, valid, carried."""
from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings, strategies as st

from convert_fixtures import (MULTI, SOURCES, checkit, expected_frames, gif, jpeg, png,
                              srgb_icc, tool)
from pipeline.errors import errors_in
from pipeline.model import ORIGINAL, PRESERVATION, Item
from pipeline.stage import Context, Settings
from pipeline.stages.convert import STAGE, convert_item, master_bagpaths, proofs_dir, record_digest

CONFIG = Path(__file__).resolve().parent.parent / "data" / "checkit_tiff" / "archival_master.cfg"


def make_ctx(tmp: Path, name: str = "coll", **settings) -> Context:
    return Context.create(Settings(**{"workers": 1, **settings}), tmp / "ingest" / name, tmp / "output", name)


def put(ctx: Context, relpath: str, data: bytes) -> Item:
    path = ctx.ingest / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Item(id=ctx.make_id(relpath), relpath=relpath, record=None)


def staged_files(ctx: Context) -> list[str]:
    if not ctx.staging.exists():
        return []
    return sorted(p.relative_to(ctx.staging).as_posix() for p in ctx.staging.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Every single- and multi-frame source converted once, uncompressed and with deflate."""
    tmp = tmp_path_factory.mktemp("convert")
    out = {}
    for compression in ("none", "deflate"):
        ctx = make_ctx(tmp / compression, compression=compression)
        sources = {**{k: f() for k, f in SOURCES.items()}, **{k: f() for k, (f, _) in MULTI.items()}}
        for name, data in sources.items():   # one folder per format: rgb.jpg and rgb.png both make rgb.tif
            item = convert_item(put(ctx, f"{name.rsplit('.', 1)[1]}/{name}", data), ctx)
            out[compression, name] = (ctx, item, data)
    return out


ALL = sorted(SOURCES) + sorted(MULTI)


@pytest.mark.parametrize("compression", ["none", "deflate"])
@pytest.mark.parametrize("name", ALL)
def test_master_pixels_equal_independently_decoded_source(converted, name, compression):
    ctx, item, data = converted[compression, name]
    assert not errors_in(item.problems), item.problems
    frames = expected_frames(data)
    assert len(item.masters) == len(frames) == item.masters[0].technical["frames"]
    for master, expected in zip(item.masters, frames):
        with tifffile.TiffFile(ctx.staging / master.bagpath) as tf:
            page = tf.pages[0]
            got = page.asarray()
            assert tf.byteorder == "<" and len(tf.pages) == 1
            assert page.tags["Orientation"].value == 1
            assert page.compression == (8 if compression == "deflate" else 1)
            if compression == "deflate" and got.dtype != bool:
                assert page.predictor == 2
        assert got.dtype == (bool if expected.dtype == bool else expected.dtype)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", ALL)
def test_files_and_events_follow_the_contract(converted, name):
    ctx, item, data = converted["none", name]
    original, name = item.original, item.relpath
    assert original.role == ORIGINAL and original.bagpath == f"data/objects/originals/{name}"
    assert (ctx.staging / original.bagpath).read_bytes() == data
    assert original.checksums["sha256"] == hashlib.sha256(data).hexdigest()
    assert original.checksums["sha512"] == hashlib.sha512(data).hexdigest()
    assert original.id == ctx.make_id("original", name)
    assert [m.bagpath for m in item.masters] == master_bagpaths(name, len(item.masters))
    for m in item.masters:
        raw = (ctx.staging / m.bagpath).read_bytes()
        assert m.role == PRESERVATION and m.size == len(raw)
        assert m.checksums["sha256"] == hashlib.sha256(raw).hexdigest()
        assert (m.mimetype, m.format_name, m.format_version, m.pronom) == ("image/tiff", "TIFF", "6.0", "fmt/353")
        assert m.technical["source_pixel_sha256"] == m.technical["master_pixel_sha256"]
    digest, norm = item.events
    assert digest.type == "message digest calculation" and digest.extra["sha256"] == original.checksums["sha256"]
    assert norm.type == "normalization" and norm.outcome == "success"
    assert norm.id == ctx.make_id("event", "normalization", name)
    assert norm.objects == ((original.id, "source"), *((m.id, "outcome") for m in item.masters))
    assert norm.extra["master_pixel_sha256"] == [m.technical["master_pixel_sha256"] for m in item.masters]
    assert "pixel proof passed" in norm.outcome_detail


# IPTC-NAA is written as LONG, as Photoshop writes it and the one form exiftool reads; checkit-tiff
# expects UNDEFINED.  That single complaint is expected; anything else fails.
IPTC_AS_LONG = "tag 33723 (RichTIFFIPTC / NAA)\t--> Tag should have a valid and correct type. Unexpected tag type.; found: LONG"


def test_masters_pass_checkit_tiff_with_the_project_config(converted):
    for ctx, item, _ in converted.values():
        for m in item.masters:
            proc = checkit([ctx.staging / m.bagpath], CONFIG)
            lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "(EE)" in line]
            errors = [line for line in lines if "Found 1 errors" not in line and "not valid" not in line
                      and IPTC_AS_LONG not in line]
            assert not errors, (m.bagpath, errors)
            assert (len(lines) == 0) == (item.relpath != "jpg/meta.jpg"), lines


def test_masters_read_by_tiffinfo_without_complaint(converted):
    tiffinfo = tool("tiffinfo")
    for (compression, name), (ctx, item, _) in converted.items():
        for m in item.masters:
            proc = subprocess.run([tiffinfo, "-D", str(ctx.staging / m.bagpath)], capture_output=True, text=True)
            assert proc.returncode == 0 and not proc.stderr.strip(), (name, proc.stderr)
            assert "Orientation: row 0 top, col 0 lhs" in proc.stdout


# exiftool -validate warnings that follow from the policy, not from a defect of the master
POLICY_WARNINGS = ("tag 0x0103 Compression", "tag 0x0106 PhotometricInterpretation")
FIXTURE_WARNINGS = ("Missing required TIFF ExifIFD tag", "Missing required TIFF GPS tag", "xpacket wrapper")


def exif_json(path: Path) -> dict:
    proc = subprocess.run([tool("exiftool"), "-j", "-a", "-G1", str(path)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)[0]


def exif_warnings(path: Path) -> list[str]:
    proc = subprocess.run([tool("exiftool"), "-validate", "-warning", "-a", "-s3", str(path)],
                          capture_output=True, text=True, check=True)
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    return [] if lines == ["OK"] else lines[1:]   # first line: "OK" or "N Warnings"


def test_exiftool_validates_masters(converted):
    for key in (("none", "rgb.png"), ("deflate", "rgba16.png"), ("none", "bilevel.tif"), ("none", "cmyk.jpg"),
                ("none", "meta.jpg")):
        ctx, item, _ = converted[key]
        warnings = exif_warnings(ctx.staging / item.masters[0].bagpath)
        # the fixture's EXIF and XMP are minimal on purpose: what they lack is not the master's fault
        unexpected = [w for w in warnings if not any(p in w for p in POLICY_WARNINGS + FIXTURE_WARNINGS)]
        assert not unexpected, (key, warnings)


def test_exif_gps_xmp_iptc_and_descriptive_tags_carried(converted):
    ctx, item, _ = converted["none", "meta.jpg"]
    info = exif_json(ctx.staging / item.masters[0].bagpath)
    assert info["IFD0:Make"] == "TestCam" and info["IFD0:Model"] == "Model 1"
    assert info["ExifIFD:DateTimeOriginal"] == "1992:02:26 10:00:00"
    assert info["GPS:GPSLatitudeRef"] == "North"
    assert info["XMP-dc:Title"] == "Test title"
    assert info["IPTC:Caption-Abstract"] == "Test caption"
    tech = item.masters[0].technical
    assert {"XMP", "IPTC-IIM", "EXIF IFD (1 tags)", "GPS IFD (4 tags)"} <= set(tech["metadata_carried"])
    assert (tech["x_resolution"], tech["resolution_unit"], tech["resolution_assumed"]) == (72.0, "inch", False)


def test_big_endian_tiff_metadata_carried_little_endian(converted):
    ctx, item, _ = converted["none", "bigendian.tif"]
    with tifffile.TiffFile(ctx.staging / item.masters[0].bagpath) as tf:
        tags = tf.pages[0].tags
        assert tags["Make"].value == "BigEndianCam"
        assert tags["ImageDescription"].value == "A description"
        assert tags["InterColorProfile"].value == srgb_icc()


@pytest.mark.parametrize("name", ["icc.jpg", "rgba.png"])
def test_icc_profile_embedded_unchanged(converted, name):
    ctx, item, data = converted["none", name]
    with tifffile.TiffFile(ctx.staging / item.masters[0].bagpath) as tf:
        assert tf.pages[0].tags["InterColorProfile"].value == srgb_icc()
    assert item.masters[0].technical["icc_profile"]


@pytest.mark.parametrize("name,bits,samples,photometric", [
    ("rgb16.png", 16, 3, "RGB"), ("rgba16.png", 16, 4, "RGB"), ("rgb16.tif", 16, 3, "RGB"),
    ("grey16.png", 16, 1, "min-is-black"), ("white16.tif", 16, 1, "min-is-white"), ("grey16.tif", 16, 1, "min-is-black"), ("bilevel.png", 1, 1, "min-is-black"),
    ("bilevel.tif", 1, 1, "min-is-black"), ("cmyk.jpg", 8, 4, "separated (CMYK)"), ("palette.png", 8, 4, "RGB"),
    ("palette.gif", 8, 4, "RGB"), ("la.png", 8, 2, "min-is-black")])
def test_bit_depth_and_colour_model_kept(converted, name, bits, samples, photometric):
    ctx, item, _ = converted["none", name]
    tech = item.masters[0].technical
    assert (tech["bits_per_sample"], tech["samples_per_pixel"], tech["photometric"]) == (bits, samples, photometric)


@pytest.mark.parametrize("name", ["rgba.png", "la.png", "palette.png", "rgba16.png", "rgba.webp"])
def test_alpha_is_unassociated(converted, name):
    ctx, item, _ = converted["none", name]
    with tifffile.TiffFile(ctx.staging / item.masters[0].bagpath) as tf:
        assert tuple(tf.pages[0].extrasamples) == (2,)


def test_palette_transparency_kept_as_alpha(converted):
    ctx, item, _ = converted["none", "palette.png"]
    alpha = tifffile.imread(ctx.staging / item.masters[0].bagpath)[..., 3]
    assert set(np.unique(alpha)) == {0, 255}
    assert "palette expanded to RGBA" in item.events[1].detail


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_baked_and_recorded(tmp_path, orientation):
    ctx = make_ctx(tmp_path)
    data = jpeg(orientation)
    item = convert_item(put(ctx, "o.jpg", data), ctx)
    got = tifffile.imread(ctx.staging / item.masters[0].bagpath)
    np.testing.assert_array_equal(got, expected_frames(data)[0])
    assert got.shape[:2] == ((48, 64) if orientation <= 4 else (64, 48))
    applied = item.masters[0].technical["orientation_applied"]
    assert applied["exif_orientation"] == orientation
    assert (applied["transform"] == "none") == (orientation == 1)


def test_default_resolution_written_and_recorded_as_assumed(converted):
    ctx, item, _ = converted["none", "grey.png"]
    tech = item.masters[0].technical
    assert (tech["x_resolution"], tech["resolution_unit"], tech["resolution_assumed"]) == (300.0, "inch", True)
    assert "convert.resolution_assumed" in [p.code for p in item.problems]
    assert item.events[1].extra["resolution_assumed"] is True
    ctx, item, _ = converted["none", "rgb.png"]   # pHYs 150 dpi, kept exactly in pixels per cm
    assert item.masters[0].technical["resolution_assumed"] is False


def test_convert_metadata_dropped_is_listed(tmp_path):
    ctx = make_ctx(tmp_path)
    item = convert_item(put(ctx, "t.png", png("text")), ctx)
    assert item.masters
    dropped = [p for p in item.problems if p.code == "convert.metadata_dropped"]
    assert dropped and "PNG text chunk 'Author'" in dropped[0].reason
    assert "PNG text chunk 'Author'" in item.events[1].extra["metadata_dropped"]
    assert not errors_in(item.problems)


def test_same_input_gives_byte_identical_master(tmp_path):
    data = jpeg(6, meta=True)
    masters = []
    for run in ("a", "b"):
        ctx = make_ctx(tmp_path / run)
        item = convert_item(put(ctx, "x.jpg", data), ctx)
        masters.append((ctx.staging / item.masters[0].bagpath).read_bytes())
    assert masters[0] == masters[1]


def test_rerun_reuses_proven_master_and_reconverts_a_damaged_one(tmp_path):
    ctx = make_ctx(tmp_path)
    item = put(ctx, "g.gif", gif(True))
    first = convert_item(item, ctx)
    assert "reused" not in first.events[1].detail
    record = json.loads((proofs_dir(ctx) / f"{item.id}.json").read_text())
    assert record["original_sha256"] == first.original.checksums["sha256"]
    again = convert_item(item, ctx)
    assert "reused the master" in again.events[1].detail
    assert again.masters == first.masters and again.original == first.original
    damaged = ctx.staging / first.masters[1].bagpath
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\x01")
    third = convert_item(item, ctx)
    assert "reused" not in third.events[1].detail
    assert third.masters[1].checksums == first.masters[1].checksums
    other = make_ctx(tmp_path, compression="deflate")   # other settings: never reuse
    assert "reused" not in convert_item(item, other).events[1].detail


def edit_record(ctx: Context, item: Item, edit, reseal: bool = False) -> None:
    path = proofs_dir(ctx) / f"{item.id}.json"
    rec = json.loads(path.read_text())
    edit(rec)
    if reseal:      # the record's own digest made to match again: only the files' digests can tell
        rec["record_sha256"] = record_digest(rec)
    path.write_text(json.dumps(rec))


RECORD_EDITS = {
    "master-sha512": lambda r: r["masters"][0]["checksums"].update(sha512="0" * 128),
    "original-sha512": lambda r: r["original"]["checksums"].update(sha512="0" * 128),
    "event-text": lambda r: r["events"][1].update(outcome_detail="pixel proof passed, trust me"),
    "technical-width": lambda r: r["masters"][0]["technical"].update(width=4096),
}


@pytest.mark.parametrize("edit", sorted(RECORD_EDITS))
def test_rerun_converts_again_when_the_proof_record_was_damaged(tmp_path, edit):
    ctx = make_ctx(tmp_path)
    item = put(ctx, "p.png", png("RGB"))
    first = convert_item(item, ctx)
    edit_record(ctx, item, RECORD_EDITS[edit])
    again = convert_item(item, ctx)
    assert "reused" not in again.events[1].detail
    assert again.masters == first.masters and again.original == first.original
    assert again.events == first.events
    assert "reused the master" in convert_item(item, ctx).events[1].detail   # a sound record again


@pytest.mark.parametrize("edit", ["master-sha512", "original-sha512", "no-sha512"])
def test_rerun_checks_every_algorithm_of_the_run_not_only_sha256(tmp_path, edit):
    ctx = make_ctx(tmp_path)
    item = put(ctx, "p.png", png("RGB"))
    first = convert_item(item, ctx)
    edits = {**RECORD_EDITS, "no-sha512": lambda r: r["masters"][0]["checksums"].pop("sha512")}
    edit_record(ctx, item, edits[edit], reseal=True)
    again = convert_item(item, ctx)
    assert "reused" not in again.events[1].detail
    assert again.masters == first.masters and again.original == first.original


def test_rerun_reuses_when_the_run_has_no_sha256(tmp_path):
    ctx = make_ctx(tmp_path, algorithms=("md5",))
    item = put(ctx, "p.png", png("RGB"))
    first = convert_item(item, ctx)
    again = convert_item(item, ctx)
    assert "reused the master" in again.events[1].detail and "(its md5 re-checked" in again.events[1].detail
    assert again.masters == first.masters and set(again.original.checksums) == {"md5"}


def bad_inputs() -> dict[str, tuple[str, bytes]]:
    good = jpeg()
    huge = io.BytesIO()
    tifffile.imwrite(huge, np.zeros((8, 8), np.uint8), metadata=None)
    raw = bytearray(huge.getvalue())
    # rewrite ImageWidth and ImageLength to 100000 x 100000 (a 10-gigapixel claim in a tiny file)
    with tifffile.TiffFile(io.BytesIO(bytes(raw))) as tf:
        for code in (256, 257):
            tag = tf.pages[0].tags[code]
            struct.pack_into("<I" if tag.dtype == 4 else "<H", raw, tag.valueoffset, 65000)
    corrupt = bytearray(good)
    corrupt[len(good) // 2:len(good) // 2 + 64] = b"\xff" * 64
    return {
        "convert.empty": ("empty.jpg", b""),
        "convert.truncated": ("truncated.jpg", good[: len(good) * 2 // 3]),
        "convert.undecodable": ("corrupt.jpg", bytes(corrupt)),
        "convert.unsupported": ("doc.pdf", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"),
        "convert.unsupported-svg": ("drawing.svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'),
        "convert.pixel_limit": ("huge.tif", bytes(raw)),
    }


@pytest.mark.parametrize("code", sorted(bad_inputs()))
def test_bad_input_is_a_problem_and_leaves_no_file(tmp_path, code):
    name, data = bad_inputs()[code]
    ctx = make_ctx(tmp_path)
    good = convert_item(put(ctx, "good.png", png("RGB")), ctx)
    item = convert_item(put(ctx, name, data), ctx)
    errors = errors_in(item.problems)
    assert [p.code for p in errors] == [code.split("-")[0]], item.problems
    assert errors[0].path == name and "\n" not in errors[0].reason
    assert item.original is None and item.masters == ()
    assert staged_files(ctx) == sorted([good.original.bagpath, good.masters[0].bagpath])


def test_convert_pixel_limit_from_settings(tmp_path):
    ctx = make_ctx(tmp_path, pixel_limit=1000)
    item = convert_item(put(ctx, "a.png", png("RGB")), ctx)
    assert [p.code for p in item.problems] == ["convert.pixel_limit"]
    assert staged_files(ctx) == []


def test_convert_mode_unsupported_sample_format(tmp_path):
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((48, 64), np.float32), metadata=None)
    ctx = make_ctx(tmp_path)
    item = convert_item(put(ctx, "float.tif", buf.getvalue()), ctx)
    assert [p.code for p in errors_in(item.problems)] == ["convert.mode"]
    assert staged_files(ctx) == []


def test_convert_read_missing_original(tmp_path):
    ctx = make_ctx(tmp_path)
    item = convert_item(Item(id="x", relpath="gone.jpg", record=None), ctx)
    assert [p.code for p in item.problems] == ["convert.read"]


def test_stage_runs_in_the_executor_process_pool(tmp_path):
    from pipeline.executor import run_stage
    from pipeline.model import Package
    ctx = make_ctx(tmp_path, workers=2)
    items = tuple(put(ctx, f"{i}.png", png("RGB")) for i in range(3)) + (put(ctx, "bad.jpg", b"xx"),)
    pkg = run_stage(STAGE, [Package(name="coll", source=ctx.ingest, collection=None, items=items)], ctx)
    assert [bool(i.masters) for i in pkg.items] == [True, True, True, False]
    assert [p.code for p in errors_in(pkg.all_problems)] == ["convert.unsupported"]


def test_convert_name_clash_two_originals_one_master_name(tmp_path):
    ctx = make_ctx(tmp_path)
    first = convert_item(put(ctx, "a.png", png("RGB")), ctx)
    second = convert_item(put(ctx, "a.jpg", jpeg()), ctx)
    assert first.masters and not second.masters
    assert [p.code for p in errors_in(second.problems)] == ["convert.name_clash"]
    assert "already the master of 'a.png'" in errors_in(second.problems)[0].reason    # named, not guessed
    assert staged_files(ctx) == sorted([first.original.bagpath, first.masters[0].bagpath])


def test_convert_name_clash_not_raised_by_the_claim_of_an_original_gone_since(tmp_path):
    """a.jpg converted by an unfinished run, then replaced by a.png: a.jpg's claim on a.tif is stale."""
    ctx = make_ctx(tmp_path)
    convert_item(put(ctx, "a.jpg", jpeg()), ctx)
    (ctx.ingest / "a.jpg").unlink()
    item = convert_item(put(ctx, "a.png", png("RGB")), ctx)
    assert item.masters and not errors_in(item.problems), item.problems
    # a.jpg's staged copy stays for the package stage to remove and report (package.stale)
    assert staged_files(ctx) == sorted([item.original.bagpath, item.masters[0].bagpath, "data/objects/originals/a.jpg"])
    assert [p.code for p in errors_in(convert_item(put(ctx, "a.gif", gif()), ctx).problems)] == [
        "convert.name_clash"]   # a.png's claim is live


def test_convert_library_message_reported_not_leaked(tmp_path, capfd):
    """tifffile complains (through logging, to stderr) about a tag pointing outside the file."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((48, 64, 3), np.uint16), photometric="rgb", metadata=None,
                     extratags=[(65000, "s", 0, "x" * 40, True)])
    raw = bytearray(buf.getvalue())
    with tifffile.TiffFile(io.BytesIO(bytes(raw))) as tf:
        struct.pack_into("<I", raw, tf.pages[0].tags[65000].offset + 8, 10**6)
    ctx = make_ctx(tmp_path)
    item = convert_item(put(ctx, "odd.tif", bytes(raw)), ctx)
    assert item.masters and not errors_in(item.problems)
    messages = [p for p in item.problems if p.code == "convert.library_message"]
    assert len(messages) == 1 and "invalid value offset" in messages[0].reason
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_rerun_after_a_crash_before_the_record_replaces_the_masters(tmp_path):
    """A crash after the master was linked but before the proof record: no false name clash."""
    ctx = make_ctx(tmp_path)
    item = put(ctx, "c.png", png("RGB"))
    first = convert_item(item, ctx)
    (proofs_dir(ctx) / f"{item.id}.json").unlink()
    again = convert_item(item, ctx)
    assert not errors_in(again.problems) and "reused" not in again.events[1].detail
    assert again.masters[0].checksums == first.masters[0].checksums


def test_original_replaced_by_a_broken_file_leaves_nothing_of_the_old_one(tmp_path):
    ctx = make_ctx(tmp_path)
    item = put(ctx, "c.png", png("RGB"))
    assert convert_item(item, ctx).masters
    (ctx.ingest / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    again = convert_item(item, ctx)
    assert [p.code for p in errors_in(again.problems)] == ["convert.undecodable"]
    assert staged_files(ctx) == []


def test_xmp_orientation_set_to_1_with_the_pixels(tmp_path):
    from PIL import Image
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    im = Image.fromarray(np.zeros((48, 64, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif, xmp=xmp)
    ctx = make_ctx(tmp_path)
    item = convert_item(put(ctx, "x.jpg", buf.getvalue()), ctx)
    with tifffile.TiffFile(ctx.staging / item.masters[0].bagpath) as tf:
        written = bytes(tf.pages[0].tags["XMP"].value)
    assert b'tiff:Orientation="1"' in written and b'tiff:Orientation="6"' not in written


def test_damaged_exif_is_dropped_and_listed_not_fatal(tmp_path):
    from PIL import Image
    exif = b"Exif\0\0II*\0\x08\0\0\0\x01\0" + struct.pack("<HHII", 0x8769, 4, 1, 0x7FFFFF00) + b"\0\0\0\0"
    buf = io.BytesIO()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(buf, "JPEG", exif=exif)
    ctx = make_ctx(tmp_path)
    item = convert_item(put(ctx, "x.jpg", buf.getvalue()), ctx)
    assert item.masters and not errors_in(item.problems)
    dropped = [p.reason for p in item.problems if p.code == "convert.metadata_dropped"]
    assert dropped and "EXIF (damaged" in dropped[0]


FUZZ_SOURCES = {name: SOURCES[name]() for name in ("rgb.jpg", "palette.png", "rgb16.tif", "palette.gif", "rgba.webp")}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(FUZZ_SOURCES)),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_damaged_files_never_raise_and_leave_nothing_when_rejected(tmp_path, name, edits, cut):
    data = bytearray(FUZZ_SOURCES[name])
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[:int(cut * len(data))]
    ctx = make_ctx(tmp_path / hashlib.sha256(bytes(data)).hexdigest()[:16])
    item = convert_item(put(ctx, name, bytes(data)), ctx)
    errors = errors_in(item.problems)
    assert all(p.code.startswith("convert.") and "\n" not in p.reason for p in item.problems)
    if errors:
        assert staged_files(ctx) == [] and item.masters == ()
    else:
        assert len(staged_files(ctx)) == 1 + len(item.masters)


def test_jpeg_with_trailing_data_after_the_image_converts(tmp_path):
    """Trailing bytes holding an SOS pair (as in motion photos) must not look like truncation."""
    data = jpeg() + b"\0trailer\xff\xda\x00\x08more"
    ctx = make_ctx(tmp_path)
    item = convert_item(put(ctx, "motion.jpg", data), ctx)
    assert item.masters and not errors_in(item.problems)
    np.testing.assert_array_equal(tifffile.imread(ctx.staging / item.masters[0].bagpath), expected_frames(jpeg())[0])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["8-bit (Pillow)", "16-bit (tifffile)"])
def test_convert_pixel_limit_counts_every_page(tmp_path, dtype):
    """A small first page must not let a large later page through the pixel limit."""
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tw:
        tw.write(np.zeros((10, 10), dtype), photometric="minisblack")
        tw.write(np.zeros((1200, 1000), dtype), photometric="minisblack")
    ctx = make_ctx(tmp_path, pixel_limit=1_000_000)
    item = convert_item(put(ctx, "pages.tif", buf.getvalue()), ctx)
    assert [p.code for p in item.problems] == ["convert.pixel_limit"]
    assert staged_files(ctx) == []


def _lab_icc() -> bytes:
    from PIL import ImageCms
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["8-bit (Pillow)", "16-bit (tifffile)"])
def test_each_page_of_a_multipage_tiff_carries_its_own_metadata(tmp_path, dtype):
    """Every master of a two-page TIFF has its own page's description, software, date, resolution,
    ICC profile and orientation (not page 1's for all), and the event lists what each carried."""
    pages = [({"description": "page 1: recto", "software": "scanA", "datetime": "2001:01:01 10:00:00",
               "resolution": (300, 300), "iccprofile": srgb_icc()}, []),
             ({"description": "page 2: verso, inscription", "software": "scanB", "datetime": "2002:02:02 20:00:00",
               "resolution": (600, 400), "iccprofile": _lab_icc()},
              [(274, "H", 1, 6, False), (315, "s", 0, "Verso Scanner", False)])]
    pixels = [np.arange(30 * 40 * 3, dtype=dtype).reshape(30, 40, 3) * (i + 1) for i in range(2)]
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tw:
        for arr, (tags, extra) in zip(pixels, pages):
            tw.write(arr, photometric="rgb", resolutionunit="INCH", metadata=None, extratags=extra, **tags)
    ctx = make_ctx(tmp_path)
    item = convert_item(put(ctx, "a.tif", buf.getvalue()), ctx)
    assert len(item.masters) == 2 and not errors_in(item.problems)
    for master, arr, (tags, _), turned in zip(item.masters, pixels, pages, (False, True)):
        with tifffile.TiffFile(ctx.staging / master.bagpath) as tf:
            t = tf.pages[0].tags
            assert t["ImageDescription"].value == tags["description"]
            assert t["Software"].value == tags["software"]
            assert t["DateTime"].value == tags["datetime"]
            assert t["InterColorProfile"].value == tags["iccprofile"]
            assert (t["XResolution"].value, t["YResolution"].value) == tuple((r, 1) for r in tags["resolution"])
            assert t["Orientation"].value == 1
            np.testing.assert_array_equal(tf.pages[0].asarray(), np.rot90(arr, -1) if turned else arr)
        assert master.technical["orientation_applied"]["exif_orientation"] == (6 if turned else 1)
    assert "Artist" not in str(item.masters[0].technical["metadata_carried"])
    assert "TIFF tag 315 (Artist)" in item.masters[1].technical["metadata_carried"]
    event = item.events[1].extra
    assert event["metadata_carried"] == [m.technical["metadata_carried"] for m in item.masters]
    assert event["orientation_applied"] == [m.technical["orientation_applied"] for m in item.masters]
    assert "frame 1: 300.0x300.0 per inch; frame 2: 600.0x400.0 per inch" in item.events[1].detail
    assert "frame 1: no palette or orientation step; frame 2: " in item.events[1].detail     # page 2 was turned


@pytest.mark.parametrize("orientation,turn", [(3, lambda a: a[::-1, ::-1]), (5, lambda a: a.swapaxes(0, 1)),
                                              (6, lambda a: np.rot90(a, -1))], ids=["3", "5", "6"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["8-bit (Pillow)", "16-bit (tifffile)"])
def test_tiff_orientation_is_baked_in_once(tmp_path, dtype, orientation, turn):
    """Pillow's TIFF reader turns the pixels itself: the master must not be turned a second time."""
    arr = np.arange(30 * 40 * 3, dtype=dtype).reshape(30, 40, 3)
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, photometric="rgb", metadata=None, extratags=[(274, "H", 1, orientation, False)])
    ctx = make_ctx(tmp_path)
    item = convert_item(put(ctx, "o.tif", buf.getvalue()), ctx)
    np.testing.assert_array_equal(tifffile.imread(ctx.staging / item.masters[0].bagpath), turn(arr))


def test_a_damaged_value_on_page_2_costs_page_1_nothing(tmp_path):
    """Page 2 holds a private tag whose value points outside the file: page 2's metadata is
    damaged (dropped, said so), page 1's master still carries its own description.  Finding the
    pages once read every value of every page, so page 1 lost its metadata too."""
    import struct
    from pipeline.exif import page_offsets
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tw:
        tw.write(np.zeros((8, 8, 3), np.uint8), photometric="rgb", metadata=None, description="page 1")
        tw.write(np.ones((8, 8, 3), np.uint8), photometric="rgb", metadata=None, description="page 2",
                 extratags=[(65000, "B", 64, bytes(64), False)])
    data = bytearray(buf.getvalue())
    second = page_offsets(bytes(data), 2)[1]
    (n,) = struct.unpack_from("<H", data, second)
    for i in range(n):
        entry = second + 2 + 12 * i
        if struct.unpack_from("<H", data, entry)[0] == 65000:
            struct.pack_into("<I", data, entry + 8, len(data) + 1000)     # its value: past the end
    ctx = make_ctx(tmp_path)
    item = convert_item(put(ctx, "p.tif", bytes(data)), ctx)
    assert len(item.masters) == 2 and not errors_in(item.problems)
    with tifffile.TiffFile(ctx.staging / item.masters[0].bagpath) as tf:
        assert tf.pages[0].tags["ImageDescription"].value == "page 1"
    assert "damaged" in str(item.masters[1].technical["metadata_dropped"])
