"""`pipeline convert SRC DST.tif` as users run it: proven masters, one-line errors, no partial output."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from conftest import no_traceback, run_cli
from convert_fixtures import expected_frames, gif, jpeg, png, tiff


def leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.parametrize("compression", ["none", "deflate"])
def test_convert_proves_and_writes_the_master(tmp_path, compression):
    src = tmp_path / "photo.png"
    src.write_bytes(png("RGB;16"))
    dst = tmp_path / "photo.tif"
    proc = run_cli("convert", src, dst, "--compression", compression)
    assert proc.returncode == 0, proc.stderr
    assert "proven" in proc.stdout and no_traceback(proc)
    got = tifffile.imread(dst)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, expected_frames(src.read_bytes())[0])
    assert leftovers(tmp_path, {"photo.png", "photo.tif"}) == []


def test_convert_json_report(tmp_path):
    src = tmp_path / "o.jpg"
    src.write_bytes(jpeg(6))
    proc = run_cli("convert", src, tmp_path / "o.tif", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["proven"] is True
    master = report["masters"][0]
    assert master["orientation_applied"]["exif_orientation"] == 6
    assert master["source_pixel_sha256"] == master["master_pixel_sha256"]
    assert (master["width"], master["height"]) == (48, 64)


def test_convert_multi_frame_gives_one_master_per_frame(tmp_path):
    src = tmp_path / "a.gif"
    src.write_bytes(gif(True))
    proc = run_cli("convert", src, tmp_path / "a.tif")
    assert proc.returncode == 0, proc.stderr
    assert leftovers(tmp_path, {"a.gif"}) == ["a.f0001.tif", "a.f0002.tif", "a.f0003.tif"]


BAD = {
    "convert.empty": ("empty.jpg", lambda: b""),
    "convert.truncated": ("cut.jpg", lambda: jpeg()[:700]),
    "convert.unsupported": ("doc.pdf", lambda: b"%PDF-1.7\n%%EOF\n"),
    "convert.unsupported-svg": ("d.svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg"/>'),
    "convert.undecodable": ("bad.png", lambda: png("RGB")[:60] + b"\0" * 200),
}


@pytest.mark.parametrize("code", sorted(BAD))
def test_bad_input_one_line_error_exit_1_no_output(tmp_path, code):
    name, make = BAD[code]
    src = tmp_path / name
    src.write_bytes(make())
    proc = run_cli("convert", src, tmp_path / "out.tif")
    assert proc.returncode == 1, proc.stderr
    assert no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and f"[{code.split('-')[0]}]" in lines[0], lines
    assert leftovers(tmp_path, {name}) == []


def test_convert_pixel_limit(tmp_path):
    src = tmp_path / "big.tif"
    src.write_bytes(tiff("RGB"))
    proc = run_cli("convert", src, tmp_path / "out.tif", "--pixel-limit", "100")
    assert proc.returncode == 1 and "[convert.pixel_limit]" in proc.stderr
    assert leftovers(tmp_path, {"big.tif"}) == []


def test_existing_destination_is_not_overwritten(tmp_path):
    src = tmp_path / "a.png"
    src.write_bytes(png("L"))
    dst = tmp_path / "a.tif"
    dst.write_bytes(b"keep")
    proc = run_cli("convert", src, dst)
    assert proc.returncode == 1 and dst.read_bytes() == b"keep"


@pytest.mark.parametrize("args", [(), ("only-one.jpg",), ("missing.jpg", "x.tif"), ("SRC", "x.png"),
                                  ("SRC", "x.tif", "--compression", "lzw")])
def test_usage_errors_exit_2(tmp_path, args):
    src = tmp_path / "s.png"
    src.write_bytes(png("L"))
    args = [str(src) if a == "SRC" else (str(tmp_path / a) if a.endswith((".jpg", ".png", ".tif")) else a)
            for a in args]
    proc = run_cli("convert", *args)
    assert proc.returncode == 2, proc.stderr
    assert no_traceback(proc)


def test_convert_json_report_of_a_failure(tmp_path):
    src = tmp_path / "cut.jpg"
    src.write_bytes(jpeg()[:700])
    proc = run_cli("convert", src, tmp_path / "cut.tif", "--json")
    assert proc.returncode == 1 and proc.stderr == ""
    report = json.loads(proc.stdout)
    assert report["proven"] is False and report["problems"][0]["code"] == "convert.truncated"
    assert leftovers(tmp_path, {"cut.jpg"}) == []


def test_a_symlinked_source_is_read_under_its_own_name(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "real.jpg").write_bytes(jpeg())
    (tmp_path / "link.jpg").symlink_to(tmp_path / "elsewhere" / "real.jpg")
    r = run_cli("convert", tmp_path / "link.jpg", tmp_path / "out.tif")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.tif").is_file()
