"""The sample collection ingest/khojaly-1992: what it holds, and that its generator is deterministic."""
from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image

from conftest import ROOT, SAMPLE

COLLECTION = SAMPLE / "khojaly-1992"
SEED_NAME = "000_7191bcfe2ae59ee2.txt"


def records() -> list[dict]:
    found = sorted(p for p in COLLECTION.rglob("*.json") if p.name != "collection.json")
    return sorted((json.loads(p.read_text(encoding="utf-8")) for p in found), key=lambda r: r["identifier"])


def test_collection_record_comes_from_the_essay_and_says_placeholders():
    data = json.loads((COLLECTION / "collection.json").read_text(encoding="utf-8"))
    assert data["creator"] == "Reza Deghati"
    assert data["published"] == "2017-02-25"
    assert data["identifier"] == "khojaly-1992"
    assert "PLACEHOLDER" in data["notes"] and "not held" in data["notes"]
    assert "placeholders" in data["rights"]


def test_twenty_records_verbatim():
    recs = records()
    assert [r["identifier"] for r in recs] == [f"khojaly-1992-{n:02d}" for n in range(1, 21)]
    without = [r["identifier"] for r in recs if "caption" not in r]
    assert without == ["khojaly-1992-03", "khojaly-1992-08"]
    assert recs[2]["place"] == ["Azerbaijan", "Road between Khojaly and Agdam"]
    assert recs[2]["date"] == "1992-03" and recs[2]["date_original"] == "March 1992"
    assert "brotherís dead body" in recs[12]["caption"]
    assert "memberís bodies" in recs[15]["caption"]
    assert "Azerbaijanís last strategic foothold" in recs[17]["caption"]
    assert recs[8]["place"][-1] == "South Eastern Mountains" and recs[8]["date"] == "1992"


def test_captions_are_in_the_seed_text_when_present():
    seed = ROOT.parent / "shared" / "seed" / SEED_NAME
    if not seed.is_file():
        return  # the seed lives outside the project; the verbatim checks above still hold
    text = seed.read_text(encoding="utf-8")
    for r in records():
        assert r["title"] in text
        if "caption" in r:
            assert r["caption"] in text, r["identifier"]
            # the caption follows its own place/date line
            assert text.index(r["caption"]) > text.index(r["title"])


def test_images_exercise_the_pipeline_and_stay_small():
    images = sorted(p for p in COLLECTION.rglob("*") if p.suffix in (".jpg", ".png", ".tif"))
    assert len(images) == 20
    assert sum(p.stat().st_size for p in COLLECTION.rglob("*") if p.is_file()) < 15 * 1024 * 1024
    kinds = set()
    for path in images:
        with Image.open(path) as im:
            kinds.add((im.format, im.mode))
            if im.format == "JPEG":
                kinds.add(("orientation", im.getexif().get(0x0112, 1)))
                kinds.add(("icc", bool(im.info.get("icc_profile"))))
            if im.format == "PNG" and im.mode == "RGBA":
                assert im.getextrema()[3][0] == 0  # really transparent somewhere
    assert {("JPEG", "CMYK"), ("PNG", "RGBA"), ("TIFF", "I;16"), ("icc", True)} <= kinds
    assert {("orientation", 3), ("orientation", 6), ("orientation", 8)} <= kinds
    assert (COLLECTION / "scans" / "khojaly-1992-08.png").read_bytes()[24] == 16  # 16-bit colour PNG


def test_generator_is_deterministic_and_matches_the_committed_records(tmp_path):
    for out in ("a", "b"):
        subprocess.run([sys.executable, str(SAMPLE / "make_sample.py"), str(tmp_path / out)], check=True)
    a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*"))
    assert a == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*"))
    assert a == sorted(p.relative_to(COLLECTION) for p in COLLECTION.rglob("*"))
    for rel in a:
        if (tmp_path / "a" / rel).is_file():
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
            if rel.suffix == ".json":
                assert (tmp_path / "a" / rel).read_bytes() == (COLLECTION / rel).read_bytes(), rel
    assert not (SAMPLE / "__pycache__").exists()
