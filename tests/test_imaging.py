"""imaging, tiff and exif: orientation, canonical digests, the writer, the proof, captured noise."""
from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings, strategies as st
from PIL import Image, ImageOps

from pipeline import decode, imaging, tiff
from pipeline.errors import ConversionError, UnsupportedInput
from pipeline.exif import read_metadata


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_transforms_match_pillow_exif_transpose(orientation):
    arr = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(buf)))
    np.testing.assert_array_equal(imaging.orient(arr, orientation), expected)


def test_pixel_digest_is_canonical_over_byte_order_and_layout():
    arr = np.arange(12, dtype="<u2").reshape(3, 4)
    assert imaging.pixel_digest(arr) == imaging.pixel_digest(arr.astype(">u2"))
    assert imaging.pixel_digest(arr) == imaging.pixel_digest(np.asfortranarray(arr))
    assert imaging.pixel_digest(arr) != imaging.pixel_digest(arr.reshape(4, 3))
    assert imaging.pixel_digest(arr) != imaging.pixel_digest(arr.astype("<u4"))


@pytest.mark.parametrize("dtype, shape", [("u1", (700, 33, 3)), ("<u2", (300, 17)), ("?", (257, 9)),
                                          ("u1", (1, 5, 4))])
def test_the_one_pass_proof_gives_the_whole_image_digest(tmp_path, dtype, shape):
    """The proof compares and hashes the master in blocks of rows, giving each block's pages back
    as it goes: the digest is the whole image's, a memory-mapped master reads back the same, and
    every differing sample is counted."""
    rng = np.random.default_rng(7)
    source = (rng.integers(0, 2 if dtype == "?" else 60000, shape) % (256 if dtype == "u1" else 65536)).astype(dtype)
    np.save(tmp_path / "m.npy", source)
    mapped = np.load(tmp_path / "m.npy", mmap_mode="r")
    assert imaging._prove(mapped, source, rows=128) == ("", imaging.pixel_digest(source))
    assert np.array_equal(mapped, source), "the released pages read back from the file"
    changed = source.copy()
    changed.flat[-1] = not changed.flat[-1] if dtype == "?" else changed.flat[-1] ^ 1
    changed.flat[0] = not changed.flat[0] if dtype == "?" else changed.flat[0] ^ 1
    assert imaging._prove(changed, source, rows=128) == ("2 sample(s) differ", imaging.pixel_digest(changed))


@settings(max_examples=25, deadline=None)
@given(height=st.integers(1, 9), width=st.integers(1, 19), samples=st.sampled_from([1, 2, 3, 4]),
       dtype=st.sampled_from(["bool", "u1", "<u2"]), deflate=st.booleans(), seed=st.integers(0, 99))
def test_writer_round_trips_through_tifffile_and_offsets_are_even(tmp_path_factory, height, width, samples,
                                                                   dtype, deflate, seed):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        samples = 1
    shape = (height, width) if samples == 1 else (height, width, samples)
    arr = rng.integers(0, 2 if dtype == "bool" else 60000, shape).astype(dtype if dtype != "u1" else np.uint8)
    layout = tiff.Layout(tiff.RGB if samples >= 3 else tiff.MINISBLACK,
                         (tiff.UNASSOCIATED_ALPHA,) if samples in (2, 4) else ())
    path = tmp_path_factory.mktemp("w") / "m.tif"
    chunks = tiff.encode(arr, layout, tiff.DEFLATE if deflate else tiff.NONE, ((300, 1), (300, 1), 2))
    size, digests = tiff.write_chunks(path, chunks, ("sha256",))
    assert size == path.stat().st_size
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        np.testing.assert_array_equal(page.asarray(), arr)
        assert all(off % 2 == 0 for off in page.dataoffsets)


def test_proof_catches_a_master_that_cannot_hold_the_pixels(tmp_path):
    """Signed samples written as unsigned decode differently: the proof must refuse the master."""
    data = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(data, "PNG")
    source = decode.open_source(data.getvalue(), "s.png", 10**6)
    page = next(source.iter_frames()).page
    frame = imaging.Frame(np.full((4, 4), -3, np.int8), tiff.Layout(tiff.MINISBLACK), "L", [], page)
    master = imaging.write_master(source, frame, tmp_path / "m.tif", "none", ("sha256",))
    assert not master.proven and "int8" in master.mismatch
    assert list(tmp_path.iterdir()) == []


def test_captured_turns_warnings_and_c_level_stderr_into_messages(capfd):
    messages: list[str] = []
    with imaging.captured(messages):
        warnings.warn("a library warning")
        os.write(2, b"TIFFReadDirectory: Warning, unknown field\n")
    assert messages == ["TIFFReadDirectory: Warning, unknown field", "UserWarning: a library warning"]
    assert capfd.readouterr().err == ""


def test_open_source_errors():
    with pytest.raises(UnsupportedInput) as exc:
        decode.open_source(b"", "e.jpg", 100)
    assert exc.value.problems[0].code == "convert.empty"
    with pytest.raises(UnsupportedInput) as exc:
        decode.open_source(b"BM" + b"\0" * 60, "x.bmp", 100)
    assert exc.value.problems[0].code == "convert.unsupported"
    with pytest.raises(ConversionError) as exc:
        decode.open_source(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "x.png", 100)
    assert exc.value.problems[0].code == "convert.undecodable"


def test_exif_reader_refuses_hostile_structures():
    with pytest.raises(ValueError):
        read_metadata(b"II*\0" + (2**31).to_bytes(4, "little"))   # IFD outside the data
    huge_count = b"II*\0\x08\0\0\0" + (5000).to_bytes(2, "little")
    with pytest.raises(ValueError):
        read_metadata(huge_count)
    # a tag whose value points outside the data
    entry = (270).to_bytes(2, "little") + (2).to_bytes(2, "little") + (100).to_bytes(4, "little") + (9999).to_bytes(4, "little")
    with pytest.raises(ValueError):
        read_metadata(b"II*\0\x08\0\0\0\x01\0" + entry + b"\0\0\0\0")


def _encoded(save) -> bytes:
    buf = io.BytesIO()
    save(buf)
    return buf.getvalue()


def _four_colour_png(buf) -> None:
    im = Image.new("P", (4, 3))
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    im.putdata([i % 4 for i in range(12)])
    im.save(buf, "PNG", bits=2)


@pytest.mark.parametrize("name, data, expected", [
    ("rgba.webp", _encoded(lambda b: Image.new("RGBA", (4, 3)).save(b, "WEBP", lossless=True)),
     {"compression": "WebP lossless (VP8L)", "photometric": "RGB", "bits_per_sample": 8, "samples_per_pixel": 4,
      "extra_samples": "unassociated alpha"}),
    ("rgb16.tif", _encoded(lambda b: tifffile.imwrite(b, np.zeros((3, 4, 3), ">u2"), compression="lzw",
                                                      photometric="rgb", byteorder=">")),
     {"compression": "LZW", "photometric": "RGB", "bits_per_sample": 16, "samples_per_pixel": 3,
      "extra_samples": "", "byte_order": "big endian"}),
    ("two-bit.png", _encoded(_four_colour_png),
     {"compression": "Deflate", "photometric": "palette", "bits_per_sample": 2, "samples_per_pixel": 1,
      "extra_samples": ""}),
    ("cmyk.jpg", _encoded(lambda b: Image.new("CMYK", (4, 3)).save(b, "JPEG", dpi=(72, 72))),
     {"compression": "JPEG", "photometric": "separated (CMYK)", "bits_per_sample": 8, "samples_per_pixel": 4,
      "extra_samples": "", "x_resolution": 72.0, "y_resolution": 72.0, "resolution_unit": "inch"}),
    ("packbits.tif", _encoded(lambda b: Image.new("L", (4, 3)).save(b, "TIFF", compression="packbits")),
     {"compression": "PackBits", "photometric": "min-is-black", "bits_per_sample": 8, "samples_per_pixel": 1,
      "extra_samples": "", "byte_order": "little endian"}),
], ids=lambda value: value if isinstance(value, str) else "-")
def test_source_technical_is_the_originals_encoding_and_only_a_stated_resolution(name, data, expected):
    """What the decoder read of the original's header, without opening it again; a source that
    states no resolution gets none (the assumed default is the master's)."""
    source = decode.open_source(data, name, 10**6)
    assert imaging.source_technical(source) == expected
