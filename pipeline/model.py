"""The package model: frozen records that every stage reads and replaces, never mutates.

A stage receives a `Package` and returns a new one (`dataclasses.replace`).  Per-item work is a
plain function `Item -> Item` so that the executor can run it in another process or on a Dask
worker.  Everything here must stay picklable.

Paths:
  * `Item.relpath`, `Record.path`: POSIX paths relative to the collection folder in `ingest/`.
  * `FileInfo.bagpath`: POSIX path relative to the bag root (`data/objects/originals/...`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import Problem

# Roles of files in a package; they are also the METS fileGrp USE values.
ORIGINAL = "original"
PRESERVATION = "preservation"
METADATA = "metadata"


@dataclass(frozen=True)
class Agent:
    """A PREMIS agent: the software, the organization, or a person."""

    id: str                      # deterministic identifier value, e.g. "software:Pillow/13.0.0"
    name: str
    type: str                    # "software" | "organization" | "person"
    version: str = ""
    note: str = ""


@dataclass(frozen=True)
class Event:
    """A PREMIS event.  `type` uses the id.loc.gov eventType label (e.g. "normalization")."""

    id: str                      # deterministic UUID string from Context.make_id
    type: str                    # ingestion, message digest calculation, format identification,
                                 # validation, normalization, fixity check, ...
    datetime: str                # ISO 8601 from Context.now()
    detail: str = ""
    outcome: str = "success"     # "success" | "failure" | "warning"
    outcome_detail: str = ""
    agents: tuple[tuple[Agent, str], ...] = ()  # (agent, role label e.g. "executing program")
    objects: tuple[tuple[str, str], ...] = ()   # (object id, role "source" | "outcome")
    extra: Mapping[str, Any] = field(default_factory=dict)  # stage-specific machine data


@dataclass(frozen=True)
class FileInfo:
    """A file that is (or will be) in the bag."""

    role: str                    # ORIGINAL | PRESERVATION | METADATA
    bagpath: str                 # relative to bag root, POSIX, e.g. data/objects/originals/a.jpg
    size: int
    checksums: Mapping[str, str]  # algorithm ("sha256", "sha512") -> lower-case hex
    id: str = ""                 # deterministic object identifier (UUID string)
    mimetype: str = ""
    format_name: str = ""
    format_version: str = ""
    pronom: str = ""             # PRONOM PUID, e.g. fmt/43, "" when unknown
    original_name: str = ""      # the name as received (relative to the collection)
    technical: Mapping[str, Any] = field(default_factory=dict)  # width, height, mode, bits, icc...


@dataclass(frozen=True)
class Record:
    """A metadata record as received: a JSON sidecar, a CSV row, or the collection record."""

    path: str                    # relative to the collection, e.g. "a/b.json" or "metadata.csv"
    data: Mapping[str, Any]      # the record as parsed (CSV rows already turned into this shape)
    row: int | None = None       # CSV row number (1 = first data row), None for JSON
    loaded: bool = True          # False: a sidecar paired by name, not read yet (data empty); the
                                 # validate stage reads it, one item at a time in its workers


@dataclass(frozen=True)
class Item:
    """One photograph with its record and, as stages run, its files and events."""

    id: str                      # deterministic UUID string (collection id + relpath)
    relpath: str                 # image path relative to the collection
    record: Record | None
    image: Mapping[str, Any] = field(default_factory=dict)  # what validation learnt from content:
                                 # mimetype, pronom, format_name, width, height, mode, frames, exif...
    original: FileInfo | None = None
    masters: tuple[FileInfo, ...] = ()
    events: tuple[Event, ...] = ()
    problems: tuple[Problem, ...] = ()
    metadata: tuple[FileInfo, ...] = ()  # this item's own metadata files: its record as received
                                 # (a JSON sidecar) and its Dublin Core records, once written

    @property
    def identifier(self) -> str:
        return str(self.record.data.get("identifier", "")) if self.record else ""

    def objects(self) -> list[FileInfo]:
        """The item's content files: its original and its masters."""
        return ([self.original] if self.original else []) + list(self.masters)


@dataclass(frozen=True)
class Package:
    """One collection on its way to one (or, split by size, several) bags."""

    name: str                    # collection folder name, also the bag's base name
    source: Path                 # the collection folder in ingest/ (never written)
    collection: Record | None
    items: tuple[Item, ...] = ()
    records: tuple[Record, ...] = ()          # the record files no item carries, by path (data left
                                              # empty): collection.json, metadata.csv, sidecars paired
                                              # with no image; an item's own sidecar is on its Item only
    metadata_files: tuple[FileInfo, ...] = ()  # the collection's DC, the METS, records that are not
                                               # one item's (collection.json, metadata.csv), once written
    events: tuple[Event, ...] = ()             # collection-level events
    agents: tuple[Agent, ...] = ()
    problems: tuple[Problem, ...] = ()         # collection-level problems (pairing, duplicates...)
    stages_done: tuple[str, ...] = ()
    published: tuple[str, ...] = ()           # names in output/ the package stage published

    @property
    def all_problems(self) -> list[Problem]:
        out = list(self.problems)
        kept = getattr(self.items, "item_problems", None)     # an ItemStore answers from memory
        for problems in (kept() if kept else (item.problems for item in self.items)):
            out.extend(problems)
        return out

    def metadata(self) -> Iterator[FileInfo]:
        """Every metadata file of the package: each item's own, in item order, then the package's."""
        for item in self.items:
            yield from item.metadata
        yield from self.metadata_files

    def payload(self) -> Iterator[FileInfo]:
        """Every file in the bag's payload, one item at a time (items in order, each item's
        objects then its metadata; then the package's metadata files), without the items'
        `technical` metadata (the METS's, read from the items)."""
        for item in self.items:
            for f in item.objects():
                yield replace(f, technical={}) if f.technical else f
            yield from item.metadata
        yield from self.metadata_files


def software_agent(name: str, version: str, note: str = "") -> Agent:
    return Agent(id=f"software:{name}/{version}", name=name, type="software", version=version, note=note)


def pipeline_agent() -> Agent:
    from . import __version__
    return software_agent("preservation-pipeline", __version__)
