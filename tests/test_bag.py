"""pipeline/bag.py: manifest and tag-file parsing, RFC 8493 path encoding, listing without links."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from pipeline.bag import (decode_path, encode_path, find_manifests, is_inside, list_bag, parse_manifest,
                          parse_manifest_bytes, parse_tags, payload_files, read_tag_file)


@pytest.mark.parametrize("encoded, decoded", [
    ("data/a%0Ab", "data/a\nb"), ("data/a%0ab", "data/a\nb"), ("data/a%0Db", "data/a\rb"),
    ("data/a%0db", "data/a\rb"), ("data/100%25", "data/100%"), ("data/%2541", "data/%41"),
    ("data/%41%20%2F", "data/%41%20%2F"), ("data/50%", "data/50%"),
])
def test_decode_path_only_cr_lf_percent(encoded, decoded):
    assert decode_path(encoded) == decoded


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_encode_decode_round_trip(name):
    encoded = encode_path(name)
    assert "\n" not in encoded and "\r" not in encoded
    assert decode_path(encoded) == name


def test_parse_manifest_separators_line_ends_and_legacy():
    text = ("ab\tdata/tab sep\r\n"          # tab separator, CRLF
            "cd  *data/legacy\r"            # md5sum binary marker, bare CR
            "ef data/trailing  \n"          # trailing spaces are part of the name
            "01 data/u\u2028sep\n"          # U+2028 is not a line end
            "\n"
            "zz data/not-hex\n"
            "lonely\n").encode()
    m = parse_manifest_bytes("manifest-md5.txt", text)
    assert (m.algorithm, m.tag) == ("md5", False)
    assert [(e.path, e.digest, e.line) for e in m.entries] == [
        ("data/tab sep", "ab", 1), ("data/legacy", "cd", 2), ("data/trailing  ", "ef", 3),
        ("data/u\u2028sep", "01", 4)]
    assert m.legacy_lines == [2]
    assert [line for line, _ in m.errors] == [6, 7]


def test_parse_manifest_bom_and_upper_case_digest(tmp_path):
    path = tmp_path / "tagmanifest-sha1.txt"
    path.write_bytes("\ufeffABCD bagit.txt\n".encode())
    m = parse_manifest(path)
    assert m.bom and m.tag and m.entries[0].digest == "abcd"


def test_parse_tags_folding_and_raw_labels(tmp_path):
    tags = parse_tags("A: one\n  two\nB : x\r\nno colon\n\nC:\n")
    assert [(t.label, t.value, t.line, t.raw_label, t.colon) for t in tags] == [
        ("A", "one two", 1, "A", True), ("B", "x", 3, "B ", True), ("no colon", "", 4, "no colon", False),
        ("C", "", 6, "C", True)]
    (tmp_path / "bag-info.txt").write_text("External-Description: long\n\tvalue\n")
    assert read_tag_file(tmp_path / "bag-info.txt") == [("External-Description", "long value")]


@pytest.mark.parametrize("rel, inside", [("data/x", True), ("data/../x", False), ("/etc/passwd", False),
                                         ("../b-other/x", False), ("data\\x", False), ("", False)])
def test_is_inside(tmp_path, rel, inside):
    assert is_inside(tmp_path, rel) == inside


def test_list_bag_never_follows_links(tmp_path):
    bag = tmp_path / "b"
    (bag / "data" / "sub").mkdir(parents=True)
    (bag / "data" / "sub" / "f").write_bytes(b"123")
    (bag / "manifest-md5.txt").write_text("")
    (tmp_path / "b-other").mkdir()
    (tmp_path / "b-other" / "secret").write_text("s")
    os.symlink(tmp_path / "b-other", bag / "data" / "dirlink")
    os.symlink(tmp_path / "b-other" / "secret", bag / "data" / "filelink")
    os.mkfifo(bag / "data" / "pipe")
    listing = list_bag(bag)
    assert listing.files == {"data/sub/f": 3, "manifest-md5.txt": 0}
    assert sorted(listing.links) == ["data/dirlink", "data/filelink"]
    assert listing.special == ["data/pipe"] and sorted(listing.dirs) == ["data", "data/sub"]
    assert "data/sub/f" in payload_files(bag) and [p.name for p in find_manifests(bag)] == ["manifest-md5.txt"]
