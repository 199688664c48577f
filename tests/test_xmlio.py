"""xmlio: the hardened parser, the offline schema loader, and the helpers the writers share."""
from __future__ import annotations

import hashlib
import http.server
import threading

import pytest
from hypothesis import given, settings, strategies as st
from lxml import etree

from pipeline import xmlio
from pipeline.errors import UsageError


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).hits.append(self.path)
        body = b'<?xml version="1.0"?><xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """A real HTTP server on localhost: any request the XML code made would be recorded here."""
    _Recorder.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.hits
    server.shutdown()
    server.server_close()


def test_the_recording_server_does_record(http_server):
    import urllib.request
    url, hits = http_server
    urllib.request.urlopen(f"{url}/probe.xsd", timeout=5).read()
    assert hits == ["/probe.xsd"]


def test_resolver_refuses_http_and_no_request_is_made(http_server, xsd_dir):
    url, hits = http_server
    resolver = xmlio.LocalResolver(xsd_dir)
    parser = etree.XMLParser(no_network=False, resolve_entities=False)  # the resolver alone must refuse
    parser.resolvers.add(resolver)
    doc = (f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t">'
           f'<xs:import namespace="urn:remote" schemaLocation="{url}/remote.xsd"/></xs:schema>')
    tree = etree.fromstring(doc.encode(), parser, base_url=(xsd_dir / "t.xsd").as_uri())
    with pytest.raises(etree.XMLSchemaParseError):
        etree.XMLSchema(etree.ElementTree(tree))
    assert resolver.refused == [f"{url}/remote.xsd"]
    assert hits == []


def test_known_remote_schema_urls_resolve_to_the_local_files(xsd_dir):
    resolver = xmlio.LocalResolver(xsd_dir)
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(resolver)
    doc = ('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t">'
           '<xs:import namespace="http://www.w3.org/1999/xlink" '
           'schemaLocation="http://www.loc.gov/standards/xlink/xlink.xsd"/></xs:schema>')
    etree.XMLSchema(etree.ElementTree(etree.fromstring(doc.encode(), parser, base_url=(xsd_dir / "t.xsd").as_uri())))
    assert resolver.refused == []


def test_external_entities_are_not_expanded(tmp_path, http_server):
    url, hits = http_server
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    doc = tmp_path / "evil.xml"
    doc.write_text(f'<?xml version="1.0"?>\n<!DOCTYPE r [\n<!ENTITY file SYSTEM "{secret.as_uri()}">\n'
                   f'<!ENTITY web SYSTEM "{url}/entity">\n]>\n<r>&file;&web;</r>\n')
    root = xmlio.parse(doc).getroot()
    text = etree.tostring(root).decode()
    assert "TOP-SECRET" not in text
    assert "TOP-SECRET" not in "".join(root.itertext())
    assert hits == []


def test_billion_laughs_is_not_expanded():
    doc = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
           b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><r>&c;</r>')
    root = xmlio.parse(doc).getroot()
    assert "a" * 100 not in "".join(root.itertext())


def test_load_schema_of_an_incomplete_folder_is_a_usage_error(tmp_path):
    (tmp_path / "mets.xsd").write_text("<x/>")
    with pytest.raises(UsageError, match="missing"):
        xmlio.load_schema(tmp_path)


def test_driver_declares_the_qualified_dc_container(xsd_dir):
    schema = xmlio.load_schema(xsd_dir)
    good = (f'<q:qualifieddc xmlns:q="{xmlio.NS["qdc"]}" xmlns:dcterms="{xmlio.NS["dcterms"]}">'
            "<dcterms:spatial>A, B</dcterms:spatial></q:qualifieddc>")
    assert xmlio.validation_errors(etree.fromstring(good), schema) == []
    bad = good.replace("dcterms:spatial", "dcterms:nonsense")
    errors = xmlio.validation_errors(etree.fromstring(bad), schema)
    assert errors and errors[0].startswith("line 1: ")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_xml_char_problem_agrees_with_lxml(text):
    el = etree.Element("x")
    try:
        el.text = text
        accepted = True
    except ValueError:
        accepted = False
    assert (xmlio.xml_char_problem(text) == "") == accepted


def test_xml_char_problem_names_the_character():
    assert xmlio.xml_char_problem("ok\x01") == "character U+0001 at position 2 cannot be written in XML 1.0"


def test_hashing_writer_digests_what_it_wrote(tmp_path):
    with open(tmp_path / "f", "wb") as raw:
        writer = xmlio.HashingWriter(raw, ("sha256", "sha512"))
        writer.write(b"abc")
        writer.write(b"def")
    assert writer.size == 6
    assert writer.digests() == {"sha256": hashlib.sha256(b"abcdef").hexdigest(),
                                "sha512": hashlib.sha512(b"abcdef").hexdigest()}
    assert (tmp_path / "f").read_bytes() == b"abcdef"


def test_load_schema_refuses_an_unknown_remote_import(tmp_path, http_server, xsd_dir):
    url, hits = http_server
    for name in xmlio.DRIVER_ORDER:
        (tmp_path / name).symlink_to(xsd_dir / name)
    (tmp_path / "mix20.xsd").unlink()
    (tmp_path / "mix20.xsd").write_text(
        f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{xmlio.NS["mix"]}">'
        f'<xs:import namespace="urn:elsewhere" schemaLocation="{url}/elsewhere.xsd"/>'
        '<xs:element name="mix" type="elsewhere"/></xs:schema>')
    with pytest.raises(UsageError, match="remote schemas refused: .*elsewhere.xsd"):
        xmlio.load_schema(tmp_path)
    assert hits == []


def test_hashed_output_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "sub" / "doc.xml"
    with xmlio.hashed_output(dest, ("sha256",)) as out:
        out.write(b"<a/>")
    assert dest.read_bytes() == b"<a/>" and out.digests() == {"sha256": hashlib.sha256(b"<a/>").hexdigest()}
    with pytest.raises(RuntimeError):
        with xmlio.hashed_output(tmp_path / "sub" / "broken.xml", ("sha256",)) as out:
            out.write(b"<half")
            raise RuntimeError("killed in the middle")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["doc.xml"]


def _by_production(text: str) -> str:
    """XML 1.0's Char production, character by character (the definition the regex must match)."""
    for i, ch in enumerate(text):
        cp = ord(ch)
        if not (cp in (0x9, 0xA, 0xD) or 0x20 <= cp <= 0xD7FF or 0xE000 <= cp <= 0xFFFD or 0x10000 <= cp <= 0x10FFFF):
            return f"character U+{cp:04X} at position {i} cannot be written in XML 1.0"
    return ""


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())))
def test_xml_char_problem_is_the_char_production(text):
    from pipeline.xmlio import xml_char_problem
    assert xml_char_problem(text) == _by_production(text)
