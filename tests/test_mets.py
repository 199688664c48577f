"""The METS document: structure, PREMIS content, validity, and the consistency check (metscheck).

Consistency-check cases are named after the problem code each must raise.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given, settings, strategies as st
from lxml import etree

import describe_sample
from pipeline import mets, premis
from pipeline.metscheck import check_mets
from pipeline.model import Agent, Event, pipeline_agent
from pipeline.stages.describe import describe
from pipeline.xmlio import NS, load_schema, parse, validation_errors

NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")


def q(path: str) -> str:
    """'mets:file/mets:FLocat' -> Clark notation path for find/iter."""
    return "/".join(f"{{{NS[p.split(':')[0]]}}}{p.split(':')[1]}" for p in path.split("/"))


@pytest.fixture
def described(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    package, ctx = describe_sample.build(tmp_path)
    package = describe(package, ctx)
    assert package.all_problems == []
    return package, ctx, ctx.staging / mets.METS_PATH


def test_mets_is_valid_against_the_official_schemas(described, xsd_dir):
    _, ctx, path = described
    assert validation_errors(parse(path), load_schema(xsd_dir)) == []
    assert check_mets(ctx.staging, xsd_dir) == []


def test_header_has_date_software_with_version_and_organization(described):
    _, _, path = described
    hdr = parse(path).getroot().find(q("mets:metsHdr"))
    assert hdr.get("CREATEDATE") == "2023-11-14T22:13:20Z"
    names = [a.findtext(q("mets:name")) for a in hdr.findall(q("mets:agent"))]
    assert names == ["preservation-pipeline", "Example Archive"]
    assert hdr.find(q("mets:agent/mets:note")).text.startswith("version ")


def test_every_id_is_an_ncname_and_unique(described):
    _, _, path = described
    ids = [el.get("ID") for el in parse(path).iter() if el.get("ID") is not None]
    assert ids and all(NCNAME.match(i) for i in ids)
    assert len(ids) == len(set(ids))


def test_filesec_groups_checksums_and_groupids(described):
    package, _, path = described
    root = parse(path).getroot()
    groups = {g.get("USE"): g for g in root.iter(q("mets:fileGrp"))}
    assert list(groups) == ["original", "preservation", "metadata"]
    by_path = {f.bagpath: f for f in package.payload()}
    for grp in groups.values():
        for f in grp.findall(q("mets:file")):
            href = f.find(q("mets:FLocat")).get(f"{{{NS['xlink']}}}href")
            info = by_path[os.path.normpath("data/metadata/" + unquote(href))]
            assert (f.get("CHECKSUM"), f.get("CHECKSUMTYPE")) == (info.checksums["sha256"], "SHA-256")
            assert f.get("SIZE") == str(info.size) and f.get("MIMETYPE") == info.mimetype
            assert f.get("ADMID").split()[0] == f"techmd-{info.id}"
    for item in package.items:
        group = {f.get("GROUPID") for f in root.iter(q("mets:file"))
                 if f.get("ID") in (f"file-{item.original.id}", f"file-{item.masters[0].id}")}
        assert group == {f"group-{item.id}"}
    assert "../objects/originals/photos/001%20first.jpg" in [
        el.get(f"{{{NS['xlink']}}}href") for el in root.iter(q("mets:FLocat"))]


def test_struct_map_collection_root_and_one_div_per_photograph(described):
    package, _, path = described
    root = parse(path).getroot()
    smap = root.find(q("mets:structMap"))
    assert smap.get("TYPE") == "physical"
    top = smap.find(q("mets:div"))
    assert top.get("TYPE") == "collection" and top.get("DMDID") == "dmd-collection dmdref-collection"
    divs = top.findall(q("mets:div"))
    assert [d.get("LABEL") for d in divs] == ["kh-001", "kh-002"]
    for div, item in zip(divs, package.items):
        assert [p.get("FILEID") for p in div.findall(q("mets:fptr"))] == [
            f"file-{item.original.id}", f"file-{item.masters[0].id}"]


def test_premis_object_fixity_equals_the_file_checksums_and_derivation(described):
    package, _, path = described
    root = parse(path).getroot()
    item = package.items[0]
    for info, subtype, other in ((item.original, "is source of", item.masters[0]),
                                 (item.masters[0], "has source", item.original)):
        obj = root.find(f".//{q('mets:techMD')}[@ID='techmd-{info.id}']//{q('premis:object')}")
        fixity = {f.findtext(q("premis:messageDigestAlgorithm")): f.findtext(q("premis:messageDigest"))
                  for f in obj.iter(q("premis:fixity"))}
        assert fixity == {"SHA-256": info.checksums["sha256"], "SHA-512": info.checksums["sha512"]}
        assert obj.findtext(f".//{q('premis:size')}") == str(info.size)
        assert obj.findtext(f".//{q('premis:formatRegistryKey')}") == info.pronom
        rel = obj.find(q("premis:relationship"))
        assert rel.findtext(q("premis:relationshipSubType")) == subtype
        assert rel.findtext(f".//{q('premis:relatedObjectIdentifierValue')}") == other.id


def test_events_carry_vocabulary_uris_and_the_pixel_proof(described):
    _, _, path = described
    root = parse(path).getroot()
    events = {e.findtext(q("premis:eventType")): e for e in root.iter(q("premis:event"))}
    assert {"ingestion", "message digest calculation", "format identification", "validation",
            "normalization"} <= set(events)
    nor = events["normalization"]
    assert nor.find(q("premis:eventType")).get("valueURI") == \
        "http://id.loc.gov/vocabulary/preservation/eventType/nor"
    notes = [n.text for n in nor.iter(q("premis:eventOutcomeDetailNote"))]
    assert notes[0] == "pixels identical" and "pixel_sha256_master: " + "ab" * 32 in notes
    roles = [r.get("valueURI") for r in nor.iter(q("premis:linkingObjectRole"))]
    assert roles == ["http://id.loc.gov/vocabulary/preservation/eventRelatedObjectRole/sou",
                     "http://id.loc.gov/vocabulary/preservation/eventRelatedObjectRole/out"]
    agents = {a.findtext(q("premis:agentName")) for a in root.iter(q("premis:agent"))}
    assert {"Pillow", "preservation-pipeline", "Example Archive"} <= agents


def test_every_event_and_agent_appears_once(described):
    package, _, path = described
    root = parse(path).getroot()
    event_ids = [e.findtext(f"{q('premis:eventIdentifier')}/{q('premis:eventIdentifierValue')}")
                 for e in root.iter(q("premis:event"))]
    assert sorted(event_ids) == sorted(e.id for item in package.items for e in item.events)
    agent_ids = [a.findtext(f".//{q('premis:agentIdentifierValue')}") for a in root.iter(q("premis:agent"))]
    assert len(agent_ids) == len(set(agent_ids)) == 3


def test_fixity_check_event_and_agent_builders_validate_on_their_own(xsd_dir):
    agent = Agent(id="software:preservation-pipeline/0.1.0", name="preservation-pipeline", type="software",
                  version="0.1.0")
    event = Event(id="5b1f6c0e-0000-5000-8000-000000000001", type="fixity check", datetime="2024-01-01T00:00:00Z",
                  detail="sha256, sha512", outcome="failure", outcome_detail="data/x.tif: sha256 mismatch",
                  agents=((agent, "executing program"),), objects=(("obj-1", "source"),))
    schema = load_schema(xsd_dir)
    ev = premis.event_element(event)
    assert validation_errors(ev, schema) == []
    assert ev.find(q("premis:eventOutcomeInformation/premis:eventOutcome")).get("valueURI").endswith("/fai")
    assert validation_errors(premis.agent_element(agent), schema) == []
    unknown = premis.event_element(Event(id="e", type="local audit", datetime="2024-01-01T00:00:00Z"))
    assert unknown.find(q("premis:eventType")).get("valueURI") is None


def test_same_epoch_gives_byte_identical_mets_and_dc(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    outputs = []
    for run in ("a", "b"):
        package, ctx = describe_sample.build(tmp_path / run)
        describe(package, ctx)
        outputs.append({p.relative_to(ctx.staging).as_posix(): p.read_bytes()
                        for p in sorted((ctx.staging / "data/metadata").rglob("*")) if p.is_file()})
    assert outputs[0] == outputs[1]
    assert "data/metadata/mets.xml" in outputs[0]


def test_one_amdsec_per_file_and_one_for_the_package(described):
    package, _, path = described
    amd = [el.get("ID") for el in parse(path).getroot().findall(q("mets:amdSec"))]
    files = [f for f in package.payload() if f.bagpath != mets.METS_PATH]
    assert sorted(amd) == sorted([f"amd-{f.id}" for f in files] + ["amd-package"])


# --- metscheck, named after the codes ---------------------------------------------------------

def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_describe_mets_checksum(described):
    package, ctx, _ = described
    master = ctx.staging / package.items[0].masters[0].bagpath
    data = bytearray(master.read_bytes())
    data[-1] ^= 0xFF
    master.write_bytes(bytes(data))
    problems = check_mets(ctx.staging)
    assert [(p.code, p.path) for p in problems] == [("describe.mets_checksum", package.items[0].masters[0].bagpath)]
    assert problems[0].field.startswith("line ")


def test_describe_mets_checksum_size(described):
    package, ctx, _ = described
    original = ctx.staging / package.items[1].original.bagpath
    original.write_bytes(original.read_bytes() + b"\0")
    codes = [p.code for p in check_mets(ctx.staging)]
    assert codes == ["describe.mets_checksum", "describe.mets_checksum"]   # SIZE and CHECKSUM


def test_describe_mets_flocat(described):
    package, ctx, _ = described
    (ctx.staging / package.items[0].original.bagpath).unlink()
    problems = check_mets(ctx.staging)
    assert [p.code for p in problems] == ["describe.mets_flocat"]
    assert "001%20first.jpg" in problems[0].reason


def test_describe_mets_flocat_outside_the_bag(described):
    _, ctx, path = described
    _edit(path, 'xlink:href="../objects/originals/photos/002.jpg"', 'xlink:href="../../../etc/passwd"')
    assert [p.code for p in check_mets(ctx.staging)] == ["describe.mets_flocat"]


def test_describe_mets_flocat_of_an_mdref(described):
    _, ctx, _ = described
    (ctx.staging / "data/metadata/dc/collection.dcterms.xml").unlink()
    assert "describe.mets_flocat" in [p.code for p in check_mets(ctx.staging)]


def test_describe_mets_idref(described):
    package, ctx, path = described
    _edit(path, f'FILEID="file-{package.items[0].original.id}"', 'FILEID="file-nowhere"')
    problems = check_mets(ctx.staging)
    assert [p.code for p in problems] == ["describe.mets_idref"]
    assert "file-nowhere" in problems[0].reason


def test_describe_mets_duplicate_id(described):
    package, ctx, path = described
    _edit(path, f'ID="div-{package.items[1].id}"', f'ID="div-{package.items[0].id}"')
    problems = check_mets(ctx.staging)
    assert [p.code for p in problems] == ["describe.mets_duplicate_id"]
    assert f"div-{package.items[0].id}" in problems[0].reason and problems[0].field.startswith("line ")


def test_ids_whose_keys_collide_are_not_reported_as_repeated(described):
    """The first pass keeps 64-bit keys of the IDs; keys of different IDs can collide, so the
    second pass decides by the strings: a key taken for repeated that is not is no problem."""
    from pipeline.metscheck import _id_problems
    package, ctx, path = described
    unique = f"div-{package.items[0].id}"
    assert _id_problems(path, {hash(unique)}, set()) == []


def test_describe_mets_schema(described, xsd_dir):
    _, ctx, path = described
    _edit(path, 'RECORDSTATUS="Complete"', 'RECORDSTATUS="Complete" BOGUS="1"')
    assert check_mets(ctx.staging) == []          # consistent...
    problems = check_mets(ctx.staging, xsd_dir)   # ...but not valid
    assert [p.code for p in problems] == ["describe.mets_schema"]
    assert problems[0].field == "line 3" and "BOGUS" in problems[0].reason


def test_describe_dc_schema(described, xsd_dir):
    """A Dublin Core record of the bag invalid against dcterms.xsd: found with the schemas (by
    the describe stage with --schemas, and by pipeline verify --schemas), named with its line."""
    _, ctx, _ = described
    assert check_mets(ctx.staging, xsd_dir) == []
    record = next((ctx.staging / "data" / "metadata" / "dc" / "items").rglob("*.dcterms.xml"))
    text = record.read_text(encoding="utf-8")
    record.write_text(text.replace("</dcterms:created>", "</dcterms:created><dcterms:bogus>x</dcterms:bogus>", 1),
                      encoding="utf-8")
    problems = [p for p in check_mets(ctx.staging, xsd_dir) if p.code != "describe.mets_checksum"]  # edited
    assert [(p.code, p.path) for p in problems] == [
        ("describe.dc_schema", record.relative_to(ctx.staging).as_posix())]
    assert "bogus" in problems[0].reason and problems[0].field.startswith("line ")


def test_describe_mets_unreadable(described):
    _, ctx, path = described
    path.write_bytes(path.read_bytes()[:2000])
    problems = check_mets(ctx.staging)
    assert problems[-1].code == "describe.mets_unreadable"


def test_describe_mets_missing(tmp_path):
    assert [p.code for p in check_mets(tmp_path)] == ["describe.mets_missing"]


def test_href_is_relative_to_the_mets_file_and_percent_encoded():
    assert mets.href("data/objects/originals/a b/é%.jpg") == "../objects/originals/a%20b/%C3%A9%25.jpg"
    assert mets.href("data/metadata/dc/x.xml") == "dc/x.xml"


def test_pipeline_agent_is_software_with_version():
    agent = premis.agent_element(pipeline_agent())
    assert agent.find(q("premis:agentType")).get("valueURI").endswith("/agentType/sof")
    assert agent.findtext(q("premis:agentVersion"))


@pytest.mark.parametrize("technical", [
    {"width": 800, "height": 600, "bits_per_sample": 16, "samples_per_pixel": 2, "photometric": "min-is-black",
     "extra_samples": "unassociated alpha", "compression": "deflate, horizontal predictor",
     "x_resolution": 118.1102, "y_resolution": 118.1102, "resolution_unit": "centimeter"},
    {"width": 10, "height": 10, "photometric": "separated (CMYK)", "icc_profile": "U.S. Web Coated (SWOP) v2"},
    {"width": 10, "height": 10, "mode": "L"},
])
def test_mix_from_convert_technical_data_is_valid(technical, xsd_dir):
    element = mets.mix(technical)
    assert validation_errors(element, load_schema(xsd_dir)) == []
    assert element.findtext(f".//{q('mix:imageWidth')}") == str(technical["width"])


def test_mix_values():
    element = mets.mix({"width": 4, "height": 3, "bits_per_sample": 16, "samples_per_pixel": 2,
                        "photometric": "min-is-black", "extra_samples": "unassociated alpha",
                        "x_resolution": 300.0, "y_resolution": 300.0, "resolution_unit": "inch"})
    assert element.findtext(f".//{q('mix:colorSpace')}") == "BlackIsZero"
    assert [e.text for e in element.iter(q("mix:bitsPerSampleValue"))] == ["16", "16"]
    assert element.findtext(f".//{q('mix:extraSamples')}") == "unassociated alpha data"
    assert element.findtext(f".//{q('mix:xSamplingFrequency/mix:numerator')}") == "300"
    assert mets.mix({"width": 0, "height": 3}) is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                        min_size=1, max_size=12).filter(lambda s: s not in (".", "..")), min_size=1, max_size=3))
def test_href_round_trips_any_file_name(parts):
    bagpath = "data/objects/originals/" + "/".join(parts)
    link = mets.href(bagpath)
    assert all(ch.isascii() and ch not in " \r\n\t\"<>" for ch in link)
    assert os.path.normpath("data/metadata/" + unquote(link)) == os.path.normpath(bagpath)


def test_unusual_names_are_consistent_and_valid(tmp_path, monkeypatch, xsd_dir):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    names = ["photos/100% sure #1.jpg", "photos/u\u0308ber/\u0645\u0633\u062c\u062f.jpg"]   # %, #, NFD, RTL
    package, ctx = describe_sample.build(tmp_path, names=names)
    package = describe(package, ctx)
    assert package.all_problems == []
    assert check_mets(ctx.staging, xsd_dir) == []


def test_original_name_only_on_originals_and_ingestion_implemented_by_the_organization(described):
    package, _, path = described
    root = parse(path).getroot()
    item = package.items[0]
    names = {}
    for obj in root.iter(q("premis:object")):
        names[obj.findtext(f".//{q('premis:objectIdentifierValue')}")] = obj.findtext(q("premis:originalName"))
    assert names[item.original.id] == "photos/001 first.jpg"
    assert names[item.masters[0].id] is None
    ingestion = next(e for e in root.iter(q("premis:event")) if e.findtext(q("premis:eventType")) == "ingestion")
    roles = [(a.findtext(q("premis:linkingAgentIdentifierValue")), a.findtext(q("premis:linkingAgentRole")))
             for a in ingestion.iter(q("premis:linkingAgentIdentifier"))]
    assert roles[1] == ("organization:Example Archive", "implementer")


def test_every_describe_code_has_a_test_named_after_it():
    import tomllib
    root = Path(__file__).resolve().parent
    codes = tomllib.loads((root.parent / "pipeline/codes/describe.toml").read_text(encoding="utf-8"))
    text = (root / "test_mets.py").read_text() + (root / "stages/test_describe.py").read_text()
    assert [c for c in codes if f"def test_{c.replace('.', '_')}" not in text] == []


# --- the originals' MIX: what each original is, from what its decoder read --------------------------

def _mix_leaves(mix: "etree._Element") -> list[tuple[str, str]]:
    """Every leaf of a MIX in document order, as (name, text); a rational's parts named by their parent."""
    out = []
    for el in mix.iter():
        if len(el) == 0:
            name = etree.QName(el).localname
            if name in ("numerator", "denominator"):
                name = f"{etree.QName(el.getparent()).localname}/{name}"
            out.append((name, el.text))
    return out


def _originals_mix(mets_path: Path) -> dict[str, "etree._Element"]:
    """Each original's MIX, by its file name."""
    root = parse(mets_path)
    techmd = {el.get("ID"): el for el in root.iter(q("mets:techMD"))}
    out = {}
    for file in root.iterfind(f".//{q('mets:fileGrp')}[@USE='original']/{q('mets:file')}"):
        name = unquote(file.find(q("mets:FLocat")).get(mets.XLINK_HREF)).rsplit("/", 1)[-1]
        mix_id = next(i for i in file.get("ADMID").split() if i.startswith("mix-"))
        out[name] = techmd[mix_id].find(f".//{q('mix:mix')}")
    return out


def test_original_mix_states_compression_colour_space_bits_icc_and_stated_resolution(tmp_path, cli, xsd_dir):
    """A JPEG with an ICC profile at 300 dpi, a 16-bit grey PNG, a 16-colour GIF and a Group 4
    bilevel TIFF at 200 dpi: each original's MIX says what the original is, in the schema's
    order; the PNG and the GIF state no resolution (the assumed 300 dpi is their masters' only)."""
    import numpy as np
    from PIL import Image, ImageCms

    import helpers_stages as hs
    folder = hs.make_collection(tmp_path / "ingest", n=0, name="mixes")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (24, 16), (200, 30, 10)).save(folder / "photo.jpg", dpi=(300, 300), icc_profile=srgb)
    Image.fromarray(np.arange(24 * 16, dtype=np.uint16).reshape(16, 24) * 150).save(folder / "grey16.png")
    palette = Image.new("P", (24, 16))
    palette.putpalette([v for i in range(16) for v in (i * 16, 255 - i * 16, 7)])
    palette.putdata([i % 16 for i in range(24 * 16)])
    palette.save(folder / "palette.gif")
    Image.new("1", (24, 16), 1).save(folder / "bilevel.tif", compression="group4", dpi=(200, 200))
    for name in ("photo.jpg", "grey16.png", "palette.gif", "bilevel.tif"):
        (folder / name).with_suffix(".json").write_text(json.dumps(
            {"identifier": name, "date": "1992-02", "place": ["Azerbaijan"]}), encoding="utf-8")
    out = tmp_path / "output"
    proc = cli("run", "--ingest", folder.parent, "--output", out, "--until", "describe", "--schemas", xsd_dir,
               "--quiet", folder.name)
    assert proc.returncode == 0, proc.stderr
    path = out / ".staging" / folder.name / mets.METS_PATH
    assert validation_errors(parse(path), load_schema(xsd_dir)) == []
    size = [("imageWidth", "24"), ("imageHeight", "16")]
    bits = lambda *values: [("bitsPerSampleValue", str(v)) for v in values] + [("bitsPerSampleUnit", "integer")]
    per_inch = lambda dpi: [("samplingFrequencyUnit", "in."), ("xSamplingFrequency/numerator", str(dpi)),
                            ("xSamplingFrequency/denominator", "1"), ("ySamplingFrequency/numerator", str(dpi)),
                            ("ySamplingFrequency/denominator", "1")]
    assert {name: _mix_leaves(mix) for name, mix in _originals_mix(path).items()} == {
        "photo.jpg": [("compressionScheme", "JPEG"), *size, ("colorSpace", "YCbCr"),
                      ("iccProfileName", "sRGB built-in"), *per_inch(300), *bits(8, 8, 8), ("samplesPerPixel", "3")],
        "grey16.png": [("compressionScheme", "Deflate"), *size, ("colorSpace", "BlackIsZero"),
                       *bits(16), ("samplesPerPixel", "1")],
        "palette.gif": [("compressionScheme", "LZW"), *size, ("colorSpace", "PaletteColor"),
                        *bits(4), ("samplesPerPixel", "1")],
        "bilevel.tif": [("byteOrder", "little endian"), ("compressionScheme", "CCITT Group 4"), *size,
                        ("colorSpace", "BlackIsZero"), *per_inch(200), *bits(1), ("samplesPerPixel", "1")],
    }
