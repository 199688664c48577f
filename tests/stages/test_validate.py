"""The validate stage: the broken corpus (one case per code), images by content, records, events."""
from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st
from PIL import Image, ImageCms

from cases.build import HERE as CASES, RUNTIME, add_runtime_defect, all_codes, jpeg
from pipeline import validate_collection
from pipeline.errors import CODES, ERROR, errors_in
from pipeline.model import Item, Record
from pipeline.stage import Context, Settings
from pipeline.stages.validate import (XML_ILLEGAL, captured, date_bounds, date_problems,
                                      place_spellings, twins, validate_item)

ONE = Settings(workers=1)
RECORD = {"identifier": "a", "date": "1992-02", "place": ["Azerbaijan", "Aghdam"]}


def copy_case(code: str, dest: Path) -> Path:
    target = dest / code
    shutil.copytree(CASES / code, target, symlinks=True)
    if code in RUNTIME:
        add_runtime_defect(code, target)
    return target


def codes_of(package) -> set[str]:
    return {p.code for p in package.all_problems}


def test_every_code_of_discover_and_validate_has_a_case():
    assert all_codes(), "no codes registered"
    missing = [code for code in all_codes() if not (CASES / code).is_dir()]
    assert not missing


@pytest.mark.parametrize("code", all_codes())
def test_case_raises_its_code(code, tmp_path):
    package = validate_collection(copy_case(code, tmp_path), ONE)
    assert code in codes_of(package), [p.render() for p in package.all_problems]
    if CODES[code].severity != ERROR:
        assert not errors_in(package.all_problems), "a warning case must not block"


def ctx_for(folder: Path, **settings) -> Context:
    return Context.create(Settings(workers=1, **settings), folder, folder.parent / "out", folder.name, "coll")


def check(folder: Path, name: str, data: bytes, record: dict | None = None, **settings) -> Item:
    (folder / name).write_bytes(data)
    item = Item(id="x", relpath=name, record=Record(name + ".json", record or RECORD))
    return validate_item(item, ctx_for(folder, **settings))


def saved(im: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def picture(mode: str) -> Image.Image:
    im = Image.new("RGB", (40, 30), (200, 100, 50))
    im.putpixel((3, 3), (0, 255, 0))
    if mode == "P":
        return im.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    return im.convert(mode)


@pytest.mark.parametrize("mode,fmt,mime,pronom", [
    ("RGB", "JPEG", "image/jpeg", "fmt/43"),
    ("L", "JPEG", "image/jpeg", "fmt/43"),
    ("CMYK", "JPEG", "image/jpeg", "fmt/41"),      # Adobe APP14, no JFIF: raw JPEG stream
    ("RGBA", "PNG", "image/png", "fmt/11"),
    ("P", "GIF", "image/gif", "fmt/4"),
    ("RGB", "TIFF", "image/tiff", "fmt/353"),
    ("RGB", "WEBP", "image/webp", "fmt/567"),
])
def test_images_are_identified_by_signature_and_decoded(tmp_path, mode, fmt, mime, pronom):
    options = {"lossless": True} if fmt == "WEBP" else {"transparency": 0} if fmt == "GIF" else {}
    item = check(tmp_path, "photo.bin", saved(picture(mode), fmt, **options))
    assert item.image["mimetype"] == mime and item.image["pronom"] == pronom
    assert (item.image["width"], item.image["height"], item.image["frames"]) == (40, 30, 1)
    assert item.image["samples"] == len(picture(mode).getbands())
    # the extension (.bin) says nothing: only a warning
    assert [p.code for p in item.problems] == ["image.extension"]


def test_sixteen_bit_grey_and_colour_keep_their_depth(tmp_path):
    grey = (np.arange(30 * 40).reshape(30, 40) * 50).astype("uint16")
    colour = (np.arange(30 * 40 * 3).reshape(30, 40, 3) * 17).astype("uint16")
    out = io.BytesIO()
    tifffile.imwrite(out, grey, metadata=None)
    g = check(tmp_path, "g.tif", out.getvalue())
    out = io.BytesIO()
    tifffile.imwrite(out, colour, photometric="rgb", metadata=None)
    c = check(tmp_path, "c.tif", out.getvalue())
    import imagecodecs
    p = check(tmp_path, "c.png", imagecodecs.png_encode(colour))
    assert (g.image["mode"], g.image["bits_per_sample"], g.image["samples"]) == ("I;16", 16, 1)
    for item in (c, p):
        assert (item.image["mode"], item.image["bits_per_sample"], item.image["samples"]) == ("RGB;16", 16, 3)
        assert not item.problems
        assert any(a.name in ("tifffile", "imagecodecs") for a, _ in item.events[1].agents)


def test_exif_orientation_datetime_and_icc_are_read(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = "1992:02:27 12:00:00"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    item = check(tmp_path, "o.jpg", saved(picture("RGB"), "JPEG", exif=exif, icc_profile=icc))
    assert item.image["exif_orientation"] == 6
    assert item.image["exif_datetime_original"] == "1992-02-27T12:00:00"
    assert item.image["has_icc"] and "sRGB" in item.image["icc_description"]
    assert not item.problems


def test_pixel_limit_is_configurable(tmp_path):
    data = saved(picture("RGB"), "PNG")
    assert not check(tmp_path, "a.png", data).problems
    small = check(tmp_path, "a.png", data, pixel_limit=1000)
    assert [p.code for p in small.problems] == ["image.too_large"]
    assert "1200" in small.problems[0].reason


def test_events_are_deterministic_and_name_their_agents(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "700000000")
    good = check(tmp_path, "a.jpg", jpeg())
    again = check(tmp_path, "a.jpg", jpeg())
    assert good.events == again.events
    ident, valid = good.events
    assert (ident.type, ident.outcome, valid.type, valid.outcome) == (
        "format identification", "success", "validation", "success")
    assert ident.datetime == "1992-03-07T20:26:40Z"
    ctx = ctx_for(tmp_path)
    assert ident.id == ctx.make_id("event", "format identification", "a.jpg")
    assert valid.objects == ((ctx.make_id("original", "a.jpg"), "source"),)
    assert {a.name for a, _ in valid.agents} >= {"preservation-pipeline", "Pillow", "jsonschema"}
    broken = check(tmp_path, "a.jpg", jpeg()[:100])
    assert broken.events[1].outcome == "failure"
    assert "image.truncated" in broken.events[1].outcome_detail


def test_schema_reports_every_error_with_its_pointer(tmp_path):
    item = check(tmp_path, "a.jpg", jpeg(), {"identifier": "a b", "place": [], "caption": 3, "extra": 1})
    found = {(p.code, p.field) for p in item.problems}
    assert {("record.schema", "/date"), ("record.schema", "/identifier"), ("record.schema", "/place"),
            ("record.schema", "/caption"), ("record.schema", "")} <= found


def test_csv_records_name_row_and_column(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg())
    item = Item(id="x", relpath="a.jpg", record=Record("metadata.csv", {"identifier": "a", "place": ["A"],
                                                                       "date": "1992-13"}, row=4))
    problems = validate_item(item, ctx_for(tmp_path)).problems
    assert [(p.path, p.field) for p in problems] == [("metadata.csv", "row 4, column dc.date")]


def test_caption_date_far_from_exif_is_a_warning_near_is_not(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "1992:03:10 09:00:00"
    data = saved(picture("RGB"), "JPEG", exif=exif)
    assert not check(tmp_path, "a.jpg", data).problems          # within a month of February 1992
    far = check(tmp_path, "a.jpg", data, RECORD | {"date": "1990"})
    assert [p.code for p in far.problems] == ["date.exif_mismatch"]


@pytest.mark.parametrize("value,bounds", [
    ("1992", ("1992-01-01", "1992-12-31")),
    ("1992-02", ("1992-02-01", "1992-02-29")),
    ("1992-02-26", ("1992-02-26", "1992-02-26")),
    ("1992-02/1992-03", ("1992-02-01", "1992-03-31")),
    ("199X", ("1990-01-01", "1999-12-31")),
    ("1992?", ("1991-01-01", "1993-12-31")),
    ("1992-12", ("1992-12-01", "1992-12-31")),
    ("../1992", None),
    ("0000", None),
])
def test_edtf_bounds(value, bounds):
    got = date_bounds(value)
    assert (None if got is None else tuple(d.isoformat() for d in got)) == bounds


@pytest.mark.parametrize("value", ["1992-02-30", "1993-01/1992-01", "1992-02-29T25:00:00"])
def test_impossible_dates_are_refused(value):
    with pytest.raises(ValueError):
        date_bounds(value)


def test_decoder_messages_on_stderr_are_captured_not_shown(capfd):
    lines: list[str] = []
    with captured(lines):
        os.write(2, b"TIFFReadDirectory: Warning, unknown field\n")
    assert lines == ["TIFFReadDirectory: Warning, unknown field"]
    assert "TIFFReadDirectory" not in capfd.readouterr().err


def test_twins_and_place_spellings():
    found = twins(["caf\u00e9.jpg", "cafe\u0301.jpg", "A/x.jpg", "a/y.jpg", "b.jpg"])
    assert [(p.path, "normalization" in p.reason) for p in found if p.path == "a"] == [("a", False)]
    assert [p.path in ("caf\u00e9.jpg", "cafe\u0301.jpg") and "normalization" in p.reason
            for p in found if p.path != "a"] == [True]
    items = tuple(Item(id=str(i), relpath=f"{i}.jpg", record=Record(f"{i}.json", {"place": ["Az", place]}))
                  for i, place in enumerate(["Aghdam", "Aghdam", "Road to Agdam", "Shusha"]))
    spelled = place_spellings(item.record for item in items)
    assert [(p.path, p.field) for p in spelled] == [("2.json", "/place/1")]
    assert "'Aghdam' in 2" in spelled[0].reason


@pytest.fixture(scope="module")
def one_image(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("caption")
    (folder / "a.jpg").write_bytes(jpeg())
    return folder


RTL = st.text(st.characters(min_codepoint=0x0590, max_codepoint=0x06FF), min_size=1, max_size=50)
CONTROL = st.sampled_from([chr(c) for c in range(32)] + ["\ufffe", "\uffff", "\ud800", "\u200f", "\u202e"])
CAPTIONS = st.one_of(
    st.text(min_size=1, max_size=200),
    st.lists(st.one_of(RTL, CONTROL, st.text(max_size=20)), min_size=1, max_size=20).map("".join),
    st.tuples(RTL, st.integers(1000, 5000)).map(lambda t: t[0] * t[1]),
).filter(lambda s: 0 < len(s) <= 100_000)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(caption=CAPTIONS)
def test_any_caption_is_kept_or_refused_for_xml_only(one_image, caption):
    item = Item(id="x", relpath="a.jpg", record=Record("a.json", RECORD | {"caption": caption}))
    problems = validate_item(item, ctx_for(one_image)).problems
    errors = [p.code for p in errors_in(problems)]
    assert errors == (["text.control"] if XML_ILLEGAL.search(caption) else [])
    for p in problems:
        assert "\n" not in p.render() and len(p.render()) < 600


def test_sample_validates_with_only_the_expected_warnings(sample_collection):
    package = validate_collection(sample_collection, ONE)
    assert len(package.items) == 20
    assert not errors_in(package.all_problems), [p.render() for p in package.all_problems]
    assert sorted(p.code for p in package.all_problems) == ["caption.mojibake"] * 3 + ["place.spelling"]
    modes = {item.image["mode"] for item in package.items}
    assert {"RGB", "L", "CMYK", "RGBA", "I;16", "RGB;16"} <= modes
    assert {item.image["exif_orientation"] for item in package.items} >= {3, 6, 8}
    assert any(item.image["has_icc"] for item in package.items)
    json.dumps([dict(item.image) for item in package.items])  # plain data, ready for a report


def _formats() -> dict[str, bytes]:
    import imagecodecs
    grey = io.BytesIO()
    tifffile.imwrite(grey, (np.arange(30 * 40).reshape(30, 40) * 50).astype("uint16"), metadata=None)
    deep = (np.arange(30 * 40 * 3).reshape(30, 40, 3) * 17).astype("uint16")
    return {"a.jpg": saved(picture("RGB"), "JPEG"), "a.png": saved(picture("RGBA"), "PNG"),
            "a.gif": saved(picture("P"), "GIF"), "a.tif": saved(picture("RGB"), "TIFF", compression="tiff_deflate"),
            "g.tif": grey.getvalue(), "d.png": imagecodecs.png_encode(deep),
            "a.webp": saved(picture("RGB"), "WEBP", lossless=True)}


FORMATS = _formats()


@hsettings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(FORMATS)), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4))
def test_damaged_images_are_reported_never_raised(one_image, name, cut, flips):
    data = bytearray(FORMATS[name])
    for where, mask in flips:
        data[int(where * (len(data) - 1))] ^= mask
    data = bytes(data[: max(int(cut * len(data)), 1) if cut < 0.95 else len(data)])
    item = check(one_image, name, data)
    assert item.image.keys() >= {"mimetype", "width", "height", "mode", "bits_per_sample", "frames"}
    for p in item.problems:
        assert p.code.startswith(("image.", "date.")), p.render()


@hsettings(max_examples=150, deadline=None)
@given(value=st.from_regex(json.loads((Path(__file__).parents[2] / "schemas" / "item.schema.json").read_text())
                           ["properties"]["date"]["pattern"], fullmatch=True))
@example("0001")            # the first and last days a date can hold: the EXIF tolerance
@example("9999-12-31")      # must not move them out of range (OverflowError once)
def test_any_date_of_the_schema_form_is_judged_without_crashing(value):
    record = Record("a.json", RECORD | {"date": value})
    for p in date_problems(record, "1992-02-27T12:00:00"):
        assert p.code in ("record.date", "date.exif_mismatch"), p.render()


def _exif_jpeg_head(version: bytes) -> bytes:
    import struct
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9000] = version
    block = exif.tobytes()
    return b"\xff\xd8\xff\xe1" + struct.pack(">H", len(block) + 2) + block + b"\xff\xdb"


def _png_with(chunk: bytes) -> bytes:
    im = Image.new("RGB", (4, 4))
    if chunk == b"iTXt":
        from PIL import PngImagePlugin
        info = PngImagePlugin.PngInfo()
        info.add_itxt("Comment", "x")
        return saved(im, "PNG", pnginfo=info)
    return saved(im, "PNG", icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


@pytest.mark.parametrize("head,expected", [
    (_exif_jpeg_head(b"0220"), ("image/jpeg", "2.2", "x-fmt/391")),
    (_exif_jpeg_head(b"0231"), ("image/jpeg", "", "")),            # a version PRONOM has no id for here
    (_png_with(b"iTXt"), ("image/png", "1.2", "fmt/13")),
    (_png_with(b"iCCP"), ("image/png", "1.1", "fmt/12")),
    (b"GIF87a" + bytes(20), ("image/gif", "87a", "fmt/3")),
    (b"II+\x00" + bytes(20), ("image/tiff", "", "")),              # BigTIFF
    (b"BM" + bytes(12) + (40).to_bytes(4, "little"), ("image/bmp", "3.0", "fmt/116")),
    (b"\x00\x00\x00\x18ftypheic" + bytes(8), ("image/heif", "", "")),
    (b"%PDF-1.7\n", ("application/pdf", "", "")),
])
def test_signatures(head, expected):
    from pipeline.formats import identify
    fmt = identify(head)
    assert (fmt.mimetype, fmt.version, fmt.pronom) == expected


def test_no_signature_is_none():
    from pipeline.formats import identify
    assert identify(b"hello") is None and identify(b"") is None


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_cut_inside_its_scans_is_truncated(tmp_path, progressive):
    """Validation decodes JPEG scans at 1/8 DCT scale: a file cut anywhere in its entropy-coded
    data is still refused, baseline or progressive."""
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=90, progressive=progressive)
    data = buf.getvalue()
    assert [p.code for p in check(tmp_path, "whole.jpg", data).problems] == []
    for cut in (len(data) // 3, len(data) * 9 // 10, len(data) - 10):
        found = [p.code for p in check(tmp_path, f"cut{cut}.jpg", data[:cut]).problems]
        assert "image.truncated" in found, (cut, found)


def test_pixel_limit_counts_every_frame(tmp_path):
    """A small first page must not let a large later page through the pixel limit."""
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tw:
        tw.write(np.zeros((10, 10), np.uint8), photometric="minisblack")
        tw.write(np.zeros((1200, 1000), np.uint8), photometric="minisblack")
    item = check(tmp_path, "pages.tif", buf.getvalue(), pixel_limit=1_000_000)
    assert "image.too_large" in {p.code for p in item.problems}


def test_sizes_that_are_not_sizes_are_usage_errors():
    from pipeline.cli.options import parse_size
    from pipeline.errors import UsageError
    for text in ("inf", "nan", "1e400", "-1G", "lots"):
        with pytest.raises(UsageError):
            parse_size(text)
    assert parse_size("1.5K") == 1536 or parse_size("1.5K") == 1500


def test_png_or_gif_missing_its_end_is_image_truncated(tmp_path):
    """Pillow decodes every pixel of a PNG whose IEND chunk, last CRC or zlib checksum is cut off,
    and of a GIF without its trailer: validation walks the file to its end and refuses them."""
    rng = np.random.default_rng(3)
    png = saved(Image.fromarray(rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)), "PNG")
    gif = saved(picture("P"), "GIF")
    assert check(tmp_path, "whole.png", png).problems == () and check(tmp_path, "whole.gif", gif).problems == ()
    for name, data in [("iend.png", png[:-12]), ("crc.png", png[:-16]), ("adler.png", png[:-20]),
                       ("trailer.gif", gif[:-1])]:
        found = [(p.code, p.reason) for p in check(tmp_path, name, data).problems]
        assert [code for code, _ in found] == ["image.truncated"], (name, found)
    broken = bytearray(png)
    broken[-20] ^= 1                                       # the zlib checksum, inside the last IDAT
    assert [p.code for p in check(tmp_path, "flip.png", bytes(broken)).problems] == ["image.corrupt"]


def test_a_sidecar_key_with_a_lone_surrogate_is_reported_printably_text_control(tmp_path):
    """The JSON pointer of a problem escapes what a terminal or UTF-8 cannot show (a lone
    surrogate, a control character), as names are escaped: one line, never a UnicodeEncodeError."""
    from conftest import no_traceback, run_cli
    folder = tmp_path / "c"
    shutil.copytree(CASES / "record.schema", folder)
    (folder / "a.json").write_text('{"identifier": "a", "\\ud800": "a\\u0001", "x\\u0085y": "b\\u0002"}')
    problems = [p for p in validate_collection(folder, ONE).all_problems if p.code == "text.control"]
    assert sorted(p.field for p in problems) == ["/\\ud800", "/x\\x85y"]
    for args in ((), ("--json",)):
        proc = run_cli("validate", folder, *args)
        assert proc.returncode == 1 and no_traceback(proc), proc.stderr
        assert "[text.control]" in proc.stdout or '"text.control"' in proc.stdout


@pytest.mark.parametrize("value,bounds", [
    ("199X-02-29", ("1992-02-29", "1996-02-29")),        # some year of the mask is a leap year
    ("19XX-02-29", ("1904-02-29", "1996-02-29")),
    ("199X-02", ("1990-02-01", "1999-02-28")),
    ("0001~", ("0001-01-01", "0002-12-31")),              # a qualifier stops at the calendar's ends
    ("9999-12~", ("9998-12-01", "9999-12-31")),
    ("0000-02-29", None),                                 # year 0 is a leap year, beyond Python's dates
])
def test_edtf_masked_leap_days_and_qualified_first_and_last_years_are_dates(value, bounds):
    got = date_bounds(value)
    assert (None if got is None else tuple(d.isoformat() for d in got)) == bounds
    assert date_problems(Record("a.json", RECORD | {"date": value}), None) == []


@pytest.mark.parametrize("value", ["0000-02-30", "190X-02-30", "1900-02-29", "1992-04-31", "00XX-06-31"])
def test_days_no_year_of_the_date_has_are_record_date(value):
    assert [p.code for p in date_problems(Record("a.json", RECORD | {"date": value}), None)] == ["record.date"]


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, b"GIF89a" + b"\x00" * 40,
                                  b"II*\x00" + b"\xff" * 60])
def test_image_corrupt_names_the_file_by_its_place_in_the_collection_not_by_its_path_here(tmp_path, data):
    problems = check(tmp_path, "damaged.img", data).problems
    assert problems and all(str(tmp_path) not in p.reason for p in problems), [p.reason for p in problems]
    assert {p.code for p in problems} & {"image.corrupt", "image.truncated"}
