"""`pipeline fixity`: real bags damaged every way, each damage found and named by its code.

Bags come from three writers: a small one here (full control over manifests and names),
bagit-python's make_bag (in a subprocess: it chdir()s), and the pipeline itself (end to end).
"""
import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import unicodedata
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import ROOT, SAMPLE, no_traceback, run_cli
from pipeline.errors import UsageError
from pipeline.fixity import audit

# run in another folder, `python -m pipeline` must still be this tree (not an installed copy)
TREE = {"PYTHONPATH": str(ROOT)}

PAYLOAD = {
    "data/a.txt": b"alpha\n",
    "data/photos/b.jpg": bytes(range(256)) * 40,
    "data/photos/c d.tif": b"II*\x00" + b"\x07" * 3000,
    "data/notes/%percent.txt": b"100%\n",
}


def manifest_lines(files, alg, name=lambda p: p):
    return "".join(f"{hashlib.new(alg, data).hexdigest()}  {name(rel)}\n" for rel, data in sorted(files.items()))


def write_bag(root: Path, files=PAYLOAD, algorithms=("sha256", "sha512"), name=lambda p: p) -> Path:
    """A BagIt 1.0 bag; `name` maps a path to how the manifests write it."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    oxum = f"{sum(map(len, files.values()))}.{len(files)}"
    tags = {"bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
            "bag-info.txt": f"Payload-Oxum: {oxum}\nBagging-Date: 2026-01-01\n".encode()}
    for alg in algorithms:
        tags[f"manifest-{alg}.txt"] = manifest_lines(files, alg, name).encode()
    for rel, data in tags.items():
        (root / rel).write_bytes(data)
    for alg in algorithms:
        (root / f"tagmanifest-{alg}.txt").write_text(manifest_lines(tags, alg))
    return root


def retag(bag: Path) -> None:
    """Rewrite the tag manifests after a deliberate manifest edit (a 'consistent' forgery)."""
    for tm in bag.glob("tagmanifest-*.txt"):
        alg = tm.name[len("tagmanifest-"):-4]
        names = [p.name for p in sorted(bag.iterdir()) if p.is_file() and not p.name.startswith("tagmanifest-")]
        tm.write_text("".join(f"{hashlib.new(alg, (bag / n).read_bytes()).hexdigest()}  {n}\n" for n in names))


def fixity_json(*args, **kw):
    proc = run_cli("fixity", *args, "--json", **kw)
    assert no_traceback(proc), proc.stderr
    return proc, (json.loads(proc.stdout) if proc.stdout.strip() else None)


def audit_json(*paths, **kw):
    """The library's audit (real bags, real SQLite), as the JSON report `--json` prints."""
    report = audit(paths, **kw)
    return report.exit_code, report.as_dict()


def problems_of(report, bag=0):
    return [(p["code"], p["path"]) for p in report["bags"][bag]["problems"]]


def tree_state(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def bag(tmp_path) -> Path:
    return write_bag(tmp_path / "store" / "bag1")


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "registry" / "fixity.sqlite"


# -- intact bags --------------------------------------------------------------------------------

def test_intact_bag_from_bagit_python_exits_0_and_never_writes_inside(tmp_path, db):
    src = tmp_path / "bp"
    write_bag(tmp_path / "payload-src", PAYLOAD)  # reuse the payload layout
    shutil.copytree(tmp_path / "payload-src" / "data", src)
    code = f"import bagit; bagit.make_bag({str(src)!r}, checksums=['sha256', 'sha512'])"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    before = tree_state(src)
    proc, report = fixity_json(src, "--db", db)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bag = report["bags"][0]
    assert bag["outcome"] == "intact" and bag["fixity_checked"] is True
    assert bag["algorithms"] == ["sha256", "sha512"]
    assert bag["files_checked"] == bag["files_total"] == len(PAYLOAD) + 4  # + bagit, bag-info, 2 manifests
    assert tree_state(src) == before


def test_human_summary_names_manifests_and_share(bag, db):
    proc = run_cli("fixity", bag, "--db", db)
    assert proc.returncode == 0
    assert "bag1: INTACT" in proc.stdout and "manifest-sha512.txt" in proc.stdout
    assert "100.0% of the store" in proc.stdout and "last 30 days" in proc.stdout


# -- damage, each found and named ---------------------------------------------------------------

def test_fixity_mismatch_flip_one_byte_names_file_algorithm_expected_actual(bag, db):
    target = bag / "data/photos/b.jpg"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0x01
    target.write_bytes(bytes(data))
    proc, report = fixity_json(bag, "--db", db)
    assert proc.returncode == 3
    found = report["bags"][0]["problems"]
    assert {(p["code"], p["path"], p["algorithm"]) for p in found} == {
        ("fixity.mismatch", "data/photos/b.jpg", "sha256"), ("fixity.mismatch", "data/photos/b.jpg", "sha512")}
    sha = next(p for p in found if p["algorithm"] == "sha256")
    assert sha["expected"] == hashlib.sha256(PAYLOAD["data/photos/b.jpg"]).hexdigest()
    assert sha["actual"] == hashlib.sha256(bytes(data)).hexdigest()
    human = run_cli("fixity", bag, "--db", db)
    assert f"data/photos/b.jpg: sha256 expected {sha['expected']}, found {sha['actual']} [fixity.mismatch]" in human.stdout


def test_fixity_mismatch_truncated_file(bag, db):
    (bag / "data/photos/c d.tif").write_bytes(PAYLOAD["data/photos/c d.tif"][:100])
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert ("fixity.mismatch", "data/photos/c d.tif") in problems_of(report)
    assert ("fixity.oxum", "bag-info.txt") in problems_of(report)


def test_fixity_missing_deleted_file(bag, db):
    (bag / "data/a.txt").unlink()
    code, report = audit_json(bag, db=db)
    assert code == 3
    missing = [p for p in report["bags"][0]["problems"] if p["code"] == "fixity.missing"]
    assert [(p["path"], p["algorithm"], p["expected"]) for p in missing] == [
        ("data/a.txt", "sha512", hashlib.sha512(PAYLOAD["data/a.txt"]).hexdigest())]


def test_fixity_unexpected_added_file(bag, db):
    (bag / "data/photos/extra.jpg").write_bytes(b"new")
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert ("fixity.unexpected", "data/photos/extra.jpg") in problems_of(report)


def test_renamed_file_is_missing_and_unexpected(bag, db):
    (bag / "data/a.txt").rename(bag / "data/A.txt")
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert {("fixity.missing", "data/a.txt"), ("fixity.unexpected", "data/A.txt")} <= set(problems_of(report))


def test_replaced_manifest_line_names_the_file_and_the_manifest(bag, db):
    manifest = bag / "manifest-sha256.txt"
    forged = hashlib.sha256(b"something else").hexdigest()
    lines = [f"{forged}  data/a.txt" if line.endswith("  data/a.txt") else line
             for line in manifest.read_text().splitlines()]
    manifest.write_text("\n".join(lines) + "\n")
    code, report = audit_json(bag, db=db)
    assert code == 3
    found = report["bags"][0]["problems"]
    assert {"code": "fixity.mismatch", "path": "data/a.txt", "algorithm": "sha256", "expected": forged,
            "actual": hashlib.sha256(PAYLOAD["data/a.txt"]).hexdigest()}.items() <= next(
        p for p in found if p["path"] == "data/a.txt").items()
    assert ("fixity.mismatch", "manifest-sha256.txt") in problems_of(report)


def test_damaged_tag_file_is_named(bag, db):
    with open(bag / "bag-info.txt", "a") as f:
        f.write("Source-Organization: someone else\n")
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert {p for p in problems_of(report)} == {("fixity.mismatch", "bag-info.txt")}


def test_fixity_normalization_nfd_disk_nfc_manifest_matches_and_says_so(tmp_path, db):
    nfd = unicodedata.normalize("NFD", "data/café-é.txt")
    bag = write_bag(tmp_path / "mac", {nfd: b"bonjour"}, name=lambda p: unicodedata.normalize("NFC", p))
    proc, report = fixity_json(bag, "--db", db)
    assert proc.returncode == 0, proc.stdout
    b = report["bags"][0]
    assert b["outcome"] == "intact" and b["normalized_names"] == 1
    assert problems_of(report) == [("fixity.normalization", nfd)]
    human = run_cli("fixity", bag, "--db", db).stdout
    assert "Unicode normalization" in human


def test_fixity_unlisted_file_missing_from_one_payload_manifest(bag, db):
    manifest = bag / "manifest-sha512.txt"
    manifest.write_text("".join(l for l in manifest.read_text().splitlines(True) if "a.txt" not in l))
    retag(bag)
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert problems_of(report) == [("fixity.unlisted", "data/a.txt")]


def test_fixity_manifest_line_bad_line_names_manifest_and_line(bag, db):
    with open(bag / "manifest-sha256.txt", "a") as f:
        f.write("not-a-checksum-line\n")
    retag(bag)
    code, report = audit_json(bag, db=db)
    assert code == 3
    (p,) = report["bags"][0]["problems"]
    assert (p["code"], p["path"], p["field"]) == ("fixity.manifest_line", "manifest-sha256.txt", "line 5")


def test_fixity_unsafe_path_is_never_opened(bag, db, tmp_path):
    (tmp_path / "store" / "secret").write_bytes(b"outside")
    with open(bag / "manifest-sha256.txt", "a") as f:
        f.write(f"{hashlib.sha256(b'outside').hexdigest()}  data/../../secret\n")
    retag(bag)
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert problems_of(report) == [("fixity.unsafe_path", "data/../../secret")]


def test_fixity_special_symlink_is_not_followed(bag, db, tmp_path):
    (tmp_path / "elsewhere.txt").write_bytes(b"x")
    (bag / "data/link.txt").symlink_to(tmp_path / "elsewhere.txt")
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert problems_of(report) == [("fixity.special", "data/link.txt")]


def test_fixity_duplicate_entry_with_two_checksums(bag, db):
    with open(bag / "manifest-sha256.txt", "a") as f:
        f.write(f"{hashlib.sha256(b'other').hexdigest()}  data/a.txt\n")
    retag(bag)
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert ("fixity.duplicate", "data/a.txt") in problems_of(report)


def test_fixity_algorithm_unknown_manifest_is_reported(bag, db):
    (bag / "manifest-whirl9.txt").write_text("00  data/a.txt\n")
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert ("fixity.algorithm", "manifest-whirl9.txt") in problems_of(report)


def test_fixity_no_manifest(bag, db):
    for m in bag.glob("*manifest-*.txt"):
        m.unlink()
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert ("fixity.no_manifest", "") in problems_of(report)


def test_fixity_not_a_bag_exits_1_with_one_line(tmp_path, db):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"nothing")
    proc = run_cli("fixity", junk, "--db", db)
    assert proc.returncode == 1 and no_traceback(proc)


# -- fast mode ----------------------------------------------------------------------------------

def test_fast_checks_completeness_only_and_says_so(bag, db):
    target = bag / "data/a.txt"
    target.write_bytes(target.read_bytes().upper())  # same size: only a checksum can see it
    proc = run_cli("fixity", bag, "--db", db, "--fast")
    assert proc.returncode == 0
    assert "COMPLETE" in proc.stdout and "not a fixity check" in proc.stdout and "INTACT" not in proc.stdout
    code, report = audit_json(bag, db=db, fast=True)
    assert report["bags"][0]["fixity_checked"] is False and report["bags"][0]["outcome"] == "complete"
    (target.parent / "more.txt").write_bytes(b"1")
    assert audit_json(bag, db=db, fast=True)[0] == 3
    assert audit_json(bag, db=db)[0] == 3


# -- what is audited ----------------------------------------------------------------------------

def test_default_is_every_bag_in_output_skipping_dot_folders(tmp_path):
    out = tmp_path / "output"
    write_bag(out / "one")
    write_bag(out / "two")
    write_bag(out / ".staging" / "half")
    (out / ".staging" / "half" / "data" / "a.txt").write_bytes(b"damaged")
    proc, report = fixity_json(cwd=tmp_path, env=TREE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [b["bag"] for b in report["bags"]] == ["one", "two"]
    assert (out / "fixity.sqlite").is_file()


def test_folder_of_bags_and_csv_report(tmp_path, db):
    store = tmp_path / "store"
    write_bag(store / "one")
    write_bag(store / "two")
    (store / "two" / "data" / "a.txt").write_bytes(b"changed")
    proc = run_cli("fixity", store, "--db", db, "--csv")
    assert proc.returncode == 3
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [(r["bag"], r["code"]) for r in rows if r["path"] == ""] == [("one", "intact"), ("two", "problems")]
    changed = [r for r in rows if r["code"] == "fixity.mismatch" and r["path"] == "data/a.txt"]
    assert {r["algorithm"] for r in changed} == {"sha256", "sha512"}
    assert all(r["bag"] == "two" and r["expected"] and r["actual"] for r in changed)


def _tar(bag: Path, dest: Path, mode: str) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, mode) as tf:
        tf.add(bag, arcname=bag.name)
    return dest


def _zip(bag: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(bag.rglob("*")):
            zf.write(p, f"{bag.name}/{p.relative_to(bag).as_posix()}")
    return dest


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip"])
def test_serialized_bags_are_streamed_and_damage_named(bag, db, tmp_path, kind):
    make = {"tar": lambda b, d: _tar(b, d, "w"), "tar.gz": lambda b, d: _tar(b, d, "w:gz"), "zip": _zip}[kind]
    good = make(bag, tmp_path / "good" / f"bag1.{kind}")  # the archive is named like its bag folder
    code, report = audit_json(good, db=db)
    assert code == 0, report
    assert report["bags"][0]["files_checked"] == len(PAYLOAD) + 4  # + bagit, bag-info, 2 manifests
    (bag / "data/photos/b.jpg").write_bytes(b"\xff" + PAYLOAD["data/photos/b.jpg"][1:])
    bad = make(bag, tmp_path / "bad" / f"bag1.{kind}")
    code, report = audit_json(bad, db=db)
    assert code == 3
    assert {c for c in problems_of(report)} == {("fixity.mismatch", "data/photos/b.jpg")}


# -- usage --------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["nowhere"], ["--json", "--csv"], ["--budget", "0%"], ["--max-bytes", "lots"]])
def test_usage_errors_exit_2_without_traceback(bag, db, args):
    proc = run_cli("fixity", *([bag] if args[0] != "nowhere" else []), *args, "--db", db)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert no_traceback(proc)


def test_registry_inside_a_bag_is_refused(bag):
    with pytest.raises(UsageError):
        audit([bag], db=bag / "data" / "fixity.sqlite")
    assert not (bag / "data" / "fixity.sqlite").exists()


# -- property: any single-byte change is reported against exactly that file ---------------------

@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("prop")
    return write_bag(root / "bag", algorithms=("sha256",)), root / "fixity.sqlite"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(sorted(PAYLOAD)), where=st.floats(0, 1, exclude_max=True),
       flip=st.integers(1, 255))
def test_any_single_byte_change_is_reported_against_exactly_that_file(pristine, which, where, flip):
    bag, db = pristine
    original = PAYLOAD[which]
    data = bytearray(original)
    data[int(where * len(data))] ^= flip
    (bag / which).write_bytes(bytes(data))
    try:
        report = audit([bag], db=db)
    finally:
        (bag / which).write_bytes(original)
    assert report.exit_code == 3
    assert {(f.code, f.path) for b in report.bags for f in b.findings} == {("fixity.mismatch", which)}


# -- end to end: the pipeline's own bag ---------------------------------------------------------

def test_pipeline_bag_end_to_end_bagit_valid_then_flip_one_byte(tmp_path):
    if not (SAMPLE / "khojaly-1992").is_dir():
        pytest.skip("sample collection not generated")
    out = tmp_path / "output"
    run = run_cli("run", "--ingest", SAMPLE, "--output", out, "-q", "khojaly-1992")
    if run.returncode != 0 or not (out / "khojaly-1992" / "bagit.txt").is_file():
        pytest.skip(f"the pipeline does not produce a bag yet: {run.stderr[-300:]}")
    bag = out / "khojaly-1992"
    assert subprocess.run([sys.executable, "-m", "bagit", "--validate", str(bag)], capture_output=True).returncode == 0
    proc, report = fixity_json(cwd=tmp_path, env=TREE)
    assert proc.returncode == 0, proc.stdout
    victim = sorted((bag / "data").rglob("*.tif"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    proc, report = fixity_json(cwd=tmp_path, env=TREE)
    assert proc.returncode == 3
    rel = victim.relative_to(bag).as_posix()
    assert {c for c in problems_of(report)} == {("fixity.mismatch", rel)}


# -- memory: a bag's plan is streamed, never held as a list ---------------------------------------

def test_plan_is_streamed_not_held_one_object_per_file(tmp_path, db):
    """Memory flat in the number of files: no FileTask exists before hashing starts, and while it
    runs only the files in flight do (a plan kept as a list would hold all 4,000 throughout)."""
    import gc
    from pipeline.fixity.plan import FileTask

    files = {f"data/{i // 500}/f{i}.txt": b"%d\n" % i for i in range(4000)}
    bag = write_bag(tmp_path / "many", files, algorithms=("sha256",))
    alive: list[tuple[int, int]] = []

    def progress(name, done, total):
        if done == 0 or done % 640 == 0:
            alive.append((done, sum(isinstance(o, FileTask) for o in gc.get_objects())))

    report = audit([bag], db=db, workers=1, progress=progress)
    assert report.exit_code == 0 and report.bags[0].files_checked == len(files) + 3
    assert alive[0] == (0, 0)
    assert len(alive) > 3 and max(n for _, n in alive) < len(files) // 2, alive


def test_fixity_manifest_undecodable_halfway_counts_none_of_its_lines(bag, db):
    """A manifest that stops decoding after its first lines is reported whole, and none of the
    lines read before the bad byte is held against the files (they are checked by the others)."""
    with open(bag / "manifest-sha512.txt", "ab") as f:
        f.write(b"0" * 128 + b"  data/\xff.txt\n")
    code, report = audit_json(bag, db=db)
    problems = report["bags"][0]["problems"]
    assert ("fixity.manifest", "manifest-sha512.txt") in problems_of(report)
    assert report["bags"][0]["algorithms"] == ["sha256", "sha512"]  # the tag manifests still use sha512
    assert "manifest-sha512.txt" not in report["bags"][0]["manifests"]
    assert [p for p in problems if p["path"].startswith("data/")] == []
    assert code == 3


@pytest.mark.parametrize("content", [b"x", b"\0" * 10], ids=["one-byte zip", "tar of zeros"])
def test_an_archive_that_cannot_be_read_is_a_finding_not_a_crash(tmp_path, db, content):
    archive = tmp_path / ("bad.zip" if content == b"x" else "bad.tar")
    archive.write_bytes(content)
    proc = run_cli("fixity", archive, "--db", db)
    assert no_traceback(proc), proc.stderr
    assert proc.returncode == 3 and "archive.unreadable" in proc.stdout
    assert "100.0%" not in proc.stdout, "nothing was verified: no share of the store is claimed"
    assert "nothing of the store verified" in proc.stdout and "1 bag(s) could not be read" in proc.stdout


def test_odd_tag_files_are_read_not_fatal(bag, db):
    """A Tag-File-Character-Encoding Python does not know, and a bag-info.txt that is a folder:
    the audit still runs over the manifests."""
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: bogus-8\n")
    info = bag / "bag-info.txt"
    info.unlink()
    info.mkdir()
    proc = run_cli("fixity", bag, "--db", db)
    assert no_traceback(proc), proc.stderr
    assert proc.returncode in (0, 3)
