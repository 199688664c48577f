"""Dublin Core: the mapping from caption and collection records, and the two record writers.

One mapping produces both serialisations, so they can never disagree:
  * `oai_dc`: the 15 simple elements in an `oai_dc:dc` container (OAI-PMH 2.0), what harvesters
    and most repositories ingest;
  * qualified `dcterms`, with `xsi:type` where a DCMI encoding scheme applies (W3CDTF, DCMIType,
    IMT, URI, RFC4646), in a `qdc:qualifieddc` container whose type is the official
    `dcterms:elementOrRefinementContainer` (see xmlio.NS["qdc"] and the README).

A `Term` is one statement: the simple element, the dcterms element, the value, the scheme, the
language, and the record field it came from (a JSON pointer, for problems).  A term with
`dc=None` is only written in the qualified record.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Any, Iterable, Mapping, NamedTuple, Optional

from lxml import etree

from .xmlio import NS, SCHEMA_LOCATIONS, xml_char_problem


class Term(NamedTuple):
    dc: Optional[str]          # simple DC element name, None = qualified record only
    dcterms: str               # dcterms element name
    value: str
    scheme: str = ""           # DCMI encoding scheme for xsi:type, e.g. "W3CDTF"
    lang: str = ""             # xml:lang
    field: str = ""            # JSON pointer of the record field


MONTHS = {m: i for i, m in enumerate(
    ("january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december"), start=1)}
# W3CDTF as dcterms.xsd types it (xs:gYear, gYearMonth, date, dateTime): no year 0000, offsets
# within +-14:00; the day is checked against the calendar in `date_scheme`.
W3CDTF = re.compile(r"^(?!0000)\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
                    r"(T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))?)?)?)?$")
EDTF = re.compile(r"^-?\d{4}(-\d{2}(-\d{2})?)?[?~%]?(/(-?\d{4}(-\d{2}(-\d{2})?)?[?~%]?|\.\.)?)?$")
_WORDED = re.compile(r"^(?:(?P<d1>\d{1,2})\s+)?(?P<month>[A-Za-z]+)\.?\s+(?:(?P<d2>\d{1,2}),?\s+)?(?P<year>\d{4})$")


def normalize_date(text: str) -> str:
    """A date as W3CDTF or EDTF: `1992-02` stays, `February 1992` -> `1992-02`,
    `26 February 1992` / `February 26, 1992` -> `1992-02-26`; anything else is returned as given."""
    text = " ".join(str(text).split())
    if EDTF.match(text):
        return text
    m = _WORDED.match(text)
    if m and m.group("month").lower() in MONTHS:
        out = f"{m.group('year')}-{MONTHS[m.group('month').lower()]:02d}"
        day = m.group("d1") or m.group("d2")
        return f"{out}-{int(day):02d}" if day else out
    return text


def date_scheme(value: str) -> str:
    """"W3CDTF" when the value is a plain W3CDTF date (the xsi:type applies), else ""."""
    if not W3CDTF.match(value):
        return ""
    try:
        if len(value) >= 10:
            date.fromisoformat(value[:10])      # a day the calendar has
    except ValueError:
        return ""
    return "W3CDTF"


def _values(data: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    """(value, JSON pointer) for a field that may be a string or a list of strings."""
    raw = data.get(key)
    if raw is None or raw == "":
        return []
    if isinstance(raw, (list, tuple)):
        return [(str(v), f"/{key}/{i}") for i, v in enumerate(raw) if v not in (None, "")]
    return [(str(raw), f"/{key}")]


def _first(data: Mapping[str, Any], key: str) -> str:
    values = _values(data, key)
    return values[0][0] if values else ""


def _simple(data: Mapping[str, Any], key: str, dc: str, dcterms: Optional[str] = None,
            lang: str = "") -> list[Term]:
    return [Term(dc, dcterms or dc, v, "", lang, ptr) for v, ptr in _values(data, key)]


def _language(data: Mapping[str, Any]) -> list[Term]:
    return [Term("language", "language", v, "RFC4646", "", ptr) for v, ptr in _values(data, "language")]


def item_terms(data: Mapping[str, Any], collection: Mapping[str, Any], master_mimetype: str = "",
               extent: str = "") -> list[Term]:
    """The DC statements of one photograph (the README's mapping table, in order)."""
    lang = _first(data, "language") or _first(collection, "language") or "und"
    terms = _simple(data, "identifier", "identifier") + _simple(data, "title", "title")
    terms += _simple(data, "creator", "creator") + _simple(data, "subjects", "subject")
    terms += _simple(data, "caption", "description", lang=lang) + _simple(data, "notes", "description")
    for value, ptr in _values(data, "date"):
        normal = normalize_date(value)
        terms.append(Term("date", "created", normal, date_scheme(normal), "", ptr))
    terms += _simple(data, "date_original", "date")
    place = [v for v, _ in _values(data, "place")]
    if place:
        terms.append(Term("coverage", "spatial", ", ".join(place), "", "", "/place"))
    terms.append(Term("type", "type", "StillImage", "DCMIType"))
    if master_mimetype:
        terms.append(Term("format", "format", master_mimetype, "IMT"))
    if extent:
        terms.append(Term(None, "extent", extent))
    terms += _language(data)
    terms += _simple(data if data.get("rights") else collection, "rights", "rights")
    terms += _simple(data, "source", "source")
    ident = _first(collection, "identifier")
    if ident:
        terms.append(Term("relation", "isPartOf", ident, "URI" if _is_uri(ident) else "", "", ""))
    return terms


def collection_terms(data: Mapping[str, Any], item_count: int) -> list[Term]:
    """The DC statements of the collection."""
    lang = _first(data, "language") or "und"
    terms = _simple(data, "identifier", "identifier") + _simple(data, "title", "title")
    terms += _simple(data, "creator", "creator") + _simple(data, "subjects", "subject")
    terms += _simple(data, "description", "description", lang=lang)
    for key, dcterms in (("date", "created"), ("published", "issued")):
        for value, ptr in _values(data, key):
            normal = normalize_date(value)
            terms.append(Term("date", dcterms, normal, date_scheme(normal), "", ptr))
    publisher = organization_name(data)
    if publisher:
        terms.append(Term("publisher", "publisher", publisher, "", "", "/organization/name"))
    terms.append(Term("type", "type", "Collection", "DCMIType"))
    terms.append(Term(None, "extent", f"{item_count} photograph{'s' if item_count != 1 else ''}"))
    terms += _language(data)
    terms += _simple(data, "rights", "rights") + _simple(data, "source", "source")
    return terms


def organization_name(collection: Mapping[str, Any]) -> str:
    """The keeping organization's name: `organization.name`, or `organization` given as text."""
    org = collection.get("organization")
    return str(org.get("name") or "") if isinstance(org, Mapping) else str(org or "")


def _is_uri(value: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", value))


def text_problems(terms: Iterable[Term]) -> list[tuple[str, str]]:
    """(field, reason) for every value XML 1.0 cannot hold; such terms must not be written."""
    out = []
    for term in terms:
        reason = xml_char_problem(term.value)
        if reason:
            out.append((term.field, reason))
    return out


def _element(parent: etree._Element, ns: str, name: str, term: Term) -> None:
    el = etree.SubElement(parent, f"{{{NS[ns]}}}{name}")
    el.text = term.value
    if term.lang:
        el.set(f"{{{NS['xml']}}}lang", term.lang)
    if term.scheme and ns == "dcterms":
        el.set(f"{{{NS['xsi']}}}type", f"dcterms:{term.scheme}")


def oai_dc(terms: Iterable[Term]) -> etree._Element:
    """An `oai_dc:dc` record of the simple elements, with its schemaLocation."""
    root = etree.Element(f"{{{NS['oai_dc']}}}dc",
                         nsmap={"oai_dc": NS["oai_dc"], "dc": NS["dc"], "xsi": NS["xsi"]})
    root.set(f"{{{NS['xsi']}}}schemaLocation", f"{NS['oai_dc']} {SCHEMA_LOCATIONS[NS['oai_dc']]}")
    for term in terms:
        if term.dc:
            _element(root, "dc", term.dc, term)
    return root


def qualified_dc(terms: Iterable[Term]) -> etree._Element:
    """A qualified DC record: `qdc:qualifieddc` holding dcterms elements with encoding schemes."""
    root = etree.Element(f"{{{NS['qdc']}}}qualifieddc",
                         nsmap={"qdc": NS["qdc"], "dcterms": NS["dcterms"], "xsi": NS["xsi"]})
    root.set(f"{{{NS['xsi']}}}schemaLocation", f"{NS['dcterms']} {SCHEMA_LOCATIONS[NS['dcterms']]}")
    for term in terms:
        _element(root, "dcterms", term.dcterms, term)
    return root
