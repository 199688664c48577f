"""PREMIS 3 builders: objects, events, agents, each an lxml element ready to wrap in METS.

Controlled values carry `authority`, `authorityURI` and `valueURI` from the Library of Congress
preservation vocabularies (https://id.loc.gov/vocabulary/preservation/).  The URIs are the
vocabularies' concept URIs (`http://id.loc.gov/vocabulary/preservation/eventType/nor`), which
the `.html` pages of id.loc.gov describe; a label the vocabulary does not hold is written as
text without a URI, never guessed.

`event_element` and `agent_element` are public: the fixity audit exports its checks with them.
"""
from __future__ import annotations

import json
from typing import Iterable, Mapping, Optional

from lxml import etree

from .model import Agent, Event, FileInfo, PRESERVATION
from .xmlio import NS

VOCAB = "http://id.loc.gov/vocabulary/preservation/"
PREMIS_VERSION = "3.0"

# label -> code in each vocabulary used here
EVENT_TYPES = {
    "capture": "cap", "creation": "cre", "ingestion": "ing", "message digest calculation": "mes",
    "format identification": "for", "validation": "val", "normalization": "nor",
    "migration": "mig", "fixity check": "fix", "virus check": "vir", "replication": "rep",
    "metadata extraction": "mee", "deletion": "del", "unpacking": "unp",
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


def _q(name: str) -> str:
    return f"{{{NS['premis']}}}{name}"


def _sub(parent: etree._Element, name: str, text: Optional[str] = None, **attrib: str) -> etree._Element:
    el = etree.SubElement(parent, _q(name), attrib)
    if text is not None:
        el.text = text
    return el


def _controlled(parent: etree._Element, name: str, vocabulary: str, label: str,
                codes: Mapping[str, str]) -> etree._Element:
    """A PREMIS element with authority attributes when `label` is in the vocabulary."""
    code = codes.get(label)
    if code is None:
        return _sub(parent, name, label)
    return _sub(parent, name, label, authority=vocabulary, authorityURI=VOCAB + vocabulary,
                valueURI=f"{VOCAB}{vocabulary}/{code}")


def _identifier(parent: etree._Element, name: str, id_type: str, value: str) -> etree._Element:
    el = _sub(parent, name)
    _sub(el, f"{name}Type", id_type)
    _sub(el, f"{name}Value", value)
    return el


def agent_key(agent: Agent) -> str:
    return agent.id or f"{agent.type}:{agent.name}/{agent.version}"


def object_element(info: FileInfo, *, sources: Iterable[str] = (), derivatives: Iterable[str] = (),
                   derivation_event: str = "", events: Iterable[str] = ()) -> etree._Element:
    """premis:object xsi:type=premis:file for one file of the package.

    `sources` / `derivatives`: object ids this file was derived from / that derive from it
    (relationship derivation, has source / is source of), optionally through `derivation_event`.
    `events`: ids of the events that concern this file (linkingEventIdentifier).
    """
    obj = etree.Element(_q("object"), {f"{{{NS['xsi']}}}type": "premis:file", "version": PREMIS_VERSION},
                        nsmap={"premis": NS["premis"], "xsi": NS["xsi"]})
    _identifier(obj, "objectIdentifier", OBJECT_ID_TYPE, info.id)
    chars = _sub(obj, "objectCharacteristics")
    _sub(chars, "compositionLevel", "0")
    for alg in sorted(info.checksums):
        label, code = HASH_FUNCTIONS.get(alg, (alg, ""))
        fixity = _sub(chars, "fixity")
        algo = _sub(fixity, "messageDigestAlgorithm", label)
        if code:
            algo.attrib.update({"authority": "cryptographicHashFunctions",
                                "authorityURI": VOCAB + "cryptographicHashFunctions",
                                "valueURI": f"{VOCAB}cryptographicHashFunctions/{code}"})
        _sub(fixity, "messageDigest", info.checksums[alg])
    _sub(chars, "size", str(info.size))
    fmt = _sub(chars, "format")
    if info.format_name or not info.pronom:
        designation = _sub(fmt, "formatDesignation")
        _sub(designation, "formatName", info.format_name or info.mimetype or "unknown")
        if info.format_version:
            _sub(designation, "formatVersion", info.format_version)
    if info.pronom:
        registry = _sub(fmt, "formatRegistry")
        _sub(registry, "formatRegistryName", "PRONOM")
        _sub(registry, "formatRegistryKey", info.pronom)
    if info.original_name and info.role != PRESERVATION:   # a master was never received under a name
        _sub(obj, "originalName", info.original_name)
    for subtype, related in (("has source", list(sources)), ("is source of", list(derivatives))):
        if not related:
            continue
        rel = _sub(obj, "relationship")
        _sub(rel, "relationshipType", "derivation", authority="relationshipType",
             authorityURI=VOCAB + "relationshipType", valueURI=f"{VOCAB}relationshipType/der")
        _controlled(rel, "relationshipSubType", "relationshipSubType", subtype, RELATIONSHIP_SUBTYPES)
        for oid in related:
            _identifier(rel, "relatedObjectIdentifier", OBJECT_ID_TYPE, oid)
        if derivation_event:
            _identifier(rel, "relatedEventIdentifier", OBJECT_ID_TYPE, derivation_event)
    for eid in events:
        _identifier(obj, "linkingEventIdentifier", OBJECT_ID_TYPE, eid)
    return obj


def _note(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def event_element(event: Event, default_objects: Iterable[tuple[str, str]] = ()) -> etree._Element:
    """premis:event for a model.Event: type, date, detail, outcome (with notes), agents, objects.

    `extra` entries (e.g. the pixel digests of a normalization proof) become outcome detail notes
    `key: value`, sorted by key.  `default_objects` are linked when the event names none.
    """
    ev = etree.Element(_q("event"), {"version": PREMIS_VERSION}, nsmap={"premis": NS["premis"]})
    _identifier(ev, "eventIdentifier", OBJECT_ID_TYPE, event.id)
    _controlled(ev, "eventType", "eventType", event.type, EVENT_TYPES)
    _sub(ev, "eventDateTime", event.datetime)
    if event.detail:
        _sub(_sub(ev, "eventDetailInformation"), "eventDetail", event.detail)
    outcome = _sub(ev, "eventOutcomeInformation")
    _controlled(outcome, "eventOutcome", "eventOutcome", event.outcome, EVENT_OUTCOMES)
    notes = [event.outcome_detail] if event.outcome_detail else []
    notes += [f"{key}: {_note(event.extra[key])}" for key in sorted(event.extra)]
    for note in notes:
        _sub(_sub(outcome, "eventOutcomeDetail"), "eventOutcomeDetailNote", note)
    for agent, role in event.agents:
        link = _identifier(ev, "linkingAgentIdentifier", AGENT_ID_TYPE, agent_key(agent))
        if role:
            _controlled(link, "linkingAgentRole", "eventRelatedAgentRole", role, AGENT_ROLES)
    for oid, role in (event.objects or tuple(default_objects)):
        link = _identifier(ev, "linkingObjectIdentifier", OBJECT_ID_TYPE, oid)
        if role:
            _controlled(link, "linkingObjectRole", "eventRelatedObjectRole", role, OBJECT_ROLES)
    return ev


def agent_element(agent: Agent) -> etree._Element:
    """premis:agent for a model.Agent."""
    el = etree.Element(_q("agent"), {"version": PREMIS_VERSION}, nsmap={"premis": NS["premis"]})
    _identifier(el, "agentIdentifier", AGENT_ID_TYPE, agent_key(agent))
    _sub(el, "agentName", agent.name)
    _controlled(el, "agentType", "agentType", agent.type, AGENT_TYPES)
    if agent.version:
        _sub(el, "agentVersion", agent.version)
    if agent.note:
        _sub(el, "agentNote", agent.note)
    return el
