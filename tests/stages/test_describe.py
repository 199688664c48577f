"""The describe stage: what it writes into the bag, what it returns, and how it reports problems.

Problem cases are named after the code they must raise.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

import describe_sample
from pipeline.hashing import hash_file
from pipeline.mets import METS_PATH
from pipeline.metscheck import check_mets
from pipeline.model import METADATA, Record
from pipeline.stage import Settings
from pipeline.stages import describe as stage
from pipeline.xmlio import NS, canonical, load_schema, parse, validation_errors


@pytest.fixture(autouse=True)
def _epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


def run(tmp_path, settings=None, edit=None):
    package, ctx = describe_sample.build(tmp_path, settings=settings)
    if edit:
        package = edit(package)
    return stage.describe(package, ctx), ctx


def test_stage_contract():
    assert stage.STAGE.name == "describe"
    assert stage.STAGE.per_item is None and stage.STAGE.collect is stage.describe


def test_every_file_written_is_returned_with_the_right_checksums(tmp_path):
    package, ctx = run(tmp_path)
    assert package.all_problems == []
    on_disk = sorted(p.relative_to(ctx.staging).as_posix()
                     for p in (ctx.staging / "data/metadata").rglob("*") if p.is_file())
    assert sorted(f.bagpath for f in package.metadata()) == on_disk
    assert package.metadata_files[-1].bagpath == METS_PATH
    for info in package.metadata():
        size, digests = hash_file(ctx.staging / info.bagpath, ("sha256", "sha512"))
        assert (info.role, info.size, dict(info.checksums)) == (METADATA, size, digests), info.bagpath


def test_submitted_records_are_copied_byte_for_byte(tmp_path):
    package, ctx = run(tmp_path)
    for record in ("collection.json", "photos/001 first.json", "photos/002.json"):
        copy = ctx.staging / "data/metadata/submission" / record
        assert copy.read_bytes() == (ctx.ingest / record).read_bytes()
    names = sorted(f.original_name for f in package.metadata() if "/submission/" in f.bagpath)
    assert names == ["collection.json", "photos/001 first.json", "photos/002.json"]


def test_each_item_keeps_its_own_metadata_files(tmp_path):
    """An item's sidecar copy and DC records live with the item (on disk in a large run), not
    in the package's list: the describe stage's memory does not grow with the items."""
    package, _ = run(tmp_path)
    for item in package.items:
        assert sorted(f.bagpath for f in item.metadata) == sorted([
            f"data/metadata/submission/{item.record.path}",
            f"data/metadata/dc/items/{item.relpath}.oai_dc.xml",
            f"data/metadata/dc/items/{item.relpath}.dcterms.xml"])
    assert sorted(f.bagpath for f in package.metadata_files) == [
        "data/metadata/dc/collection.dcterms.xml", "data/metadata/dc/collection.oai_dc.xml",
        "data/metadata/mets.xml", "data/metadata/submission/collection.json"]


def test_dc_records_are_written_per_item_and_for_the_collection_and_valid(tmp_path, xsd_dir):
    _, ctx = run(tmp_path)
    dc = ctx.staging / "data/metadata/dc"
    written = sorted(dc.rglob("*.xml"))
    assert [p.relative_to(dc).as_posix() for p in written] == [
        "collection.dcterms.xml", "collection.oai_dc.xml",
        "items/photos/001 first.jpg.dcterms.xml", "items/photos/001 first.jpg.oai_dc.xml",
        "items/photos/002.jpg.dcterms.xml", "items/photos/002.jpg.oai_dc.xml"]
    schema = load_schema(xsd_dir)
    for path in written:
        assert validation_errors(parse(path), schema) == [], path


def test_a_rerun_leaves_nothing_stale_in_the_metadata(tmp_path):
    package, ctx = describe_sample.build(tmp_path)
    stale = ctx.staging / "data/metadata/dc/items/photos/removed.jpg.oai_dc.xml"
    stale.parent.mkdir(parents=True)
    stale.write_text("<old/>")
    package = stage.describe(package, ctx)
    assert package.all_problems == [] and not stale.exists()


def test_ingestion_and_digest_events_are_added_when_upstream_has_none(tmp_path):
    package, _ = run(tmp_path)
    for item in package.items:
        types = [e.type for e in item.events]
        assert types.count("ingestion") == 1
        digested = {oid for e in item.events if e.type == "message digest calculation" for oid, _ in e.objects}
        assert digested == {item.original.id, item.masters[0].id}


def test_schemas_setting_validates_the_mets_at_run_time(tmp_path, xsd_dir):
    package, _ = run(tmp_path, Settings(schemas_dir=xsd_dir))
    assert package.all_problems == []


def test_describe_mets_schema_at_run_time(tmp_path, xsd_dir):
    def bad_width(package):
        item = package.items[0]
        master = replace(item.masters[0], technical=dict(item.masters[0].technical, width=-5))
        return replace(package, items=(replace(item, masters=(master,)),) + package.items[1:])

    package, _ = run(tmp_path / "without", edit=bad_width)
    assert package.all_problems == []           # consistent, and no schemas given
    package, _ = run(tmp_path / "with", Settings(schemas_dir=xsd_dir), edit=bad_width)
    assert [p.code for p in package.problems] == ["describe.mets_schema"]
    assert "imageWidth" in package.problems[0].reason and package.problems[0].field.startswith("line ")


def test_describe_mets_checksum_at_run_time(tmp_path):
    """At run time each file the METS names is checked by its size on disk (its checksum was
    computed while it was written; re-reading it from the page cache would prove nothing more)."""
    package, ctx = describe_sample.build(tmp_path)
    with open(ctx.staging / package.items[1].original.bagpath, "ab") as f:   # changed after it was written
        f.write(b"x")
    done = stage.describe(package, ctx)
    assert [(p.code, p.path) for p in done.problems] == [
        ("describe.mets_checksum", "data/objects/originals/photos/002.jpg")]
    assert "SIZE is" in done.problems[0].reason


def test_verify_rehashes_what_the_mets_states(tmp_path):
    """pipeline verify's check (rehash) reads every file and compares its checksum."""
    from pipeline.metscheck import check_mets

    def wrong_digest(package):
        item = package.items[1]
        original = replace(item.original, checksums=dict(item.original.checksums, sha256="0" * 64))
        return replace(package, items=package.items[:1] + (replace(item, original=original),))

    package, ctx = run(tmp_path, edit=wrong_digest)
    assert package.all_problems == []      # at run time: sizes only
    assert [(p.code, p.path) for p in check_mets(ctx.staging)] == [
        ("describe.mets_checksum", "data/objects/originals/photos/002.jpg")]


def test_describe_xml_char(tmp_path):
    def bell(package):
        item = package.items[0]
        record = Record(item.record.path, dict(item.record.data, caption="ring \x07 ring"))
        return replace(package, items=(replace(item, record=record),) + package.items[1:])

    package, ctx = run(tmp_path, edit=bell)
    problems = package.all_problems
    assert [(p.code, p.path, p.field) for p in problems] == [("describe.xml_char", "photos/001 first.json", "/caption")]
    assert "U+0007" in problems[0].reason
    assert not (ctx.staging / METS_PATH).exists()


def test_describe_record_missing(tmp_path):
    def ghost(package):
        return replace(package, records=package.records + (Record("photos/ghost.json", {}),))

    package, ctx = run(tmp_path, edit=ghost)
    assert [(p.code, p.path) for p in package.problems] == [("describe.record_missing", "photos/ghost.json")]
    assert not (ctx.staging / METS_PATH).exists()


def test_describe_no_files(tmp_path):
    def no_original(package):
        return replace(package, items=(replace(package.items[0], original=None, masters=()),) + package.items[1:])

    package, _ = run(tmp_path, edit=no_original)
    assert [p.code for p in package.all_problems] == ["describe.no_files"]


def test_sha512_only_uses_sha512_in_the_mets(tmp_path):
    package, ctx = run(tmp_path, Settings(algorithms=("sha512",)))
    assert package.all_problems == []
    files = list(parse(ctx.staging / METS_PATH).iter(f"{{{NS['mets']}}}file"))
    assert files and {f.get("CHECKSUMTYPE") for f in files} == {"SHA-512"}
    assert set(package.metadata_files[-1].checksums) == {"sha512"}


def test_organization_setting_overrides_the_collection_record(tmp_path):
    _, ctx = run(tmp_path, Settings(organization="Other Archive"))
    names = [el.text for el in parse(ctx.staging / METS_PATH).iter(f"{{{NS['mets']}}}name")]
    assert names == ["preservation-pipeline", "Other Archive"]


# --- end to end on the sample collection, against golden files ------------------------------------

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "khojaly-1992"
GOLDEN_DC = ("collection.oai_dc.xml", "collection.dcterms.xml",
             "items/khojaly-1992-01.jpg.oai_dc.xml", "items/khojaly-1992-01.jpg.dcterms.xml",
             "items/khojaly-1992-03.jpg.oai_dc.xml", "items/khojaly-1992-03.jpg.dcterms.xml",
             "items/scans/khojaly-1992-07.tif.oai_dc.xml", "items/scans/khojaly-1992-07.tif.dcterms.xml")
REGENERATE = "PIPELINE_UPDATE_GOLDEN"


def test_sample_until_describe_matches_the_golden_files(sample_collection, cli, xsd_dir, tmp_path):
    """`pipeline run --until describe` on the sample: valid METS and DC, equal (after C14N, with a
    frozen clock) to tests/golden/.  After an intended change, regenerate with
    PIPELINE_UPDATE_GOLDEN=1 python -m pytest tests/stages/test_describe.py -k golden"""
    out = tmp_path / "output"
    proc = cli("run", "--ingest", sample_collection.parent, "--output", out, "--until", "describe",
               "--schemas", xsd_dir, "--quiet", sample_collection.name, env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert proc.returncode == 0, proc.stderr
    staging = out / ".staging" / sample_collection.name
    assert check_mets(staging, xsd_dir) == []
    schema = load_schema(xsd_dir)
    written = {"mets.xml": staging / METS_PATH}
    written.update({f"dc/{name}": staging / "data/metadata/dc" / name for name in GOLDEN_DC})
    for name, path in written.items():
        assert validation_errors(parse(path), schema) == [], name
        golden = GOLDEN / name
        if os.environ.get(REGENERATE):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_bytes(path.read_bytes())
        assert canonical(parse(path)) == canonical(parse(golden)), (
            f"{name} differs from {golden}; if the change is intended: {REGENERATE}=1 python -m pytest "
            "tests/stages/test_describe.py -k golden")


def test_describe_xml_char_in_a_file_name_or_event(tmp_path):
    def control_name(package):
        item = package.items[0]
        original = replace(item.original, original_name="photos/001\x0bfirst.jpg")
        event = replace(item.events[0], detail="bad \x00 detail")
        return replace(package, items=(replace(item, original=original, events=(event,) + item.events[1:]),)
                       + package.items[1:])

    package, ctx = run(tmp_path, edit=control_name)
    reasons = [p.reason for p in package.all_problems if p.code == "describe.xml_char"]
    assert len(reasons) == 2
    assert reasons[0].startswith("original_name: character U+000B")
    assert reasons[1].startswith("event format identification: character U+0000")
    assert not (ctx.staging / METS_PATH).exists()


def test_describe_write(tmp_path):
    package, ctx = describe_sample.build(tmp_path)
    ctx.staging.mkdir(parents=True, exist_ok=True)
    (ctx.staging / "data").rename(ctx.staging / "objects-elsewhere")
    (ctx.staging / "data").write_text("a file where the data/ folder must be")
    package = stage.describe(package, ctx)
    codes = {p.code for p in package.all_problems}
    assert codes == {"describe.write"}
    assert not (ctx.staging / METS_PATH).exists()


def test_files_without_an_identifier_get_one(tmp_path):
    def anonymous(package):
        item = package.items[1]
        return replace(package, items=package.items[:1] + (replace(item, original=replace(item.original, id="")),))

    package, _ = run(tmp_path, edit=anonymous)
    assert package.all_problems == []
    assert package.items[1].original.id


def test_describe_xml_char_in_technical_metadata_or_a_list_of_event_notes(tmp_path):
    """Values read out of the image (technical metadata, lists in an event's notes) are checked
    too: one problem each, no traceback, no METS (a control character in them once crashed the
    METS writer)."""
    def control_values(package):
        item = package.items[0]
        original = replace(item.original, technical=dict(item.original.technical, icc_profile="\x01RGB"))
        event = replace(item.events[0], extra=dict(item.events[0].extra, dropped=["fine", "bad \x02"]))
        return replace(package, items=(replace(item, original=original, events=(event,) + item.events[1:]),)
                       + package.items[1:])

    package, ctx = run(tmp_path, edit=control_values)
    reasons = sorted(p.reason for p in package.all_problems if p.code == "describe.xml_char")
    assert len(reasons) == 2
    assert "technical: character U+0001" in reasons[0]
    assert reasons[1].startswith("event format identification: character U+0002")
    assert not (ctx.staging / METS_PATH).exists()
