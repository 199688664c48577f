"""Dublin Core mapping and writers; every record written is validated against the official XSDs."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from lxml import etree

from pipeline import dc
from pipeline.xmlio import NS, load_schema, validation_errors

COLLECTION = {"identifier": "khojaly-1992", "title": "Khojaly", "organization": {"name": "Example Archive"},
              "description": "Photographs.", "language": "en", "published": "2017-02-25"}
RECORD = {"identifier": "kh-003", "date": "1992-03", "date_original": "March 1992",
          "place": ["Azerbaijan", "Road between Khojaly and Agdam"], "title": "Road",
          "caption": "A survivor grasps onto a photograph of his missing son.",
          "creator": "Reza Deghati", "subjects": ["Khojaly massacre"], "language": "en",
          "rights": "All rights reserved", "source": "Essay, photograph 3", "notes": "Scanned print."}


def _texts(root, tag):
    ns, name = tag.split(":")
    return [el.text for el in root.iter(f"{{{NS[ns]}}}{name}")]


@pytest.mark.parametrize("given_, expected", [
    ("February 1992", "1992-02"), ("26 February 1992", "1992-02-26"), ("February 26, 1992", "1992-02-26"),
    ("1992-02", "1992-02"), ("1992", "1992"), ("1992?", "1992?"), ("1992~", "1992~"),
    ("1992-02/1992-03", "1992-02/1992-03"), ("  march   1992 ", "1992-03"), ("spring 1992", "spring 1992"),
])
def test_normalize_date(given_, expected):
    assert dc.normalize_date(given_) == expected


@pytest.mark.parametrize("value, scheme", [("1992", "W3CDTF"), ("1992-02", "W3CDTF"), ("1992-02-26", "W3CDTF"),
                                           ("1992?", ""), ("1992-02/1992-03", ""), ("1992-13", "")])
def test_w3cdtf_scheme_only_for_plain_dates(value, scheme):
    assert dc.date_scheme(value) == scheme


def test_item_mapping_keeps_place_whole_caption_verbatim_and_original_date():
    terms = dc.item_terms(RECORD, COLLECTION, "image/tiff", "8 x 6 pixels")
    simple = dc.oai_dc(terms)
    assert _texts(simple, "dc:coverage") == ["Azerbaijan, Road between Khojaly and Agdam"]
    assert _texts(simple, "dc:date") == ["1992-03", "March 1992"]
    assert _texts(simple, "dc:type") == ["StillImage"]
    assert _texts(simple, "dc:format") == ["image/tiff"]
    assert _texts(simple, "dc:relation") == ["khojaly-1992"]
    caption = simple.find(f"{{{NS['dc']}}}description")
    assert caption.text == RECORD["caption"]
    assert caption.get(f"{{{NS['xml']}}}lang") == "en"
    qualified = dc.qualified_dc(terms)
    created = qualified.find(f"{{{NS['dcterms']}}}created")
    assert (created.text, created.get(f"{{{NS['xsi']}}}type")) == ("1992-03", "dcterms:W3CDTF")
    assert _texts(qualified, "dcterms:spatial") == ["Azerbaijan, Road between Khojaly and Agdam"]
    assert _texts(qualified, "dcterms:isPartOf") == ["khojaly-1992"]
    assert _texts(qualified, "dcterms:extent") == ["8 x 6 pixels"]
    assert _texts(qualified, "dcterms:date") == ["March 1992"]


def test_caption_language_falls_back_to_the_collection_then_und():
    record = {k: v for k, v in RECORD.items() if k != "language"}
    lang = f"{{{NS['xml']}}}lang"
    assert dc.oai_dc(dc.item_terms(record, COLLECTION)).find(f"{{{NS['dc']}}}description").get(lang) == "en"
    assert dc.oai_dc(dc.item_terms(record, {})).find(f"{{{NS['dc']}}}description").get(lang) == "und"


def test_uncertain_date_is_written_without_w3cdtf_type(xsd_dir):
    terms = dc.item_terms(dict(RECORD, date="1992?"), COLLECTION)
    created = dc.qualified_dc(terms).find(f"{{{NS['dcterms']}}}created")
    assert created.text == "1992?" and created.get(f"{{{NS['xsi']}}}type") is None
    assert validation_errors(dc.qualified_dc(terms), load_schema(xsd_dir)) == []


@pytest.mark.parametrize("value", ["0000", "0000-01-01", "1993-02-29", "1992-02-26T10:00:00+15:00",
                                   "1992-02-26T10:00:00-23:59", "1992-02-26T10:00:00+14:00", "1992-02-29"])
def test_w3cdtf_type_only_where_the_schema_takes_the_value(xsd_dir, value):
    """Year 0000 and offsets beyond 14 hours are no XSD dates: typed W3CDTF they made the record
    invalid; they are written untyped.  Every typed value validates against dcterms.xsd."""
    terms = dc.item_terms(dict(RECORD, date=value), COLLECTION)
    created = dc.qualified_dc(terms).find(f"{{{NS['dcterms']}}}created")
    assert created.text == value
    assert validation_errors(dc.qualified_dc(terms), load_schema(xsd_dir)) == []


def test_item_without_caption_has_no_description_from_it():
    record = {k: v for k, v in RECORD.items() if k not in ("caption", "notes")}
    assert _texts(dc.oai_dc(dc.item_terms(record, COLLECTION)), "dc:description") == []


def test_collection_mapping(xsd_dir):
    terms = dc.collection_terms(COLLECTION, 20)
    simple, qualified = dc.oai_dc(terms), dc.qualified_dc(terms)
    assert _texts(simple, "dc:publisher") == ["Example Archive"]
    assert _texts(simple, "dc:type") == ["Collection"]
    assert _texts(qualified, "dcterms:issued") == ["2017-02-25"]
    assert _texts(qualified, "dcterms:extent") == ["20 photographs"]
    schema = load_schema(xsd_dir)
    assert validation_errors(simple, schema) == []
    assert validation_errors(qualified, schema) == []


def test_both_records_validate_against_the_official_schemas(xsd_dir):
    schema = load_schema(xsd_dir)
    terms = dc.item_terms(RECORD, COLLECTION, "image/tiff", "8 x 6 pixels")
    assert validation_errors(dc.oai_dc(terms), schema) == []
    assert validation_errors(dc.qualified_dc(terms), schema) == []


def test_describe_xml_char_is_reported_not_raised():
    terms = dc.item_terms(dict(RECORD, caption="bad \x07 bell"), COLLECTION)
    assert dc.text_problems(terms) == [("/caption", "character U+0007 at position 4 cannot be written in XML 1.0")]


captions = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300) | st.sampled_from([
    "\u0645\u0633\u062c\u062f \u0622\u063a\u062f\u0627\u0645",      # right-to-left (Arabic)
    "brother\u00eds", "x" * 20000, "tab\tnew\nline\r", "\u202eoverride", "\ufeffbom",
])


@settings(max_examples=60, deadline=None)
@given(caption=captions)
def test_any_caption_is_either_refused_or_written_verbatim_and_valid(caption, xsd_dir):
    terms = dc.item_terms(dict(RECORD, caption=caption), COLLECTION)
    if dc.text_problems(terms):
        assert dc.xml_char_problem(caption)
        return
    schema = load_schema(xsd_dir)
    for build in (dc.oai_dc, dc.qualified_dc):
        data = etree.tostring(build(terms), encoding="UTF-8")
        root = etree.fromstring(data)
        assert validation_errors(root, schema) == []
        if caption:
            described = [el.text or "" for el in root if el.get(f"{{{NS['xml']}}}lang")]
            # verbatim, CR included (lxml writes it as &#13;, which parsers do not normalise)
            assert described == [caption]


def test_item_rights_fall_back_to_the_collection_and_datetimes_are_w3cdtf():
    record = dict(RECORD, date="1992-02-26T10:00:00Z")
    del record["rights"]
    terms = dc.item_terms(record, dict(COLLECTION, rights="Collection rights"))
    assert [t.value for t in terms if t.dc == "rights"] == ["Collection rights"]
    assert [t.scheme for t in terms if t.dcterms == "created"] == ["W3CDTF"]
    assert dc.organization_name({"organization": "Plain"}) == "Plain"
