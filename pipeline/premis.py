"""PREMIS 3 builders: objects, events, agents, each an lxml element ready to wrap in METS.

Controlled values carry `authority`, `authorityURI` and `valueURI` from the Library of Congress
preservation vocabularies (https://id.loc.gov/vocabulary/preservation/).  The URIs are the
vocabularies' concept URIs (`http://id.loc.gov/vocabulary/preservation/eventType/nor`), which
the `.html` pages of id.loc.gov describe; a label the vocabulary does not hold is written as
text without a URI, never guessed.

`event_element` and `agent_element` are public: the fixity audit exports its checks with them.

Each element is written as markup and parsed once (one libxml2 call), about twice as fast as
building it element by element from Python: a METS holds one object per file and several events
per photograph.  Values are escaped so that parsing gives them back exactly (and an empty text
is set after parsing), so lxml writes the result byte for byte as it wrote the elements built
one by one.  The `*_markup` functions give the same markup to the METS writer, which parses a
whole amdSec at once (see mets.amd_sec).
"""
from __future__ import annotations

import json
import re
import threading
from typing import Iterable, Mapping

from lxml import etree

from .model import Agent, Event, FileInfo, PRESERVATION
from .xmlio import NS, safe_parser

VOCAB = "http://id.loc.gov/vocabulary/preservation/"
PREMIS_VERSION = "3.0"

# label -> code in each vocabulary used here
EVENT_TYPES = {
    "capture": "cap", "creation": "cre", "ingestion": "ing", "message digest calculation": "mes",
    "format identification": "for", "validation": "val", "normalization": "nor",
    "migration": "mig", "fixity check": "fix", "virus check": "vir", "replication": "rep",
    "metadata extraction": "mee", "deletion": "del", "unpacking": "unp", "deaccession": "dea",
}
EVENT_OUTCOMES = {"success": "suc", "failure": "fai", "warning": "war"}
AGENT_ROLES = {"executing program": "exe", "implementer": "imp", "authorizer": "aut"}
OBJECT_ROLES = {"source": "sou", "outcome": "out"}
AGENT_TYPES = {"software": "sof", "organization": "org", "person": "per", "hardware": "har"}
HASH_FUNCTIONS = {"md5": ("MD5", "md5"), "sha1": ("SHA-1", "sha1"),
                  "sha256": ("SHA-256", "sha256"), "sha512": ("SHA-512", "sha512")}
RELATIONSHIP_SUBTYPES = {"has source": "hss", "is source of": "iso"}

OBJECT_ID_TYPE = "UUID"
AGENT_ID_TYPE = "preservation-pipeline agent"


_SPECIAL = re.compile('[&<>"\t\n\r]')


def esc(value: str) -> str:
    """Text or attribute value as markup that parses back to exactly `value` (char references
    for the whitespace a parser would otherwise normalize)."""
    if _SPECIAL.search(value) is None:
        return value
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;"))


# Marks an element whose text is "" (set after parsing: an element built with text "" is
# written <a></a>, a parsed <a></a> would be written <a/>).
EMPTY_TEXT = "pipeline-empty-text"


def leaf(out: list[str], tag: str, text: str, attributes: str = "") -> None:
    """An element `tag` (prefixed) holding `text`, added to `out`."""
    if text:
        out.append(f"<{tag}{attributes}>{esc(text)}</{tag}>")
    else:
        out.append(f'<{tag}{attributes} {EMPTY_TEXT}=""/>')


_PARSERS = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's parser (lxml parsers are not shared between threads), with libxml2's 10 MB
    limit on one text lifted: the markup is ours, only the values in it come from the records."""
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = safe_parser(huge_tree=True)
    return parser


def parse_markup(markup: list[str]) -> etree._Element:
    """The element that markup made of `leaf`s and escaped values describes."""
    text = "".join(markup)
    try:
        root = etree.fromstring(text, _parser())
    except etree.XMLSyntaxError as exc:     # a value XML cannot hold, as lxml says when it is set
        raise ValueError(f"All strings must be XML compatible: {exc}") from exc
    if EMPTY_TEXT in text:
        for el in root.iter():
            if el.get(EMPTY_TEXT) is not None:
                del el.attrib[EMPTY_TEXT]
                el.text = ""
    return root


def _authority(vocabulary: str, code: str) -> str:
    """The attributes naming a term of one of the id.loc.gov preservation vocabularies."""
    return f' authority="{vocabulary}" authorityURI="{VOCAB}{vocabulary}" valueURI="{VOCAB}{vocabulary}/{code}"'


def _leaf(out: list[str], name: str, text: str, attributes: str = "") -> None:
    leaf(out, f"premis:{name}", text, attributes)


def _controlled(out: list[str], name: str, vocabulary: str, label: str, codes: Mapping[str, str]) -> None:
    """A PREMIS element with authority attributes when `label` is in the vocabulary."""
    code = codes.get(label)
    _leaf(out, name, label, "" if code is None else _authority(vocabulary, code))


def _identifier(out: list[str], name: str, id_type: str, value: str, role: tuple = ()) -> None:
    """`name` holding `nameType` and `nameValue`, then, given `role` (element, vocabulary,
    label, codes), that controlled role when the label is not empty."""
    out.append(f"<premis:{name}>")
    _leaf(out, f"{name}Type", id_type)
    _leaf(out, f"{name}Value", value)
    if role and role[2]:
        _controlled(out, *role)
    out.append(f"</premis:{name}>")


def agent_key(agent: Agent) -> str:
    return agent.id or f"{agent.type}:{agent.name}/{agent.version}"


def _declared(names: str, declare: bool) -> str:
    return "".join(f' xmlns:{name}="{NS[name]}"' for name in names.split()) if declare else ""


def object_element(info: FileInfo, *, sources: Iterable[str] = (), derivatives: Iterable[str] = (),
                   derivation_event: str = "", events: Iterable[str] = ()) -> etree._Element:
    """premis:object xsi:type=premis:file for one file of the package.

    `sources` / `derivatives`: object ids this file was derived from / that derive from it
    (relationship derivation, has source / is source of), optionally through `derivation_event`.
    `events`: ids of the events that concern this file (linkingEventIdentifier).
    """
    out: list[str] = []
    object_markup(out, info, sources=sources, derivatives=derivatives, derivation_event=derivation_event,
                  events=events)
    return parse_markup(out)


def object_markup(out: list[str], info: FileInfo, *, sources: Iterable[str] = (), derivatives: Iterable[str] = (),
                  derivation_event: str = "", events: Iterable[str] = (), declare: bool = True) -> None:
    """`object_element` as markup added to `out`; without `declare`, for a place where the
    premis and xsi prefixes are declared already."""
    out.append(f'<premis:object{_declared("premis xsi", declare)} xsi:type="premis:file" version="{PREMIS_VERSION}">')
    _identifier(out, "objectIdentifier", OBJECT_ID_TYPE, info.id)
    out.append("<premis:objectCharacteristics><premis:compositionLevel>0</premis:compositionLevel>")
    for alg in sorted(info.checksums):
        label, code = HASH_FUNCTIONS.get(alg, (alg, ""))
        out.append("<premis:fixity>")
        _leaf(out, "messageDigestAlgorithm", label, _authority("cryptographicHashFunctions", code) if code else "")
        _leaf(out, "messageDigest", info.checksums[alg])
        out.append("</premis:fixity>")
    _leaf(out, "size", str(info.size))
    out.append("<premis:format>")
    if info.format_name or not info.pronom:
        out.append("<premis:formatDesignation>")
        _leaf(out, "formatName", info.format_name or info.mimetype or "unknown")
        if info.format_version:
            _leaf(out, "formatVersion", info.format_version)
        out.append("</premis:formatDesignation>")
    if info.pronom:
        out.append("<premis:formatRegistry><premis:formatRegistryName>PRONOM</premis:formatRegistryName>")
        _leaf(out, "formatRegistryKey", info.pronom)
        out.append("</premis:formatRegistry>")
    out.append("</premis:format></premis:objectCharacteristics>")
    if info.original_name and info.role != PRESERVATION:   # a master was never received under a name
        _leaf(out, "originalName", info.original_name)
    for subtype, related in (("has source", list(sources)), ("is source of", list(derivatives))):
        if not related:
            continue
        out.append("<premis:relationship>")
        _leaf(out, "relationshipType", "derivation", _authority("relationshipType", "der"))
        _controlled(out, "relationshipSubType", "relationshipSubType", subtype, RELATIONSHIP_SUBTYPES)
        for oid in related:
            _identifier(out, "relatedObjectIdentifier", OBJECT_ID_TYPE, oid)
        if derivation_event:
            _identifier(out, "relatedEventIdentifier", OBJECT_ID_TYPE, derivation_event)
        out.append("</premis:relationship>")
    for eid in events:
        _identifier(out, "linkingEventIdentifier", OBJECT_ID_TYPE, eid)
    out.append("</premis:object>")


def _note(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def event_element(event: Event, default_objects: Iterable[tuple[str, str]] = ()) -> etree._Element:
    """premis:event for a model.Event: type, date, detail, outcome (with notes), agents, objects.

    `extra` entries (e.g. the pixel digests of a normalization proof) become outcome detail notes
    `key: value`, sorted by key.  `default_objects` are linked when the event names none.
    """
    out: list[str] = []
    event_markup(out, event, default_objects)
    return parse_markup(out)


def event_markup(out: list[str], event: Event, default_objects: Iterable[tuple[str, str]] = (),
                 declare: bool = True) -> None:
    """`event_element` as markup added to `out` (`declare`: see `object_markup`)."""
    out.append(f'<premis:event{_declared("premis", declare)} version="{PREMIS_VERSION}">')
    _identifier(out, "eventIdentifier", OBJECT_ID_TYPE, event.id)
    _controlled(out, "eventType", "eventType", event.type, EVENT_TYPES)
    _leaf(out, "eventDateTime", event.datetime)
    if event.detail:
        out.append("<premis:eventDetailInformation>")
        _leaf(out, "eventDetail", event.detail)
        out.append("</premis:eventDetailInformation>")
    out.append("<premis:eventOutcomeInformation>")
    _controlled(out, "eventOutcome", "eventOutcome", event.outcome, EVENT_OUTCOMES)
    notes = [event.outcome_detail] if event.outcome_detail else []
    notes += [f"{key}: {_note(event.extra[key])}" for key in sorted(event.extra)]
    for note in notes:
        out.append("<premis:eventOutcomeDetail>")
        _leaf(out, "eventOutcomeDetailNote", note)
        out.append("</premis:eventOutcomeDetail>")
    out.append("</premis:eventOutcomeInformation>")
    for agent, role in event.agents:
        _identifier(out, "linkingAgentIdentifier", AGENT_ID_TYPE, agent_key(agent),
                    ("linkingAgentRole", "eventRelatedAgentRole", role, AGENT_ROLES))
    for oid, role in (event.objects or tuple(default_objects)):
        _identifier(out, "linkingObjectIdentifier", OBJECT_ID_TYPE, oid,
                    ("linkingObjectRole", "eventRelatedObjectRole", role, OBJECT_ROLES))
    out.append("</premis:event>")


def agent_element(agent: Agent) -> etree._Element:
    """premis:agent for a model.Agent."""
    out: list[str] = []
    agent_markup(out, agent)
    return parse_markup(out)


def agent_markup(out: list[str], agent: Agent, declare: bool = True) -> None:
    """`agent_element` as markup added to `out` (`declare`: see `object_markup`)."""
    out.append(f'<premis:agent{_declared("premis", declare)} version="{PREMIS_VERSION}">')
    _identifier(out, "agentIdentifier", AGENT_ID_TYPE, agent_key(agent))
    _leaf(out, "agentName", agent.name)
    _controlled(out, "agentType", "agentType", agent.type, AGENT_TYPES)
    if agent.version:
        _leaf(out, "agentVersion", agent.version)
    if agent.note:
        _leaf(out, "agentNote", agent.note)
    out.append("</premis:agent>")
