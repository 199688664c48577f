"""pipeline/verify.py: full RFC 8493 validation.  Invalid cases are named after the code they raise.

Bags are written by hand (tests/bagmaker.py) or by bagit-python's make_bag in a subprocess;
bagit-python's own validator (safe in-process) gives the reference verdict.
"""
from __future__ import annotations

import json
import os
import shutil
import unicodedata

import bagit
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bagmaker import digest, make_bag_subprocess, rewrite_tagmanifests, write_bag
from conftest import ROOT, no_traceback, run_cli
from pipeline.verify import verify_bag

PAYLOAD = {"a.txt": b"alpha\n", "sub/b.bin": bytes(range(256)) * 50, "empty": b""}


def codes(report, errors_only=False):
    return sorted({p.code for p in report.problems if p.is_error or not errors_only})


def bagit_verdict(path) -> bool:
    try:
        return bagit.Bag(str(path)).is_valid()
    except bagit.BagError:
        return False


@pytest.fixture
def good(tmp_path):
    return write_bag(tmp_path / "bag", PAYLOAD)


def test_hand_written_bag_is_valid(good):
    report = verify_bag(good)
    assert report.valid and report.problems == []
    assert (report.files, report.bytes) == (3, sum(map(len, PAYLOAD.values())))
    assert report.hashed == 3 + 4   # payload, and bagit.txt, bag-info.txt and two manifests


def test_bagit_python_made_bag_is_valid(tmp_path):
    folder = tmp_path / "made"
    (folder / "d").mkdir(parents=True)
    (folder / "d" / "x.txt").write_text("x")
    (folder / "y.bin").write_bytes(b"\0" * 5000)
    make_bag_subprocess(folder, "md5", "sha1")
    report = verify_bag(folder, workers=2)
    assert report.valid, [p.render() for p in report.problems]
    assert report.version == "0.97"


# -- bagit.txt --------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "BagIt-Version : 1.0\nTag-File-Character-Encoding: UTF-8\n",     # bagit-python accepts this
    "BagIt-Version:1.0\nTag-File-Character-Encoding: UTF-8\n",
    "Tag-File-Character-Encoding: UTF-8\nBagIt-Version: 1.0\n",
    "BagIt-Version: 1.0\n",
    "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\nExtra: x\n",
    "bagit-version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
])
def test_bagit_grammar(good, text):
    (good / "bagit.txt").write_text(text)
    rewrite_tagmanifests(good)
    report = verify_bag(good)
    assert "bagit.grammar" in codes(report) and not report.valid
    assert all(p.path == "bagit.txt" for p in report.problems if p.code == "bagit.grammar")


def test_bagit_bom(good):
    (good / "bagit.txt").write_bytes(b"\xef\xbb\xbf" + (good / "bagit.txt").read_bytes())
    rewrite_tagmanifests(good)
    assert codes(verify_bag(good)) == ["bagit.bom"]


def test_bagit_version(good):
    (good / "bagit.txt").write_text("BagIt-Version: 2.1\nTag-File-Character-Encoding: UTF-8\n")
    rewrite_tagmanifests(good)
    assert codes(verify_bag(good)) == ["bagit.version"]


def test_bagit_encoding(good):
    (good / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: NO-SUCH-CODEC\n")
    rewrite_tagmanifests(good)
    assert codes(verify_bag(good)) == ["bagit.encoding"]


def test_bag_not_a_bag(tmp_path):
    (tmp_path / "folder" / "data").mkdir(parents=True)
    report = verify_bag(tmp_path / "folder")
    assert "bag.not_a_bag" in codes(report) and not report.valid


def test_bag_missing_data_and_missing_manifest(good):
    shutil.rmtree(good / "data")
    for m in good.glob("manifest-*.txt"):
        m.unlink()
    rewrite_tagmanifests(good)
    found = codes(verify_bag(good))
    assert {"bag.missing_data", "bag.missing_manifest", "baginfo.oxum"} <= set(found)


def test_latin1_bag_version_093_uses_package_info(tmp_path):
    root = write_bag(tmp_path / "old", {"é.txt": b"x"}, version="0.93", algorithms=("md5",),
                     tag_algorithms=(), info=[("Source-Organization", "Bibliothèque")])
    (root / "bagit.txt").write_text("BagIt-Version: 0.93\nTag-File-Character-Encoding: ISO-8859-1\n")
    (root / "package-info.txt").write_bytes("Source-Organization: Bibliothèque\n".encode("latin-1"))
    manifest = (root / "manifest-md5.txt").read_text(encoding="utf-8")
    (root / "manifest-md5.txt").write_bytes(manifest.encode("latin-1"))
    report = verify_bag(root)
    assert report.valid, [p.render() for p in report.problems]
    assert report.info == [("Source-Organization", "Bibliothèque")]


# -- bag-info.txt -----------------------------------------------------------------------------

@pytest.mark.parametrize("info, code", [
    ([("Payload-Oxum", "12.3")], "baginfo.oxum"),
    ([("Payload-Oxum", "12")], "baginfo.oxum_format"),
    ([("Payload-Oxum", "a.b")], "baginfo.oxum_format"),
    ([("Bagging-Date", "May 1st")], "baginfo.date"),
    ([("Bag-Count", "one")], "baginfo.bag_count"),
    ([("Bag-Count", "1 of 2"), ("Bag-Count", "1 of 2")], "baginfo.repeated"),
    ([("Payload-Oxum", "12806.3"), ("Payload-Oxum", "12806.3")], "baginfo.repeated"),
    ([("Source-Organization ", "x")], "baginfo.label"),
])
def test_bag_info_rules(tmp_path, info, code):
    report = verify_bag(write_bag(tmp_path / "bag", PAYLOAD, info=info))
    assert code in codes(report)


def test_baginfo_syntax(good):
    (good / "bag-info.txt").write_text("Bagging-Date: 2024-05-01\nno colon here\n  folded into it\n")
    rewrite_tagmanifests(good)
    report = verify_bag(good)
    [problem] = report.problems
    assert (problem.code, problem.path, problem.field) == ("baginfo.syntax", "bag-info.txt", "line 2")


def test_payload_oxum_names_expected_and_found(good):
    (good / "data" / "extra").write_bytes(b"1234")
    problem = next(p for p in verify_bag(good).problems if p.code == "baginfo.oxum")
    assert "12806 bytes in 3 files" in problem.reason and "12810 bytes in 4 files" in problem.reason


# -- manifests --------------------------------------------------------------------------------

def edit_manifest(root, name, old, new):
    path = root / name
    path.write_bytes(path.read_bytes().replace(old.encode(), new.encode()))
    rewrite_tagmanifests(root)


def test_file_mismatch_names_file_manifest_and_line(good):
    (good / "data" / "sub" / "b.bin").write_bytes(b"changed")
    report = verify_bag(good)
    mismatches = [p for p in report.problems if p.code == "file.mismatch"]
    assert {(p.path, p.field) for p in mismatches} == {
        ("data/sub/b.bin", "manifest-sha256.txt line 3"), ("data/sub/b.bin", "manifest-sha512.txt line 3")}
    assert "baginfo.oxum" in codes(report)


def test_every_problem_reported_not_the_first(good):
    (good / "data" / "a.txt").write_bytes(b"changed")
    (good / "data" / "empty").unlink()
    (good / "data" / "new.txt").write_bytes(b"new")
    report = verify_bag(good)
    assert {"file.mismatch", "file.missing", "file.unlisted"} <= set(codes(report))
    paths = {p.path for p in report.problems}
    assert {"data/a.txt", "data/empty", "data/new.txt"} <= paths


def test_manifest_incomplete_second_manifest_omits_a_file(good):
    # bagit-python 1.9.0 accepts this bag: it checks only the union of the manifests.
    lines = (good / "manifest-sha512.txt").read_text().splitlines(keepends=True)
    (good / "manifest-sha512.txt").write_text("".join(l for l in lines if "data/a.txt" not in l))
    rewrite_tagmanifests(good)
    report = verify_bag(good)
    [problem] = report.problems
    assert (problem.code, problem.path, problem.field) == ("manifest.incomplete", "data/a.txt",
                                                           "manifest-sha512.txt")


def test_manifest_incomplete_is_a_warning_before_bagit_1_0(tmp_path):
    root = write_bag(tmp_path / "bag", PAYLOAD, version="0.97")
    lines = (root / "manifest-sha512.txt").read_text().splitlines(keepends=True)
    (root / "manifest-sha512.txt").write_text("".join(lines[1:]))
    rewrite_tagmanifests(root)
    report = verify_bag(root)
    assert report.valid and codes(report) == ["manifest.incomplete"]


def test_manifest_legacy_md5sum_star_line(good):
    edit_manifest(good, "manifest-sha256.txt", "  data/a.txt", " *data/a.txt")
    report = verify_bag(good)
    assert report.valid and codes(report) == ["manifest.legacy"]


@pytest.mark.parametrize("line, code", [
    ("nothing-after-the-checksum", "manifest.line"),
    ("zz11  data/a.txt", "manifest.line"),
    ("abcd  data/a.txt", "manifest.digest"),
    ("{sha} data/../../outside.txt", "manifest.unsafe"),
    ("{sha} /etc/passwd", "manifest.unsafe"),
    ("{sha} data/./a.txt", "manifest.unsafe"),
    ("{sha} bag-info.txt", "manifest.scope"),
    ("{sha} data/a.txt", "manifest.duplicate"),
])
def test_manifest_bad_lines(good, line, code):
    sha = digest(PAYLOAD["a.txt"], "sha256")
    with open(good / "manifest-sha256.txt", "a") as f:
        f.write(line.format(sha=sha) + "\n")
    rewrite_tagmanifests(good)
    report = verify_bag(good)
    assert code in codes(report) and not report.valid
    assert "io.read" not in codes(report)


def test_manifest_duplicate_of_nfc_twin(tmp_path):
    name = unicodedata.normalize("NFC", "café.txt")
    root = write_bag(tmp_path / "bag", {name: b"x"})
    twin = unicodedata.normalize("NFD", name)
    with open(root / "manifest-sha256.txt", "a", encoding="utf-8") as f:
        f.write(f"{digest(b'x', 'sha256')}  data/{twin}\n")
    rewrite_tagmanifests(root)
    assert "manifest.duplicate" in codes(verify_bag(root))


def test_manifest_algorithm_unknown(good):
    (good / "manifest-whirlpoolx.txt").write_text("abcd  data/a.txt\n")
    report = verify_bag(good)
    assert "manifest.algorithm" in codes(report)


def test_tag_manifest_mismatch_and_incomplete(good):
    (good / "bag-info.txt").write_text("Bagging-Date: 2024-05-02\n")
    (good / "extra-tags.txt").write_text("x")
    report = verify_bag(good)
    assert ("file.mismatch", "bag-info.txt") in {(p.code, p.path) for p in report.problems}
    assert ("tagmanifest.incomplete", "extra-tags.txt") in {(p.code, p.path) for p in report.problems}


# -- names: encoding, normalization, the bagit-python 1.9.0 defects ----------------------------

def test_percent_names_decoded_per_rfc(tmp_path):
    # bagit-python 1.9.0 neither encodes nor decodes '%': it rejects this correct bag.
    payload = {"100%25 real.txt": b"a", "a%b.txt": b"b", "literal%41.txt": b"c"}
    root = write_bag(tmp_path / "bag", payload)
    assert "%2525" in (root / "manifest-sha256.txt").read_text()
    report = verify_bag(root)
    assert report.valid, [p.render() for p in report.problems]


def test_lower_case_percent_0a_decoded(tmp_path):
    # bagit-python 1.9.0 decodes only upper-case %0A (re.sub's flags passed as count).
    root = write_bag(tmp_path / "bag", {"line\nbreak\rname.txt": b"x"})
    edit_manifest(root, "manifest-sha256.txt", "%0A", "%0a")
    edit_manifest(root, "manifest-sha512.txt", "%0D", "%0d")
    assert "%0a" in (root / "manifest-sha256.txt").read_text()
    report = verify_bag(root)
    assert report.valid, [p.render() for p in report.problems]


def test_trailing_spaces_in_names_kept(tmp_path):
    # bagit-python 1.9.0 strips manifest lines and loses the trailing spaces.
    root = write_bag(tmp_path / "bag", {"trailing  ": b"x", "trailing": b"y"})
    report = verify_bag(root)
    assert report.valid, [p.render() for p in report.problems]
    (root / "data" / "trailing  ").write_bytes(b"X")
    assert [(p.code, p.path) for p in verify_bag(root).problems if p.is_error][0] == \
        ("file.mismatch", "data/trailing  ")


def test_u2028_in_names(tmp_path):
    # bagit-python 1.9.0 reads manifests with codecs' readline, which splits lines at U+2028.
    root = write_bag(tmp_path / "bag", {"para\u2028sep\u2029x\x85.txt": b"x", "end\u2028": b"y"})
    assert verify_bag(root).valid
    (root / "data" / "end\u2028").write_bytes(b"z")
    assert [(p.code, p.path) for p in verify_bag(root).problems] == [
        ("file.mismatch", "data/end\u2028"), ("file.mismatch", "data/end\u2028")]


def test_file_normalization_tolerated_and_warned(tmp_path):
    nfd = unicodedata.normalize("NFD", "Ångström.txt")
    root = write_bag(tmp_path / "bag", {nfd: b"x"})
    (root / "data" / nfd).rename(root / "data" / unicodedata.normalize("NFC", nfd))
    report = verify_bag(root)
    assert report.valid and codes(report) == ["file.normalization"]


def test_file_normalization_conflict(tmp_path):
    nfc_name = unicodedata.normalize("NFC", "é.txt")
    nfd_name = unicodedata.normalize("NFD", "é.txt")
    root = write_bag(tmp_path / "bag", {nfc_name: b"1", nfd_name: b"2"})
    assert "file.normalization_conflict" in codes(verify_bag(root))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"),
                        min_size=1, max_size=12)
                .filter(lambda n: n not in (".", "..") and len(n.encode()) < 200),
                min_size=1, max_size=4, unique_by=lambda n: unicodedata.normalize("NFC", n)))
def test_any_name_round_trips(tmp_path_factory, names):
    root = write_bag(tmp_path_factory.mktemp("names") / "bag", {n: n.encode() for n in names})
    report = verify_bag(root)
    assert report.valid, [p.render() for p in report.problems]


# -- never outside the bag --------------------------------------------------------------------

def test_symlink_never_followed(tmp_path):
    root = write_bag(tmp_path / "b", PAYLOAD)
    other = tmp_path / "b-other"
    other.mkdir()
    (other / "secret.txt").write_bytes(b"secret")
    os.symlink(other, root / "data" / "link")
    os.symlink(other / "secret.txt", root / "data" / "file-link")
    with open(root / "manifest-sha256.txt", "a") as f:
        f.write(f"{digest(b'secret', 'sha256')}  data/link/secret.txt\n")
    rewrite_tagmanifests(root)
    report = verify_bag(root)
    found = {(p.code, p.path) for p in report.problems}
    assert {("file.link", "data/link"), ("file.link", "data/file-link"),
            ("file.missing", "data/link/secret.txt")} <= found
    assert report.hashed == 3 + 4


def test_manifest_unsafe_sibling_prefix_is_never_read(tmp_path):
    # bag `b`, sibling `b-other`: bagit-python 1.9.0's string-prefix check lets `../b-other/...`
    # through and reads it.  Here the sibling is a FIFO: reading it would block until the timeout.
    root = write_bag(tmp_path / "b", PAYLOAD)
    (tmp_path / "b-other").mkdir()
    os.mkfifo(tmp_path / "b-other" / "pipe")
    with open(root / "manifest-sha256.txt", "a") as f:
        f.write(f"{'0' * 64}  ../b-other/pipe\n{'0' * 64}  data/../../b-other/pipe\n")
    rewrite_tagmanifests(root)
    proc = run_cli("verify", "--json", root, timeout=60)
    assert proc.returncode == 1, proc.stderr
    [bag] = json.loads(proc.stdout)["bags"]
    assert [p["code"] for p in bag["problems"]] == ["manifest.unsafe", "manifest.unsafe"]


def test_file_special_fifo_inside_bag_not_read(good):
    os.mkfifo(good / "data" / "pipe")
    proc = run_cli("verify", good, timeout=60)
    assert proc.returncode == 1
    assert "data/pipe: not a regular file" in proc.stdout and "[file.special]" in proc.stdout


# -- fetch.txt --------------------------------------------------------------------------------

def test_fetch_pending_and_fetched(tmp_path):
    payload = dict(PAYLOAD, **{"remote.bin": b"remote"})
    root = write_bag(tmp_path / "bag", payload,
                     extra_tags={"fetch.txt": b"https://example.org/remote.bin 6 data/remote.bin\n"})
    report = verify_bag(root)
    assert report.valid   # already fetched: nothing to do, and nothing is ever fetched
    (root / "data" / "remote.bin").unlink()
    report = verify_bag(root)
    assert codes(report) == ["fetch.pending"]
    assert report.problems[0].path == "data/remote.bin"


@pytest.mark.parametrize("line, code", [
    ("https://example.org/x 3", "fetch.line"),
    ("https://example.org/x 3 ../outside", "fetch.unsafe"),
    ("example.org/x 3 data/x", "fetch.url"),
    ("https://example.org/x - data/not-in-manifest", "fetch.unlisted"),
])
def test_fetch_problems(tmp_path, line, code):
    root = write_bag(tmp_path / "bag", PAYLOAD, extra_tags={"fetch.txt": (line + "\n").encode()})
    assert code in codes(verify_bag(root))


# -- agreement with bagit-python on bags made by other means ----------------------------------

def _damage(root, how):
    if how == "flip":
        p = root / "data" / "sub" / "b.bin"
        data = bytearray(p.read_bytes())
        data[100] ^= 1
        p.write_bytes(bytes(data))
    elif how == "remove":
        (root / "data" / "a.txt").unlink()
    elif how == "add":
        (root / "data" / "stray.txt").write_text("stray")
    elif how == "oxum":
        (root / "bag-info.txt").write_text("Payload-Oxum: 1.1\n")
        rewrite_tagmanifests(root)
    elif how == "tag":
        (root / "bag-info.txt").write_text("Contact-Name: someone else\n")


@pytest.mark.parametrize("how", ["none", "flip", "remove", "add", "oxum", "tag"])
@pytest.mark.parametrize("maker", ["hand", "bagit-python"])
def test_same_verdict_as_bagit_python(tmp_path, how, maker):
    if maker == "hand":
        root = write_bag(tmp_path / "bag", PAYLOAD, version="0.97")
    else:
        root = tmp_path / "bag"
        for rel, data in PAYLOAD.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        make_bag_subprocess(root)
    _damage(root, how)
    assert verify_bag(root).valid == bagit_verdict(root) == (how == "none")


# -- the command line -------------------------------------------------------------------------

def test_cli_valid_invalid_and_json(tmp_path):
    good = write_bag(tmp_path / "good", PAYLOAD)
    bad = write_bag(tmp_path / "bad", PAYLOAD)
    (bad / "data" / "a.txt").write_bytes(b"tampered")
    proc = run_cli("verify", good)
    assert proc.returncode == 0 and "valid" in proc.stdout and no_traceback(proc)
    proc = run_cli("verify", good, bad, "--processes", "2")
    assert proc.returncode == 1 and no_traceback(proc)
    assert f"{bad}/data/a.txt:manifest-sha256.txt line 1:" in proc.stdout
    assert "[file.mismatch]" in proc.stdout
    data = json.loads(run_cli("verify", "--json", good, bad).stdout)
    assert data["ok"] is False and [b["valid"] for b in data["bags"]] == [True, False]


def test_cli_fast_skips_checksums(good):
    (good / "data" / "a.txt").write_bytes(b"ALPHA\n")   # same size: only a checksum can tell
    assert run_cli("verify", "--fast", good).returncode == 0
    assert run_cli("verify", good).returncode == 1


@pytest.mark.parametrize("args", [
    ["verify"], ["verify", "/no/such/bag"], ["verify", "--processes", "-1", "."],
    ["verify", "--profile", "/no/such/profile.json", "."], ["verify", "--schemas", "/no/such/dir", "."],
])
def test_cli_usage_errors_exit_2(args):
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert no_traceback(proc) and proc.stdout == ""
    assert len([line for line in proc.stderr.splitlines() if "rror" in line]) == 1


# -- our own packages, end to end -------------------------------------------------------------

def test_pipeline_package_verified_with_profile_schemas_and_bagit(sample_collection, tmp_path, xsd_dir):
    out = tmp_path / "out"
    proc = run_cli("run", sample_collection, "--output", out, "--serialize", "tar.gz", "--quiet")
    if proc.returncode != 0 or not (out / sample_collection.name).is_dir():
        pytest.skip(f"the pipeline does not seal a bag yet: {proc.stderr[-300:]}")
    folder, archive = out / sample_collection.name, out / f"{sample_collection.name}.tar.gz"
    profile = ROOT / "schemas" / "bagit-profile.json"
    proc = run_cli("verify", "--json", "--schemas", xsd_dir, "--profile", profile, folder, archive)
    assert proc.returncode == 0, proc.stdout
    reports = json.loads(proc.stdout)["bags"]
    assert [r["serialization"] for r in reports] == ["folder", "tar.gz"]
    assert reports[0]["problems"] == []
    assert bagit_verdict(folder)
    tif = sorted((folder / "data").rglob("*.tif"))[0]
    data = bytearray(tif.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tif.write_bytes(bytes(data))
    report = verify_bag(folder, schemas=xsd_dir)
    assert not report.valid
    assert {p.path for p in report.problems if p.code == "file.mismatch"} == \
        {tif.relative_to(folder).as_posix()}


def test_cli_names_with_line_breaks_stay_on_one_line(tmp_path):
    root = write_bag(tmp_path / "bag", {"two\nlines.txt": b"x"})
    (root / "data" / "two\nlines.txt").write_bytes(b"y")
    proc = run_cli("verify", root)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and all("two\\nlines.txt" in line and "[file.mismatch]" in line for line in lines[:2])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt",
                             "fetch.txt"]),
       data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_garbage_tag_files_give_problems_never_exceptions(tmp_path_factory, name, data):
    root = write_bag(tmp_path_factory.mktemp("garbage") / "bag", {"a.txt": b"a"})
    original = (root / name).read_bytes() if (root / name).exists() else None
    (root / name).write_bytes(data)
    report = verify_bag(root)   # any exception here fails the test
    if data != original:
        assert report.problems, "a changed tag file must be noticed"


def test_file_mismatch_found_by_worker_processes(tmp_path):
    payload = {f"f{i:03d}.txt": f"file {i}\n".encode() for i in range(150)}
    payload["big.bin"] = bytes(range(256)) * 9000            # above the 1 MiB read size
    root = write_bag(tmp_path / "bag", payload)
    assert verify_bag(root, workers=2).valid
    (root / "data" / "f077.txt").write_bytes(b"file 78\n")
    big = bytearray((root / "data" / "big.bin").read_bytes())
    big[-1] ^= 1
    (root / "data" / "big.bin").write_bytes(bytes(big))
    report = verify_bag(root, workers=2)
    assert {p.path for p in report.problems} == {"data/f077.txt", "data/big.bin"}
    assert report.hashed == 151 + 4


def test_mets_check_does_not_follow_a_linked_folder_out_of_the_bag(tmp_path):
    """A folder of the bag replaced by a symbolic link to one outside: the METS check refuses
    to read through it."""
    import shutil as _sh
    from pipeline.metscheck import check_mets
    from conftest import SAMPLE
    out = tmp_path / "output"
    r = run_cli("run", "--ingest", SAMPLE, "--output", out, "--quiet")
    assert r.returncode == 0, r.stderr
    bag = out / "khojaly-1992"
    pres = bag / "data" / "objects" / "preservation"
    _sh.move(pres, tmp_path / "outside")
    pres.symlink_to(tmp_path / "outside")
    found = check_mets(bag)
    assert found and all(p.code == "describe.mets_flocat" for p in found)
    assert any("outside the bag" in p.reason for p in found)


def test_verify_checks_mets_checksums_against_the_manifests(tmp_path):
    """pipeline verify reads no file a second time for the METS: a CHECKSUM that disagrees with
    the bag's manifest is found even with --fast (no file hashed at all)."""
    import re
    from pipeline.verify import verify_bag
    from conftest import SAMPLE
    out = tmp_path / "output"
    r = run_cli("run", "--ingest", SAMPLE, "--output", out, "--quiet")
    assert r.returncode == 0, r.stderr
    bag = out / "khojaly-1992"
    assert not [p for p in verify_bag(bag, fast=True).problems if p.code.startswith("describe.")]
    mets = bag / "data" / "metadata" / "mets.xml"
    text = mets.read_text(encoding="utf-8")
    first = re.search(r'CHECKSUM="([0-9a-f]{64})"', text).group(1)
    mets.write_text(text.replace(first, "0" * 64, 1), encoding="utf-8")
    found = [p for p in verify_bag(bag, fast=True).problems if p.code == "describe.mets_checksum"]
    assert len(found) == 1 and "0" * 64 in found[0].reason
    assert "the manifest's is" in found[0].reason


def test_a_damaged_manifest_line_is_a_file_mismatch_and_not_blamed_on_the_mets(tmp_path):
    """A manifest's digest edited: the file disagrees with the manifest (file.mismatch); the
    METS, which holds the file's true digest, is not reported as disagreeing with the file."""
    from pipeline.verify import verify_bag
    from conftest import SAMPLE
    out = tmp_path / "output"
    r = run_cli("run", "--ingest", SAMPLE, "--output", out, "--quiet")
    assert r.returncode == 0, r.stderr
    bag = out / "khojaly-1992"
    manifest = bag / "manifest-sha256.txt"
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    n, line = next((n, line) for n, line in enumerate(lines) if "collection.dcterms.xml" in line)
    lines[n] = ("0" if line[0] != "0" else "1") + line[1:]
    manifest.write_text("".join(lines), encoding="utf-8")
    problems = [(p.code, p.path) for p in verify_bag(bag, workers=1).problems]
    assert ("file.mismatch", "data/metadata/dc/collection.dcterms.xml") in problems
    assert ("file.mismatch", "manifest-sha256.txt") in problems        # by the tag manifests
    assert not [p for p in problems if p[0].startswith("describe.")], problems


def test_a_foreign_bag_with_a_mets_is_not_held_to_our_mets_layout(tmp_path):
    """bagit-python's bag of someone else's package, with its own data/metadata/mets.xml whose
    links are relative to data/: valid (it is not ours; bagit-python agrees)."""
    import bagit
    from pipeline.verify import verify_bag
    folder = tmp_path / "foreign"
    (folder / "objects").mkdir(parents=True)
    (folder / "objects" / "a.txt").write_text("a\n", encoding="utf-8")
    (folder / "metadata").mkdir()
    (folder / "metadata" / "mets.xml").write_text(
        '<mets xmlns="http://www.loc.gov/METS/" xmlns:xlink="http://www.w3.org/1999/xlink"><fileSec>'
        '<fileGrp><file ID="f1"><FLocat LOCTYPE="URL" xlink:href="objects/a.txt"/></file></fileGrp>'
        '</fileSec></mets>', encoding="utf-8")
    bagit.make_bag(str(folder), checksums=["sha256"])
    assert bagit.Bag(str(folder)).is_valid()
    report = verify_bag(folder, workers=1)
    assert report.valid, [p.render() for p in report.problems]
