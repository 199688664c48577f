"""A bag's audit history as PREMIS 3: one `fixity check` event per finished fixity audit, one
`deaccession` event per retirement.

The document holds the bag as an intellectual entity, one event per full or rolling audit
(eventType "fixity check" with its id.loc.gov URI, outcome success or failure, a note per problem),
one per retirement recorded by `pipeline fixity --retire` (eventType "deaccession", its detail the
reason given), in time order, and the software agent.  Completeness-only (`--fast`) audits
computed no checksum, and interrupted ones did not finish: neither is exported as a fixity check.
Identifiers are UUIDv5 over the bag's location and the audit's number and start (a retirement's
time), so exporting twice gives the same document.
"""
from __future__ import annotations

import uuid
from typing import Iterable, Mapping, Optional

from lxml import etree

from ..model import Event, pipeline_agent
from ..premis import OBJECT_ID_TYPE, PREMIS_VERSION, agent_element, event_element
from ..stage import ID_NAMESPACE
from ..xmlio import NS, xml_safe
from .registry import AuditRow, Check


def _id(*parts: object) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(["fixity", *map(str, parts)])))


def bag_object_id(location: str) -> str:
    return _id("bag", location)


def _event(row: AuditRow, problems: Iterable[Check], agent) -> Event:
    scope = ("every file" if row.mode == "full"
             else f"a rolling share ({row.files_checked} of {row.files_total} files)")
    detail = (f"pipeline fixity: {scope} of bag {row.name} re-hashed with {row.algorithms or 'no algorithm'} "
              f"and compared with its manifests and tag manifests; {row.files_checked} files, "
              f"{row.bytes_checked} bytes")
    notes = [f"{c.path or '.'}: {c.reason} [{c.code}]" for c in problems]
    return Event(id=_id("audit", row.location, row.id, row.started), type="fixity check", datetime=row.started,
                 detail=xml_safe(detail), outcome="success" if row.outcome == "intact" else "failure",
                 outcome_detail=xml_safe("; ".join(notes)) if notes else f"{row.files_checked} files intact",
                 agents=((agent, "executing program"),), objects=((bag_object_id(row.location), "source"),))


def _retirement(location: str, name: str, when: str, reason: str, revived: Optional[str], agent) -> Event:
    note = f"retirement recorded by pipeline fixity --retire: bag {name} no longer expected at {location}"
    if revived:
        note += f"; found there again {revived} and audited from then on as a new life"
    return Event(id=_id("retirement", location, when), type="deaccession", datetime=when, detail=xml_safe(reason),
                 outcome="success", outcome_detail=xml_safe(note),
                 agents=((agent, "executing program"),), objects=((bag_object_id(location), "source"),))


def premis_document(location: str, name: str, audits: Iterable[AuditRow], problems: Mapping[int, list[Check]],
                    retirements: Iterable[tuple[str, str, Optional[str]]] = ()) -> etree._ElementTree:
    """`premis:premis` with the bag object, its fixity-check and deaccession events (`retirements`:
    (retired, reason, revived) as Registry.retirements gives them) and the agent."""
    q = lambda tag: f"{{{NS['premis']}}}{tag}"  # noqa: E731
    root = etree.Element(q("premis"), {"version": PREMIS_VERSION}, nsmap={"premis": NS["premis"], "xsi": NS["xsi"]})
    obj = etree.SubElement(root, q("object"), {f"{{{NS['xsi']}}}type": "premis:intellectualEntity"})
    ident = etree.SubElement(obj, q("objectIdentifier"))
    etree.SubElement(ident, q("objectIdentifierType")).text = OBJECT_ID_TYPE
    etree.SubElement(ident, q("objectIdentifierValue")).text = bag_object_id(location)
    alt = etree.SubElement(obj, q("originalName"))
    alt.text = xml_safe(name)     # a name may hold control characters XML cannot
    agent = pipeline_agent()
    # in time order; within one second a retirement follows the audits (as --history shows them)
    events = [(row.started, 0, _event(row, problems.get(row.id, []), agent)) for row in audits
              if row.mode != "fast" and row.outcome is not None]
    events += [(when, 1, _retirement(location, name, when, reason, revived, agent))
               for when, reason, revived in retirements]
    for _, _, event in sorted(events, key=lambda e: e[:2]):
        root.append(event_element(event))
    root.append(agent_element(agent))
    return etree.ElementTree(root)


