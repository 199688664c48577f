"""Describe: Dublin Core records, the submitted records as received, and the METS/PREMIS document.

Writes into the bag under construction (`ctx.staging`), in this order, each file hashed while it
is written and returned in `Item.metadata` (an item's own) or `package.metadata_files` (the rest):
  data/metadata/submission/<record path>           byte-identical copies of the records received
  data/metadata/dc/collection.{oai_dc,dcterms}.xml the collection
  data/metadata/dc/items/<image relpath>.{oai_dc,dcterms}.xml   each photograph
  data/metadata/mets.xml                           last, streamed, then checked (metscheck)
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Iterator, Mapping, Optional

from lxml import etree

from .. import dc
from ..bag import is_inside
from ..errors import Problem, errors_in
from ..hashing import copy_hashed, write_hashed
from ..mets import METS_PATH, event_agents, write_mets
from ..itemstore import ItemStore, store_folder
from ..metscheck import check_mets
from ..premis import agent_key
from ..model import Agent, Event, FileInfo, Item, METADATA, Package, pipeline_agent
from ..stage import Context, Stage
from ..xmlio import to_bytes, xml_char_problem

METADATA_DIR = "data/metadata"
DC_DIR = "data/metadata/dc"
SUBMISSION_DIR = "data/metadata/submission"
RECORD_FORMATS = {  # suffix -> mimetype, format name, version, PRONOM
    ".json": ("application/json", "JSON Data Interchange Format", "", "fmt/817"),
    ".csv": ("text/csv", "Comma Separated Values", "", "x-fmt/18"),
    ".xml": ("application/xml", "Extensible Markup Language", "1.0", "fmt/101"),
}
XML_FORMAT = RECORD_FORMATS[".xml"]


def dc_paths(item: Optional[Item]) -> tuple[str, str]:
    """Bag paths of the oai_dc and dcterms records of an item (None: of the collection)."""
    stem = f"{DC_DIR}/collection" if item is None else f"{DC_DIR}/items/{item.relpath}"
    return f"{stem}.oai_dc.xml", f"{stem}.dcterms.xml"


def _info(ctx: Context, bagpath: str, size: int, digests: dict, fmt: tuple, original_name: str = "") -> FileInfo:
    mimetype, name, version, puid = fmt
    return FileInfo(role=METADATA, bagpath=bagpath, size=size, checksums=digests, id=ctx.make_id("file", bagpath),
                    mimetype=mimetype, format_name=name, format_version=version, pronom=puid,
                    original_name=original_name)


def _organization(package: Package, ctx: Context) -> str:
    return ctx.settings.organization or dc.organization_name(package.collection.data if package.collection else {})


def _with_agents(package: Package, ctx: Context) -> Package:
    agents = list(package.agents)
    org = _organization(package, ctx)
    for agent in (pipeline_agent(), Agent(id=f"organization:{org}", name=org, type="organization") if org else None):
        if agent is not None and all(a.id != agent.id for a in agents):
            agents.append(agent)
    return replace(package, agents=tuple(agents))


def _with_file_ids(item: Item, ctx: Context) -> Item:
    """Every file needs an identifier for PREMIS and METS; mint one where an upstream stage did not."""
    if all(f.id for f in item.objects()):
        return item

    def named(info: Optional[FileInfo]) -> Optional[FileInfo]:
        return replace(info, id=ctx.make_id("file", info.bagpath)) if info is not None and not info.id else info
    return replace(item, original=named(item.original), masters=tuple(named(m) for m in item.masters))


def _supplement_events(item: Item, ctx: Context, agent: Agent, org: Optional[Agent]) -> Item:
    """Add the ingestion and message digest events an upstream stage did not record."""
    files = item.objects()
    if not files:
        return item
    events = list(item.events)
    if not any(e.type == "ingestion" for e in events):
        events.insert(0, Event(id=ctx.make_id("event", "ingestion", item.relpath), type="ingestion",
                               datetime=ctx.now(), detail="photograph and record accepted into the package",
                               agents=((agent, "executing program"),) + (((org, "implementer"),) if org else ()),
                               objects=((files[0].id, "source"),)))
    digested = {oid for e in events if e.type == "message digest calculation" for oid, _ in e.objects}
    for info in files:
        if info.id not in digested:
            algs = ", ".join(sorted(info.checksums))
            events.append(Event(id=ctx.make_id("event", "message digest calculation", info.bagpath),
                                type="message digest calculation", datetime=ctx.now(),
                                detail=f"{algs} computed while the file was written into the package",
                                agents=((agent, "executing program"),), objects=((info.id, "source"),)))
    return replace(item, events=tuple(events))


def _copy_record(ctx: Context, path: str) -> tuple[Optional[FileInfo], Optional[Problem]]:
    """A record file as received, copied byte for byte into the bag's submission folder."""
    src = ctx.ingest / path
    bagpath = f"{SUBMISSION_DIR}/{path}"
    if not is_inside(ctx.ingest, path) or not src.is_file():
        return None, Problem("describe.record_missing", path, "record file not found in the collection")
    try:
        size, digests = copy_hashed(src, ctx.staging / bagpath, ctx.settings.algorithms)
    except OSError as exc:
        if exc.filename is not None and Path(exc.filename) == src:
            return None, Problem("describe.record_missing", path, f"cannot be read: {exc.strerror or exc}")
        return None, Problem("describe.write", bagpath, f"cannot be written: {exc.strerror or exc}")
    fmt = RECORD_FORMATS.get(PurePosixPath(path).suffix.lower(), ("application/octet-stream", "", "", ""))
    return _info(ctx, bagpath, size, digests, fmt, original_name=path), None


def _own_record(item: Item, collection_path: str) -> Optional[str]:
    """The path of the record file that is this item's alone (its JSON sidecar), if any; a CSV
    row's file and the collection record belong to the package."""
    record = item.record
    if record is None or record.row is not None or record.path == collection_path:
        return None
    return record.path


def _write_dc(ctx: Context, item: Optional[Item], terms: list[dc.Term]) -> list[FileInfo]:
    out = []
    for bagpath, build in zip(dc_paths(item), (dc.oai_dc, dc.qualified_dc)):
        size, digests = write_hashed(ctx.staging / bagpath, to_bytes(build(terms)), ctx.settings.algorithms)
        out.append(_info(ctx, bagpath, size, digests, XML_FORMAT))
    return out


def _item_terms(item: Item, collection: dict) -> list[dc.Term]:
    master = item.masters[0] if item.masters else item.original
    tech = master.technical if master else {}
    extent = f"{tech['width']} x {tech['height']} pixels" if tech.get("width") and tech.get("height") else ""
    return dc.item_terms(item.record.data if item.record else {}, collection,
                         master.mimetype if master else "", extent)


def _text_problems(path: str, terms: list[dc.Term]) -> list[Problem]:
    return [Problem("describe.xml_char", path, reason, field) for field, reason in dc.text_problems(terms)]


def _texts(value) -> Iterator[str]:
    """Every string in a technical or extra value (strings, lists and mappings of them)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _texts(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _texts(v)


def _name_problems(item: Item) -> list[Problem]:
    """Names and event texts that go into the METS must be XML too (validation should have
    refused such names already: this keeps a slip upstream a problem, not a crash here)."""
    texts = [("relpath", item.relpath)]
    for info in item.objects():
        texts += [("bagpath", info.bagpath), ("original_name", info.original_name)]
        texts += [(f"{info.bagpath}: technical", text) for text in _texts(info.technical)]
    for event in item.events:
        texts += [(f"event {event.type}", text) for text in (event.detail, event.outcome_detail,
                                                             *_texts(event.extra))]
    return [Problem("describe.xml_char", item.relpath.encode("unicode_escape").decode("ascii"), f"{what}: {reason}")
            for what, text in texts if (reason := xml_char_problem(text))]


def _write_descriptions(package: Package, ctx: Context) -> tuple[Package, list[Agent]]:
    """Copy the submitted records and write the DC of the collection and of every item.

    Each item's own files (its sidecar record's copy, its DC records) go into `Item.metadata`
    (kept with the item: on disk for a large run, not in memory); the collection's DC and the
    records that are no one item's (collection.json, metadata.csv) into the package's
    `metadata_files`.  Items get their supplemented events.  Also returns the distinct agents of
    the items' events, in order (the METS's, collected here to save it a pass over the items).
    Raises OSError when the staging area cannot be written.
    """
    collection = dict(package.collection.data) if package.collection else {}
    collection_path = package.collection.path if package.collection else "collection.json"
    # data/metadata/ is this stage's alone: a rerun starts it afresh, so nothing stale of an
    # earlier run (a record or an item since removed) can reach the bag.
    if (ctx.staging / METADATA_DIR).exists():
        shutil.rmtree(ctx.staging / METADATA_DIR)
    metadata: list[FileInfo] = []
    terms = dc.collection_terms(collection, len(package.items))
    problems = _text_problems(collection_path, terms)
    if not problems:
        metadata += _write_dc(ctx, None, terms)
    agent = pipeline_agent()
    n = len(package.items)      # on disk when they came from disk (pipeline run), as run_stage's
    items = ItemStore(store_folder(ctx.output), n) if isinstance(package.items, ItemStore) else [None] * n
    org = next((a for a in package.agents if a.type == "organization"), None)
    agents: dict[str, Agent] = {}
    for index, item in enumerate(package.items):
        item = _with_file_ids(item, ctx)
        item_problems = [] if item.original else [
            Problem("describe.no_files", item.relpath, "no original file in the package")]
        terms = _item_terms(item, collection)
        item_problems += _text_problems(item.record.path if item.record else item.relpath, terms)
        item_problems += _name_problems(item)
        own: list[FileInfo] = []
        record_path = _own_record(item, collection_path)
        if record_path is not None:
            info, problem = _copy_record(ctx, record_path)
            own += [info] if info else []
            item_problems += [problem] if problem else []
        if not item_problems:
            own += _write_dc(ctx, item, terms)
            item = _supplement_events(item, ctx, agent, org)
        item = replace(item, metadata=tuple(own), problems=item.problems + tuple(item_problems))
        items[index] = item
        for each in event_agents((item,)):
            agents.setdefault(agent_key(each), each)
    for path in sorted({r.path for r in package.records}):     # the records no item carries
        info, problem = _copy_record(ctx, path)
        metadata += [info] if info else []
        problems += [problem] if problem else []
    kept = tuple(f for f in package.metadata_files if not f.bagpath.startswith(METADATA_DIR + "/"))
    return replace(package, items=items if isinstance(items, ItemStore) else tuple(items),
                   problems=package.problems + tuple(problems),
                   metadata_files=kept + tuple(sorted(metadata, key=lambda f: f.bagpath))), list(agents.values())


def dcterms_file(package: Package, item: Optional[Item]) -> Optional[FileInfo]:
    """The qualified DC record of an item (None: of the collection), once written."""
    wanted = dc_paths(item)[1]
    files = package.metadata_files if item is None else item.metadata
    return next((f for f in files if f.bagpath == wanted), None)


def _write_package_mets(package: Package, ctx: Context, item_agents: list[Agent]) -> FileInfo:
    collection = dict(package.collection.data) if package.collection else {}

    def dc_record(item: Optional[Item]) -> etree._Element:
        if item is None:
            return dc.oai_dc(dc.collection_terms(collection, len(package.items)))
        return dc.oai_dc(_item_terms(item, collection))

    size, digests = write_mets(ctx.staging / METS_PATH, package, created=ctx.now(),
                               organization=_organization(package, ctx), dc_record=dc_record,
                               agent_md_id=lambda a: "agent-" + ctx.make_id("agent", agent_key(a)),
                               dcterms_file=lambda item: dcterms_file(package, item),
                               algorithms=ctx.settings.algorithms, item_agents=item_agents)
    return _info(ctx, METS_PATH, size, digests, XML_FORMAT)


def _failed(package: Package, where: str, exc: OSError) -> Package:
    return replace(package, problems=package.problems + (
        Problem("describe.write", where, f"cannot be written: {exc.strerror or exc}"),))


def describe(package: Package, ctx: Context) -> Package:
    """Records, DC, then the METS (last, so it can list every other file), then its check."""
    package = _with_agents(package, ctx)
    try:
        package, item_agents = _write_descriptions(package, ctx)
    except OSError as exc:
        return _failed(package, DC_DIR, exc)
    if errors_in(package.all_problems):
        return package
    try:
        mets_info = _write_package_mets(package, ctx, item_agents)
    except OSError as exc:
        return _failed(package, METS_PATH, exc)
    except ValueError as exc:   # a text XML cannot hold that the checks above did not foresee
        return replace(package, problems=package.problems + (
            Problem("describe.xml_char", METS_PATH, f"cannot be written: {exc}"),))
    package = replace(package, metadata_files=package.metadata_files + (mets_info,))
    problems = check_mets(ctx.staging, ctx.settings.schemas_dir, rehash=False)
    return replace(package, problems=package.problems + tuple(problems))


STAGE = Stage("describe", per_item=None, collect=describe)
