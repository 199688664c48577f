"""The package's METS 1.12.1 document, written section by section as it streams.

One builder per section (as metsrw decomposes its serializer): `header`, `dmd_sec`, `dmd_ref`,
`amd_sec`, `file_element` (fileSec) and `item_div` (structMap).  `write_mets` streams them into
the file with `lxml.etree.xmlfile`, one section at a time, hashing the bytes as they are written:
memory holds one section, never the whole document.  It reads the items twice (they are kept on
disk, unpickled at each read): once for the dmdSecs, once for the amdSecs, spooling meanwhile
the fileSec's entries and the structMap's divs to anonymous temporary files beside the METS
(about 3 KB per photograph) that are copied in after.

IDs (all valid xs:ID, derived from the deterministic object, item and event UUIDs):
  dmd-collection, dmdref-collection    the collection's oai_dc (inline) and dcterms (mdRef)
  dmd-<item>, dmdref-<item>            the same for each photograph
  amd-<file>                           one amdSec per file, holding
    techmd-<file>                        PREMIS object
    mix-<file>                           MIX (images with known dimensions)
    event-<event>                        PREMIS events placed with this file
  amd-package                          collection-level events and every agent:
    event-<event>, agent-<uuid>
  file-<file>, group-<item>            fileSec files; GROUPID ties an original to its masters
  div-collection, div-<item>           physical structMap
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import ExitStack
from fractions import Fraction
from functools import lru_cache, partial
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence
from urllib.parse import quote

from lxml import etree

from . import __version__
from .model import Agent, Event, FileInfo, Item, Package, ORIGINAL, PRESERVATION, METADATA
from .premis import agent_key, agent_markup, esc, event_markup, leaf, object_markup, parse_markup
from .xmlio import NS, SCHEMA_LOCATIONS, hashed_output

METS_PATH = "data/metadata/mets.xml"
GROUPS = (ORIGINAL, PRESERVATION, METADATA)
NSMAP = {k: NS[k] for k in ("mets", "xlink", "xsi", "premis", "mix", "oai_dc", "dc")}
XLINK_HREF, XLINK_TYPE = f"{{{NS['xlink']}}}href", f"{{{NS['xlink']}}}type"
SCHEMA_LOCATION = " ".join(f"{NS[k]} {SCHEMA_LOCATIONS[NS[k]]}" for k in ("mets", "premis", "mix", "oai_dc"))


def _m(name: str) -> str:
    return f"{{{NS['mets']}}}{name}"


# Namespaces each kind of section uses.  xmlfile serializes a section in one C call but declares
# on its start tag every namespace of the section's parent: so the parent holds only these.  The
# document repeats a few declarations per section (about 1% more bytes); in exchange sections
# serialize about five times faster than element by element through xf.element().
SECTION_NAMESPACES = {
    "metsHdr": ("mets",), "dmdSec": ("mets", "xlink", "xsi", "oai_dc", "dc"),
    "amdSec": ("mets", "xsi", "premis", "mix"), "file": ("mets", "xlink"), "div": ("mets",),
}
SECTION_NSMAPS = {kind: {k: NS[k] for k in names} for kind, names in SECTION_NAMESPACES.items()}


def _el(name: str, attrib: Mapping[str, str]) -> etree._Element:
    """A new section, built in place: in a parent element holding its kind's namespaces, where
    it is serialized (moving a finished section there would walk all of its descendants)."""
    return etree.SubElement(etree.Element(_m("mets"), nsmap=SECTION_NSMAPS[name]), _m(name), attrib)


def _sub(parent: etree._Element, name: str, attrib: Optional[Mapping[str, str]] = None,
         text: Optional[str] = None) -> etree._Element:
    el = etree.SubElement(parent, _m(name), attrib) if attrib else etree.SubElement(parent, _m(name))
    if text is not None:
        el.text = text
    return el


CHECKSUM_TYPES = (("sha256", "SHA-256"), ("sha512", "SHA-512"), ("sha1", "SHA-1"), ("md5", "MD5"))


def checksum_attrs(info: FileInfo) -> dict[str, str]:
    """CHECKSUM and CHECKSUMTYPE: SHA-256 when the file has it (the default), else the strongest."""
    for alg, name in CHECKSUM_TYPES:
        if alg in info.checksums:
            return {"CHECKSUM": info.checksums[alg], "CHECKSUMTYPE": name}
    return {}


# A path made only of these parts (none empty, "." or "..") needs neither normalizing nor
# percent-encoding: `href` then only counts the parts it shares with the METS's folder.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9_.~-]*(?:/[A-Za-z0-9_~-][A-Za-z0-9_.~-]*)*")


@lru_cache(maxsize=8)
def _folder(mets_path: str) -> tuple[str, Optional[tuple[str, ...]]]:
    """The METS file's folder, and its parts when it is a plain path (else None)."""
    folder = PurePosixPath(mets_path).parent.as_posix()
    if folder == ".":
        return folder, ()
    return folder, tuple(folder.split("/")) if _PLAIN_PATH.fullmatch(folder) else None


def href(bagpath: str, mets_path: str = METS_PATH) -> str:
    """A bag path as a URL relative to the METS file (percent-encoded UTF-8)."""
    folder, parts = _folder(mets_path)
    if parts is not None and _PLAIN_PATH.fullmatch(bagpath):
        names = bagpath.split("/")
        shared = 0
        for mine, theirs in zip(names, parts):
            if mine != theirs:
                break
            shared += 1
        return "/".join([".."] * (len(parts) - shared) + names[shared:]) or "."
    rel = os.path.relpath(bagpath, folder)
    return quote(PurePosixPath(rel).as_posix(), safe="/")


# --- section builders -------------------------------------------------------------------------

def header(created: str, organization: str, admids: Sequence[str] = ()) -> etree._Element:
    """metsHdr: creation date; the software (with version) and the organization as agents."""
    hdr = _el("metsHdr", {"CREATEDATE": created, "RECORDSTATUS": "Complete"})
    if admids:
        hdr.set("ADMID", " ".join(admids))
    agent = _sub(hdr, "agent", {"ROLE": "CREATOR", "TYPE": "OTHER", "OTHERTYPE": "SOFTWARE"})
    _sub(agent, "name", text="preservation-pipeline")
    _sub(agent, "note", text=f"version {__version__}")
    if organization:
        org = _sub(hdr, "agent", {"ROLE": "CUSTODIAN", "TYPE": "ORGANIZATION"})
        _sub(org, "name", text=organization)
    return hdr


def dmd_sec(dmd_id: str, record: etree._Element) -> etree._Element:
    """dmdSec with an oai_dc record wrapped inline (MDTYPE DC), built in place (each move of an
    element into another tree walks all of its descendants)."""
    dmd = _el("dmdSec", {"ID": dmd_id})
    _sub(_sub(dmd, "mdWrap", {"MDTYPE": "DC", "LABEL": "oai_dc"}), "xmlData").append(record)
    return dmd


def dmd_ref(dmd_id: str, info: FileInfo) -> etree._Element:
    """dmdSec pointing at the qualified dcterms record file, with its size and checksum."""
    dmd = _el("dmdSec", {"ID": dmd_id})
    _sub(dmd, "mdRef", {"LOCTYPE": "URL", XLINK_HREF: href(info.bagpath),
                        "MDTYPE": "DC", "LABEL": "dcterms", "MIMETYPE": info.mimetype or "application/xml",
                        "SIZE": str(info.size), **checksum_attrs(info)})
    return dmd


def has_mix(technical: Mapping) -> bool:
    return bool(technical.get("width") and technical.get("height"))


COLOR_SPACES = {"min-is-white": "WhiteIsZero", "min-is-black": "BlackIsZero", "RGB": "RGB",
                "palette": "PaletteColor",
                "separated (CMYK)": "CMYK", "1": "BlackIsZero", "L": "BlackIsZero", "LA": "BlackIsZero",
                "I;16": "BlackIsZero", "RGBA": "RGB", "CMYK": "CMYK", "YCbCr": "YCbCr", "LAB": "CIELab"}
# A master's compression -> MIX; an original's is recorded by its MIX name already (JPEG, LZW...)
COMPRESSION = {"none": "Uncompressed", "deflate": "Deflate", "deflate, horizontal predictor": "Deflate"}
SAMPLING_UNITS = {"inch": "in.", "centimeter": "cm", "none": "no absolute unit of measurement"}
EXTRA_SAMPLES = {"unassociated alpha": "unassociated alpha data", "unspecified": "unspecified data",
                 "associated alpha": "associated alpha data (with pre-multiplied color)"}


def mix(technical: Mapping) -> Optional[etree._Element]:
    """NISO MIX 2.0 from a file's technical data, as the convert stage records it for a master
    and for its original (width, height, byte_order, compression, photometric or mode,
    icc_profile, x/y_resolution and unit, bits_per_sample, samples_per_pixel, extra_samples);
    what the data does not hold is left out.  None without dimensions."""
    out: list[str] = []
    return parse_markup(out) if mix_markup(out, technical) else None


def mix_markup(out: list[str], technical: Mapping, declare: bool = True) -> bool:
    """`mix` as markup added to `out` (without `declare`, for a place where the mix prefix is
    declared already); False, adding nothing, without dimensions."""
    if not has_mix(technical):
        return False

    def sub(name, text):
        leaf(out, f"mix:{name}", str(text))

    def group(name: str, *leaves: tuple[tuple[str, ...], str, object]) -> None:
        """`name` holding each (its wrappers, leaf, value) that has a value, in the order given
        (the schema's); nothing when none has one."""
        present = [(wrappers, leaf_name, value) for wrappers, leaf_name, value in leaves if value]
        if not present:
            return
        out.append(f"<mix:{name}>")
        for wrappers, leaf_name, value in present:
            out.extend(f"<mix:{w}>" for w in wrappers)
            sub(leaf_name, value)
            out.extend(f"</mix:{w}>" for w in reversed(wrappers))
        out.append(f"</mix:{name}>")

    out.append(f'<mix:mix xmlns:mix="{NS["mix"]}">' if declare else "<mix:mix>")
    compression = str(technical.get("compression") or "")
    group("BasicDigitalObjectInformation", ((), "byteOrder", technical.get("byte_order")),
          (("Compression",), "compressionScheme", COMPRESSION.get(compression, compression)))
    out.append("<mix:BasicImageInformation><mix:BasicImageCharacteristics>")
    sub("imageWidth", int(technical["width"]))
    sub("imageHeight", int(technical["height"]))
    group("PhotometricInterpretation",
          ((), "colorSpace", COLOR_SPACES.get(str(technical.get("photometric") or technical.get("mode") or ""))),
          (("ColorProfile", "IccProfile"), "iccProfileName", technical.get("icc_profile")))
    out.append("</mix:BasicImageCharacteristics></mix:BasicImageInformation>")
    bits, samples = technical.get("bits_per_sample"), technical.get("samples_per_pixel")
    xres, yres = technical.get("x_resolution"), technical.get("y_resolution")
    extra = EXTRA_SAMPLES.get(str(technical.get("extra_samples") or ""))
    if not (bits or samples or xres):
        out.append("</mix:mix>")
        return True
    out.append("<mix:ImageAssessmentMetadata>")
    if xres and yres:
        out.append("<mix:SpatialMetrics>")
        unit = SAMPLING_UNITS.get(str(technical.get("resolution_unit", "")))
        if unit:
            sub("samplingFrequencyUnit", unit)
        for axis, value in (("x", xres), ("y", yres)):
            num, den = Fraction(str(value)).limit_denominator(10000).as_integer_ratio()
            out.append(f"<mix:{axis}SamplingFrequency>")
            sub("numerator", num)
            sub("denominator", den)
            out.append(f"</mix:{axis}SamplingFrequency>")
        out.append("</mix:SpatialMetrics>")
    if bits or samples:
        out.append("<mix:ImageColorEncoding>")
        if bits:
            out.append("<mix:BitsPerSample>")
            for _ in range(int(samples or 1)):
                sub("bitsPerSampleValue", int(bits))
            sub("bitsPerSampleUnit", "integer")
            out.append("</mix:BitsPerSample>")
        if samples:
            sub("samplesPerPixel", int(samples))
        if extra:
            sub("extraSamples", extra)
        out.append("</mix:ImageColorEncoding>")
    out.append("</mix:ImageAssessmentMetadata></mix:mix>")
    return True


# The amdSecs, the bulk of the document, are written as markup and parsed once each (see
# premis.py): their start tag declares the namespaces of the kind (as `_el`'s parent would).
AMD_START = "<mets:amdSec" + "".join(f' xmlns:{k}="{NS[k]}"' for k in SECTION_NAMESPACES["amdSec"])


def amd_sec(amd_id: str, sections: Iterable[tuple[str, str, str, Callable[[list[str]], object]]]) -> etree._Element:
    """amdSec from (kind, ID, MDTYPE, write): kind techMD or digiprovMD, `write(out)` adding
    the content's markup (premis and mix prefixes declared) to `out`."""
    out = [f'{AMD_START} ID="{esc(amd_id)}">']
    for kind, md_id, mdtype, write in sections:
        out.append(f'<mets:{kind} ID="{esc(md_id)}"><mets:mdWrap MDTYPE="{esc(mdtype)}"><mets:xmlData>')
        write(out)
        out.append(f"</mets:xmlData></mets:mdWrap></mets:{kind}>")
    out.append("</mets:amdSec>")
    return parse_markup(out)


def file_element(info: FileInfo, admids: Sequence[str], group: str = "") -> etree._Element:
    """mets:file with MIMETYPE, SIZE, SHA-256 CHECKSUM, ADMID, GROUPID and its FLocat."""
    attrib = {"ID": file_id(info), "MIMETYPE": info.mimetype or "application/octet-stream",
              "SIZE": str(info.size), **checksum_attrs(info)}
    if admids:
        attrib["ADMID"] = " ".join(admids)
    if group:
        attrib["GROUPID"] = group
    el = _el("file", attrib)
    _sub(el, "FLocat", {"LOCTYPE": "URL", XLINK_HREF: href(info.bagpath), XLINK_TYPE: "simple"})
    return el


def item_div(item: Item, order: int) -> etree._Element:
    """One photograph: its descriptive records and a pointer to its original and each master."""
    div = _el("div", {"ID": f"div-{item.id}", "TYPE": "photograph", "ORDER": str(order),
                      "LABEL": item.identifier or item.relpath,
                      "DMDID": f"dmd-{item.id} dmdref-{item.id}"})
    for info in item.objects():
        _sub(div, "fptr", {"FILEID": file_id(info)})
    return div


# --- ids and placement ---------------------------------------------------------------------------

def file_id(info: FileInfo) -> str:
    return f"file-{info.id}"


def place_events(item: Item) -> dict[str, list[Event]]:
    """Each event of an item goes once, into the amdSec of the first of the item's files it
    links (original first); an event that links none of them goes with the original."""
    files = item.objects()
    placed: dict[str, list[Event]] = {f.id: [] for f in files}
    for event in item.events:
        linked = {oid for oid, _ in event.objects}
        target = next((f.id for f in files if f.id in linked), files[0].id if files else None)
        if target is not None:
            placed[target].append(event)
    return placed


def _derivation_event(item: Item) -> str:
    return next((e.id for e in item.events if e.type == "normalization"), "")


def file_amd(item: Optional[Item], info: FileInfo, events: Sequence[Event]) -> etree._Element:
    """The amdSec of one file: PREMIS object, MIX, and the events placed with it."""
    sources: list[str] = []
    derivatives: list[str] = []
    if item is not None:
        if info.role == PRESERVATION and item.original is not None:
            sources = [item.original.id]
        elif info.role == ORIGINAL:
            derivatives = [m.id for m in item.masters]
    # Events name their objects (linkingObjectIdentifier); objects do not repeat the link back,
    # which would add a kilobyte per file for nothing a reader cannot find the other way.
    obj = partial(object_markup, info=info, sources=sources, derivatives=derivatives, declare=False,
                  derivation_event=_derivation_event(item) if (sources or derivatives) else "")
    sections = [("techMD", f"techmd-{info.id}", "PREMIS:OBJECT", obj)]
    if info.role != METADATA and has_mix(info.technical):
        sections.append(("techMD", f"mix-{info.id}", "NISOIMG", partial(mix_markup, technical=info.technical,
                                                                          declare=False)))
    default = ((info.id, "source"),)
    sections += [("digiprovMD", f"event-{e.id}", "PREMIS:EVENT",
                  partial(event_markup, event=e, default_objects=default, declare=False)) for e in events]
    return amd_sec(f"amd-{info.id}", sections)


def agents_of(package: Package, item_agents: Optional[Iterable[Agent]] = None) -> list[Agent]:
    """Every distinct agent of the package (by identifier), in order of first appearance.

    `item_agents`: the agents of the items' events in item order, when the caller has them
    already (the describe stage collects them as it stores the items): saves a pass over them."""
    seen: dict[str, Agent] = {}
    for agent in package.agents:
        seen.setdefault(agent_key(agent), agent)
    for event in package.events:
        for agent, _ in event.agents:
            seen.setdefault(agent_key(agent), agent)
    for agent in event_agents(package.items) if item_agents is None else item_agents:
        seen.setdefault(agent_key(agent), agent)
    return list(seen.values())


def event_agents(items: Iterable[Item]) -> Iterator[Agent]:
    """The agents of the items' events, in order (repeated as often as they act)."""
    for item in items:
        for event in item.events:
            for agent, _ in event.agents:
                yield agent


# --- streaming -------------------------------------------------------------------------------------

class _Sections:
    """Writes sections (see `_el`), each indented to its level, into the document through `xf`,
    or as bytes to a spool (an anonymous temporary file) copied into the document later: the
    fileSec's entries and the structMap's divs are spooled during the pass that writes the
    amdSecs, so the items (kept on disk, unpickled at each pass) are read twice, not seven times."""

    def __init__(self, xf, out, folder: Path) -> None:
        self.xf, self.out, self.folder = xf, out, folder
        self._spools = ExitStack()

    def __enter__(self) -> "_Sections":
        return self

    def __exit__(self, *exc) -> None:
        self._spools.close()

    @staticmethod
    def _held(el: etree._Element, level: int) -> None:
        """Indent a section: made by `_el` (in its parent declaring its namespaces) or parsed
        with them declared on itself (`amd_sec`)."""
        etree.indent(el, space="  ", level=level)

    def emit(self, el: etree._Element, level: int = 1) -> None:
        """Write one section into the document."""
        self._held(el, level)
        self.xf.write("\n" + "  " * level)
        self.xf.write(el, with_tail=False)

    def spool(self):
        """A new, empty spool (closed with this writer)."""
        return self._spools.enter_context(tempfile.TemporaryFile(dir=self.folder, prefix=".mets-"))

    def emit_to(self, spool, el: etree._Element, level: int) -> None:
        """Write one section into a spool."""
        self._held(el, level)
        spool.write(b"\n" + b"  " * level + etree.tostring(el, encoding="UTF-8", with_tail=False))

    def copy(self, spool) -> None:
        """Copy a spool into the document, at the point reached."""
        self.xf.flush()
        spool.flush()
        spool.seek(0)
        shutil.copyfileobj(spool, self.out)


def write_mets(dest: Path, package: Package, *, created: str, organization: str,
               dc_record: Callable[[Optional[Item]], etree._Element], agent_md_id: Callable[[Agent], str],
               dcterms_file: Callable[[Optional[Item]], Optional[FileInfo]],
               algorithms: Sequence[str], item_agents: Optional[Iterable[Agent]] = None) -> tuple[int, dict[str, str]]:
    """Stream the METS of `package` to `dest` (temp name, fsync, rename); return size and digests.

    `dc_record(item)` gives an item's oai_dc element and `dcterms_file(item)` its qualified DC
    file, when there is one (item None: the collection's).  `item_agents`: see `agents_of`.
    """
    agents = agents_of(package, item_agents)
    agent_ids = [agent_md_id(a) for a in agents]
    with hashed_output(dest, algorithms) as out:
        with etree.xmlfile(out, encoding="UTF-8") as xf, _Sections(xf, out, dest.parent) as sections:
            xf.write_declaration()
            coll = package.collection.data if package.collection else {}
            root = {f"{{{NS['xsi']}}}schemaLocation": SCHEMA_LOCATION,
                    "OBJID": str(coll.get("identifier") or package.name),
                    "LABEL": str(coll.get("title") or package.name), "TYPE": "photograph collection"}
            with xf.element(_m("mets"), root, nsmap=NSMAP):
                sections.emit(header(created, organization, agent_ids))
                _write_dmd(sections, package, dc_record, dcterms_file)
                files, divs = _write_amd(sections, package, agents, agent_ids)
                _write_file_sec(sections, files)
                _write_struct_map(sections, package, coll, divs)
                xf.write("\n")
    return out.size, out.digests()


def _write_dmd(sections: _Sections, package: Package, dc_record, dcterms_file) -> None:
    sections.emit(dmd_sec("dmd-collection", dc_record(None)))
    collection = dcterms_file(None)
    if collection is not None:
        sections.emit(dmd_ref("dmdref-collection", collection))
    for item in package.items:
        sections.emit(dmd_sec(f"dmd-{item.id}", dc_record(item)))
        sections.emit(dmd_ref(f"dmdref-{item.id}", dcterms_file(item)))


def _write_amd(sections: _Sections, package: Package, agents: Sequence[Agent],
               agent_ids: Sequence[str]) -> tuple[dict, object]:
    """The amdSecs, written; and, in the same pass over the items, their fileSec entries (a
    spool per fileGrp) and structMap divs (a spool), to be copied in later."""
    files = {use: sections.spool() for use in GROUPS}
    divs = sections.spool()
    for order, item in enumerate(package.items, start=1):
        placed = place_events(item)
        for info in item.objects():
            sections.emit(file_amd(item, info, placed[info.id]))
            if info.role in (ORIGINAL, PRESERVATION):
                sections.emit_to(files[info.role], file_element(info, _admids(info, placed[info.id]),
                                                                f"group-{item.id}"), 3)
        for info in item.metadata:
            sections.emit(file_amd(None, info, ()))
            sections.emit_to(files[METADATA], file_element(info, _admids(info, ())), 3)
        sections.emit_to(divs, item_div(item, order), 3)
    for info in package.metadata_files:
        sections.emit(file_amd(None, info, ()))
        sections.emit_to(files[METADATA], file_element(info, _admids(info, ())), 3)
    events = [("digiprovMD", f"event-{e.id}", "PREMIS:EVENT", partial(event_markup, event=e, declare=False))
              for e in package.events]
    events += [("digiprovMD", md_id, "PREMIS:AGENT", partial(agent_markup, agent=a, declare=False))
               for a, md_id in zip(agents, agent_ids)]
    sections.emit(amd_sec("amd-package", events))
    return files, divs


def _admids(info: FileInfo, events: Sequence[Event]) -> list[str]:
    """The IDs of a file's amdSec children, as file_amd writes them."""
    ids = [f"techmd-{info.id}"]
    if info.role != METADATA and has_mix(info.technical):
        ids.append(f"mix-{info.id}")
    return ids + [f"event-{e.id}" for e in events]


def _write_file_sec(sections: _Sections, files: Mapping[str, object]) -> None:
    xf = sections.xf
    xf.write("\n  ")
    with xf.element(_m("fileSec")):
        for use in GROUPS:
            xf.write("\n    ")
            with xf.element(_m("fileGrp"), {"ID": f"grp-{use}", "USE": use}):
                sections.copy(files[use])
                xf.write("\n    ")
        xf.write("\n  ")


def _write_struct_map(sections: _Sections, package: Package, coll: Mapping, divs) -> None:
    xf = sections.xf
    xf.write("\n  ")
    with xf.element(_m("structMap"), {"ID": "structmap-physical", "TYPE": "physical"}):
        xf.write("\n    ")
        attrib = {"ID": "div-collection", "TYPE": "collection",
                  "LABEL": str(coll.get("title") or package.name), "DMDID": "dmd-collection dmdref-collection"}
        if package.events:
            attrib["ADMID"] = " ".join(f"event-{e.id}" for e in package.events)
        with xf.element(_m("div"), attrib):
            sections.copy(divs)
            xf.write("\n    ")
        xf.write("\n  ")
