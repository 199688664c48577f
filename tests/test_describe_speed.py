"""The describe stage's cheaper paths write what the plain ones would, byte for byte: the METS
over items kept on disk (read twice, not once per section), with the items' agents given or
found; `mets.href`'s shortcut for plain paths; PREMIS written as markup, whose values parse back
exactly.  The layout itself is the golden tests' (C14N) and the schemas'."""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import pytest
from hypothesis import given, settings, strategies as st
from lxml import etree

import describe_sample
from pipeline import dc, mets, premis
from pipeline.itemstore import ItemStore, store_folder
from pipeline.metscheck import check_mets
from pipeline.model import ORIGINAL, Agent, Event, FileInfo
from pipeline.stages.describe import _item_terms, dcterms_file, describe


class CountingStore(ItemStore):
    """An ItemStore that counts how often each item is read back from its file."""

    def __init__(self, folder: Path, length: int) -> None:
        super().__init__(folder, length)
        self.loads: Counter = Counter()

    def _load(self, index: int):
        self.loads[index] += 1
        return super()._load(index)


def _write(package, ctx, dest: Path, **kw) -> bytes:
    coll = dict(package.collection.data)

    def record(item):
        return dc.oai_dc(dc.collection_terms(coll, len(package.items)) if item is None else _item_terms(item, coll))

    mets.write_mets(dest, package, created=ctx.now(), organization="Example Archive", dc_record=record,
                    agent_md_id=lambda a: "agent-" + ctx.make_id("agent", mets.agent_key(a)),
                    dcterms_file=lambda item: dcterms_file(package, item), algorithms=("sha256",), **kw)
    return dest.read_bytes()


@pytest.fixture
def described(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    names = describe_sample.NAMES + ["photos/100% sure #1.jpg", "photos/u\u0308ber/\u0645\u0633\u062c\u062f.jpg"]
    package, ctx = describe_sample.build(tmp_path, records=describe_sample.RECORDS * 2, names=names)
    package = describe(package, ctx)
    assert package.all_problems == []
    # as the METS was written: without itself among the files it lists
    return replace(package, metadata_files=tuple(f for f in package.metadata_files if f.bagpath != mets.METS_PATH)), ctx


def test_mets_over_an_item_store_reads_each_item_twice_and_writes_the_same_bytes(described, tmp_path):
    package, ctx = described
    written = (ctx.staging / mets.METS_PATH).read_bytes()
    store = CountingStore(store_folder(tmp_path / "out"), len(package.items))
    for i, item in enumerate(package.items):
        store[i] = item
    agents = list({mets.agent_key(a): a for a in mets.event_agents(package.items)}.values())
    dest = tmp_path / "again" / "mets.xml"
    assert _write(replace(package, items=store), ctx, dest, item_agents=agents) == written
    assert store.loads == Counter({i: 2 for i in range(len(package.items))})
    store.loads.clear()
    assert _write(replace(package, items=store), ctx, dest) == written      # agents found: one pass more
    assert store.loads == Counter({i: 3 for i in range(len(package.items))})
    assert sorted(os.listdir(dest.parent)) == ["mets.xml"]       # the spools leave nothing behind
    assert check_mets(ctx.staging) == []


def test_a_failed_mets_leaves_no_file_and_no_spool(described, tmp_path):
    package, ctx = described
    dest = tmp_path / "failed" / "mets.xml"

    def broken(item):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        mets.write_mets(dest, package, created=ctx.now(), organization="", dc_record=lambda item: dc.oai_dc([]),
                        agent_md_id=lambda a: "agent-x", dcterms_file=broken, algorithms=("sha256",))
    assert os.listdir(dest.parent) == []


def _reference_href(bagpath: str, mets_path: str) -> str:
    """What href computed before its shortcut for plain paths."""
    rel = os.path.relpath(bagpath, PurePosixPath(mets_path).parent.as_posix())
    return quote(PurePosixPath(rel).as_posix(), safe="/")


PART = st.one_of(st.sampled_from(["data", "metadata", "objects", ".", "..", "", ".hidden", "a-b_c~d.e"]),
                 st.text(alphabet="ab.-_~ %é/", min_size=1, max_size=6))


@settings(max_examples=300, deadline=None)
@given(st.lists(PART, min_size=1, max_size=5),
       st.sampled_from(["data/metadata/mets.xml", "mets.xml", "data/mets.xml", "a/../b/mets.xml", "./x/mets.xml"]))
def test_href_of_any_path_is_what_relpath_and_quote_give(parts, mets_path):
    bagpath = "/".join(parts)
    if not bagpath.strip("/"):
        return
    assert mets.href(bagpath, mets_path) == _reference_href(bagpath, mets_path)


def test_href_of_plain_paths():
    assert mets.href("data/metadata/mets.xml") == "mets.xml"
    assert mets.href("data/metadata") == "."
    assert mets.href("data/metadataX/a.xml") == "../metadataX/a.xml"
    assert mets.href("data/objects/originals/p/001.jpg") == "../objects/originals/p/001.jpg"
    assert mets.href("other/x.tif") == "../../other/x.tif"


XML_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff",
                                          whitelist_characters="\t\n\r&<>\"']]>", min_codepoint=0x20),
                   min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(XML_TEXT)
def test_premis_values_come_back_exactly_from_the_markup(text):
    p = lambda path: "/".join(f"{{{premis.NS['premis']}}}{name}" for name in path.split("/"))  # noqa: E731
    agent = Agent(id=text, name=text, type="software", version=text, note=text)
    event = premis.event_element(Event(id="e", type="validation", datetime=text, detail=text, outcome_detail=text,
                                       agents=((agent, "executing program"),), extra={"k": text}))
    assert event.findtext(p("eventDetailInformation/eventDetail")) == text
    assert [n.text for n in event.iter(p("eventOutcomeDetailNote"))] == [text, f"k: {text}"]
    assert event.findtext(p("linkingAgentIdentifier/linkingAgentIdentifierValue")) == text
    element = premis.agent_element(agent)
    assert [element.findtext(p(name)) for name in ("agentName", "agentVersion", "agentNote")] == [text] * 3
    info = FileInfo(ORIGINAL, "data/x", 1, {"sha256": text}, id=text, original_name=text, format_name=text)
    obj = premis.object_element(info)
    assert [obj.findtext(f".//{p(name)}") for name in ("objectIdentifierValue", "messageDigest", "formatName",
                                                       "originalName")] == [text] * 4


@pytest.mark.parametrize("bad", ["\x00", "a\x01b", "\ud800", "\ufffe"])
def test_premis_refuses_what_xml_cannot_hold_as_lxml_does(bad):
    with pytest.raises(ValueError):
        premis.agent_element(Agent(id="a", name=bad, type="software"))


def test_empty_premis_values_are_written_as_built_elements_write_them():
    """An element given the text "" is written <a></a> by lxml, a parsed <a></a> as <a/>: the
    markup marks such elements so that both write the same bytes."""
    written = etree.tostring(premis.agent_element(Agent(id="a", name="", type="")))
    assert b"<premis:agentName></premis:agentName>" in written and b"pipeline-empty-text" not in written
    built = etree.Element("a")
    etree.SubElement(built, "b").text = ""
    assert etree.tostring(built) == b"<a><b></b></a>"


def test_a_premis_value_over_ten_megabytes_is_kept_whole():
    """libxml2 refuses one text over 10 MB unless told otherwise; the old element-built PREMIS
    had no such limit, and neither has the markup's parser."""
    text = "Khojaly " * 1_500_000          # 12 MB
    event = premis.event_element(Event(id="e", type="validation", datetime="2026-01-01", detail=text))
    assert event.findtext(f".//{{{premis.NS['premis']}}}eventDetail") == text
