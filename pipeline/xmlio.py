"""XML in and out: one hardened parser, offline XSD validation, namespaces declared once.

* Every XML the pipeline reads goes through `parse()`: no entity expansion, no DTD loading, no
  network.
* `load_schema(xsd_dir)` builds one driver schema that imports every official schema from a local
  folder (the recipe of shared/xsd/README.md) through a resolver that refuses any remote URL.
"""
from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from lxml import etree

from . import durable
from .errors import path_error
from .hashing import new_hashers

NS = {
    "mets": "http://www.loc.gov/METS/",
    "premis": "http://www.loc.gov/premis/v3",
    "xlink": "http://www.w3.org/1999/xlink",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "dc": "http://purl.org/dc/elements/1.1/",
    "dcterms": "http://purl.org/dc/terms/",
    "dcmitype": "http://purl.org/dc/dcmitype/",
    "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/",
    "mix": "http://www.loc.gov/mix/v20",
    "xml": "http://www.w3.org/XML/1998/namespace",
    "qdc": "urn:preservation-pipeline:qualifieddc",
}

SCHEMA_LOCATIONS = {
    NS["mets"]: "http://www.loc.gov/standards/mets/version1121/mets.xsd",
    NS["premis"]: "http://www.loc.gov/standards/premis/v3/premis.xsd",
    NS["dc"]: "http://dublincore.org/schemas/xmls/qdc/2008/02/11/dc.xsd",
    NS["dcterms"]: "http://dublincore.org/schemas/xmls/qdc/2008/02/11/dcterms.xsd",
    NS["oai_dc"]: "http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
    NS["mix"]: "http://www.loc.gov/standards/mix/mix20/mix20.xsd",
    NS["xlink"]: "http://www.loc.gov/standards/xlink/xlink.xsd",
}

# Remote locations found inside the official XSDs, and the local file each one means.
REMOTE_TO_LOCAL = {
    "http://www.loc.gov/standards/xlink/xlink.xsd": "xlink.xsd",
    "http://www.w3.org/2001/03/xml.xsd": "xml.xsd",
    "http://www.w3.org/2001/xml.xsd": "xml.xsd",
    "http://dublincore.org/schemas/xmls/simpledc20021212.xsd": "dc.xsd",
    "http://dublincore.org/schemas/xmls/qdc/2008/02/11/dc.xsd": "dc.xsd",
    "http://dublincore.org/schemas/xmls/qdc/2008/02/11/dcterms.xsd": "dcterms.xsd",
    "http://dublincore.org/schemas/xmls/qdc/2008/02/11/dcmitype.xsd": "dcmitype.xsd",
    "http://www.loc.gov/standards/mets/version1121/mets.xsd": "mets.xsd",
    "http://www.loc.gov/standards/mets/mets.xsd": "mets.xsd",
    "http://www.loc.gov/standards/premis/v3/premis.xsd": "premis.xsd",
    "http://www.openarchives.org/OAI/2.0/oai_dc.xsd": "oai_dc.xsd",
    "http://www.loc.gov/standards/mix/mix20/mix20.xsd": "mix20.xsd",
}

DRIVER_ORDER = ("xml.xsd", "xlink.xsd", "dc.xsd", "dcmitype.xsd", "dcterms.xsd", "oai_dc.xsd",
                "premis.xsd", "mix20.xsd", "mets.xsd")
_TARGETS = {"xml.xsd": NS["xml"], "xlink.xsd": NS["xlink"], "dc.xsd": NS["dc"],
            "dcmitype.xsd": NS["dcmitype"], "dcterms.xsd": NS["dcterms"], "oai_dc.xsd": NS["oai_dc"],
            "premis.xsd": NS["premis"], "mix20.xsd": NS["mix"], "mets.xsd": NS["mets"]}


class NetworkRefused(Exception):
    pass


class LocalResolver(etree.Resolver):
    """Maps the official remote schema URLs to files in one folder; refuses any other remote URL."""

    def __init__(self, xsd_dir: Path) -> None:
        super().__init__()
        self.xsd_dir = Path(xsd_dir)
        self.refused: list[str] = []

    def resolve(self, url, pubid, context):
        if url in REMOTE_TO_LOCAL:
            return self.resolve_filename(str(self.xsd_dir / REMOTE_TO_LOCAL[url]), context)
        if url and url.split(":", 1)[0].lower() in ("http", "https", "ftp"):
            self.refused.append(url)
            # An empty document: the import fails locally instead of reaching the network.
            return self.resolve_string("<refused/>", context)
        return None


def safe_parser(huge_tree: bool = False, **extra) -> etree.XMLParser:
    """The parser for any XML the pipeline reads: no entities, no DTD, no network.  `huge_tree`
    only for markup the pipeline made itself (it lifts libxml2's limits, 10 MB per text)."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=huge_tree, remove_blank_text=False, **extra)


def parse(source) -> etree._ElementTree:
    """Parse a file path, file object or bytes with the hardened parser."""
    parser = safe_parser()
    if isinstance(source, (bytes, bytearray)):
        return etree.ElementTree(etree.fromstring(bytes(source), parser))
    return etree.parse(str(source) if isinstance(source, Path) else source, parser)


_cache: dict[Path, etree.XMLSchema] = {}
_lock = threading.Lock()


def load_schema(xsd_dir: Path) -> etree.XMLSchema:
    """One XMLSchema covering METS, PREMIS, DC, dcterms, oai_dc, MIX and xlink, loaded offline."""
    xsd_dir = Path(xsd_dir).resolve()
    with _lock:
        if xsd_dir in _cache:
            return _cache[xsd_dir]
        missing = [n for n in DRIVER_ORDER if not (xsd_dir / n).is_file()]
        if missing:
            raise path_error(xsd_dir, f"not a folder of the official schemas (missing {', '.join(missing)})")
        imports = "".join(f'<xs:import namespace="{_TARGETS[n]}" schemaLocation="{n}"/>' for n in DRIVER_ORDER)
        # The driver also declares the container of a standalone qualified DC record, as DCMI's
        # XML guidelines (2008) ask an application to do: an element of the official type
        # dcterms:elementOrRefinementContainer, in this project's namespace (NS["qdc"]).
        driver = ('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
                  f'xmlns:dcterms="{NS["dcterms"]}" '
                  f'targetNamespace="{NS["qdc"]}" elementFormDefault="qualified">'
                  f"{imports}"
                  '<xs:element name="qualifieddc" type="dcterms:elementOrRefinementContainer"/>'
                  "</xs:schema>")
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        resolver = LocalResolver(xsd_dir)
        parser.resolvers.add(resolver)
        doc = etree.fromstring(driver.encode(), parser, base_url=(xsd_dir / "driver.xsd").as_uri())
        try:
            schema = etree.XMLSchema(etree.ElementTree(doc))
        except etree.XMLSchemaParseError as exc:
            refused = f" (remote schemas refused: {', '.join(resolver.refused)})" if resolver.refused else ""
            raise path_error(xsd_dir, f"the schemas cannot be loaded offline: {exc}{refused}") from exc
        _cache[xsd_dir] = schema
        return schema


def validation_errors(doc, schema: etree.XMLSchema) -> list[str]:
    """Schema errors as 'line N: message' strings (empty when valid)."""
    tree = doc if isinstance(doc, etree._ElementTree) else etree.ElementTree(doc)
    if schema.validate(tree):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


# What XML 1.0 cannot hold: the complement of its Char production.
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_char_problem(text: str) -> str:
    """'' when XML 1.0 can hold `text`, else a reason naming the first character it cannot."""
    found = _NOT_XML_CHAR.search(text)
    if found is None:
        return ""
    return f"character U+{ord(found.group()):04X} at position {found.start()} cannot be written in XML 1.0"


def xml_safe(text: str) -> str:
    """`text` with each character XML 1.0 cannot hold replaced by U+FFFD (for labels read out
    of files, such as an ICC profile's description: shown, never the record of anything)."""
    return _NOT_XML_CHAR.sub("\ufffd", text)


def to_bytes(element) -> bytes:
    """A document as written by the pipeline: UTF-8, XML declaration, indented."""
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8", pretty_print=True)


class HashingWriter:
    """A binary file wrapper that hashes every byte written (for streamed documents)."""

    def __init__(self, raw, algorithms) -> None:
        self.raw = raw
        self.size = 0
        self.hashers = new_hashers(algorithms)

    def write(self, data) -> int:
        self.raw.write(data)
        self.size += len(data)
        for h in self.hashers.values():
            h.update(data)
        return len(data)

    def digests(self) -> dict[str, str]:
        return {alg: h.hexdigest() for alg, h in self.hashers.items()}


@contextmanager
def hashed_output(dest: Path, algorithms) -> Iterator[HashingWriter]:
    """A file written under a temporary name, hashed as it is written, and renamed to
    `dest` when the block succeeds; removed when it fails.  Yields the HashingWriter (its
    `size` and `digests()` are final after the block)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        with open(tmp, "wb") as raw:
            out = HashingWriter(raw, algorithms)
            yield out
            durable.started(raw, out.size)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def canonical(doc) -> bytes:
    """Exclusive C14N bytes, for golden-file comparison."""
    return etree.tostring(doc, method="c14n", exclusive=True)
