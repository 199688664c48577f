"""`pipeline fixity` on hostile bags: special files where tag files belong, names that are not
UTF-8, odd manifests and options.  Each must give one line per problem and the right exit code,
never a hang, a traceback or a lost report."""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import unicodedata
from contextlib import closing

from conftest import no_traceback, run_cli
from pipeline.errors import UsageError
from pipeline.fixity import audit
from pipeline.xmlio import parse
from test_fixity import TREE, audit_json, problems_of, write_bag

import pytest


@pytest.fixture
def bag(tmp_path):
    return write_bag(tmp_path / "store" / "bag1")


@pytest.fixture
def db(tmp_path):
    return tmp_path / "registry" / "fixity.sqlite"


def test_fixity_special_fifo_tag_files_are_never_opened(bag, db):
    """A fifo in place of bagit.txt and bag-info.txt: opening one to read would wait forever for a
    writer (the timeout only stops a hung test)."""
    for name in ("bagit.txt", "bag-info.txt"):
        (bag / name).unlink()
        os.mkfifo(bag / name)
    for fast in ((), ("--fast",)):
        proc = run_cli("fixity", bag, "--db", db, *fast, timeout=120)
        assert proc.returncode == 3 and no_traceback(proc), proc.stderr
        assert "bagit.txt: symbolic link or special file; not followed [fixity.special]" in proc.stdout


def test_fixity_special_linked_tag_file_and_manifest_are_not_followed(bag, db, tmp_path):
    """bag-info.txt and a manifest as links to files outside the bag: neither is read (a followed
    bag-info.txt would give a Payload-Oxum finding, a followed manifest a missing file)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "info").write_text("Payload-Oxum: 1.1\n")
    (outside / "manifest").write_text("00" * 32 + "  data/elsewhere.txt\n")
    (bag / "bag-info.txt").unlink()
    (bag / "bag-info.txt").symlink_to(outside / "info")
    (bag / "manifest-sha256.txt").rename(outside / "real-manifest")
    (bag / "manifest-sha256.txt").symlink_to(outside / "manifest")
    code, report = audit_json(bag, db=db)
    found = problems_of(report)
    assert code == 3
    assert ("fixity.special", "bag-info.txt") in found and ("fixity.special", "manifest-sha256.txt") in found
    assert not [p for p in found if p[0] in ("fixity.oxum", "fixity.missing")], found


def test_fixity_tag_file_over_the_cap_is_not_read(bag, db):
    (bag / "bag-info.txt").write_bytes(b"Payload-Oxum: 1.1\n" + b"X-Padding: " + b"x" * (5 << 20) + b"\n")
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert ("fixity.tag_file", "bag-info.txt") in problems_of(report)
    assert "fixity.oxum" not in [c for c, _ in problems_of(report)]


def test_names_that_are_not_utf8_are_reported_escaped_and_recorded(tmp_path, db):
    """A bag folder and a payload file named with a byte that is not UTF-8: the audit finishes,
    reports the file as unexpected under an escaped name, and records the audit as finished."""
    bag = write_bag(tmp_path / "store" / "bag1")
    odd = os.fsencode(tmp_path / "store") + b"/bag\xff"
    os.rename(bag, odd)
    with open(odd + b"/data/x\xff.jpg", "wb") as f:
        f.write(b"extra")
    proc = run_cli("fixity", os.fsdecode(odd), "--db", db, "--json")
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    report = json.loads(proc.stdout)
    assert report["bags"][0]["bag"] == "bag\\xff"
    assert sorted(problems_of(report)) == [("fixity.oxum", "bag-info.txt"), ("fixity.unexpected", "data/x\\xff.jpg")]
    for ref in ("bag\\xff", os.fsdecode(odd)):   # by its name as shown, and by its path
        history = run_cli("fixity", "--history", ref, "--db", db)
        assert history.returncode == 0 and no_traceback(history), history.stderr
        assert "problems" in history.stdout and "interrupted" not in history.stdout


def test_fixity_algorithm_extendable_output_shake_is_refused_not_fatal(bag, db):
    """SHAKE has no fixed digest size: hashlib gives it no hexdigest() without a length."""
    (bag / "manifest-shake128.txt").write_text("00" * 32 + "  data/a.txt\n")
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert problems_of(report) == [("fixity.algorithm", "manifest-shake128.txt")]
    assert "no fixed digest size" in report["bags"][0]["problems"][0]["reason"]
    assert report["bags"][0]["files_checked"] == report["bags"][0]["files_total"] > 0


@pytest.mark.parametrize("encoding", ["base64", "rot13", "zlib", "bogus-8"])
def test_fixity_encoding_that_is_no_text_encoding_is_read_as_utf8(bag, db, encoding):
    (bag / "bagit.txt").write_text(f"BagIt-Version: 1.0\nTag-File-Character-Encoding: {encoding}\n")
    code, report = audit_json(bag, db=db)
    assert code == 3    # bagit.txt changed: its tag manifest lines no longer match
    assert sorted(problems_of(report)) == [("fixity.encoding", "bagit.txt")] + [("fixity.mismatch", "bagit.txt")] * 2
    assert report["bags"][0]["files_checked"] == report["bags"][0]["files_total"] == 8


def test_window_beyond_a_century_is_refused_up_front_and_a_tiny_budget_clamps_it(bag, db):
    """--window-days 800000 once overflowed the date arithmetic after all the hashing."""
    proc = run_cli("fixity", bag, "--db", db, "--window-days", "800000")
    assert proc.returncode == 2 and no_traceback(proc) and "800000" in proc.stderr
    with pytest.raises(UsageError, match="window-days"):
        audit([bag], db=db, window_days=800000)
    assert not db.exists(), "refused before the registry was opened"
    proc = run_cli("fixity", bag, "--db", db, "--budget", "0.0001%", "--json")
    assert proc.returncode == 0 and no_traceback(proc), proc.stderr
    assert json.loads(proc.stdout)["store"]["window_days"] == 36500


def test_premis_export_of_names_with_control_characters_is_valid_xml(tmp_path, db):
    """A bag folder and a payload file whose names hold control characters (legal on disk):
    the PREMIS export replaces what XML 1.0 cannot hold instead of failing."""
    bag = write_bag(tmp_path / "store" / "bag\x01one")
    (bag / "data" / "odd\x02name.txt").write_bytes(b"extra")
    assert audit([bag], db=db).exit_code == 3
    proc = run_cli("fixity", "--history", bag, "--db", db, "--premis")
    assert proc.returncode == 0 and no_traceback(proc), proc.stderr
    doc = parse(proc.stdout.encode())
    premis = "{http://www.loc.gov/premis/v3}"
    assert doc.findtext(f".//{premis}originalName") == "bag\ufffdone"
    assert "data/odd\ufffdname.txt" in doc.findtext(f".//{premis}eventOutcomeDetailNote")


@pytest.mark.parametrize("listed", ["NFC", "NFD"])
@pytest.mark.parametrize("twin_content", [b"bonjour", b"another file"], ids=["same content", "other content"])
def test_fixity_twin_names_differing_only_by_normalization_keep_both(tmp_path, db, listed, twin_content):
    """The manifest's own spelling is checked (whichever the directory lists first); the twin is
    an error, never dropped.  Both spellings are tried, so each listing order is met once."""
    other = "NFD" if listed == "NFC" else "NFC"
    name = unicodedata.normalize(listed, "data/café.txt")
    bag = write_bag(tmp_path / "bag", {name: b"bonjour"})
    twin = unicodedata.normalize(other, "data/café.txt")
    (bag / twin).write_bytes(twin_content)
    code, report = audit_json(bag, db=db)
    assert code == 3
    assert sorted(problems_of(report)) == [("fixity.oxum", "bag-info.txt"), ("fixity.twin", twin)]
    assert report["bags"][0]["files_checked"] == report["bags"][0]["files_total"] == 5


def test_damaged_bag_without_bagit_and_manifests_is_audited_and_reported(tmp_path, db):
    """`pipeline fixity a b` where b lost bagit.txt and its manifests: b was taken for an empty
    folder of bags and dropped (exit 0)."""
    a, b = write_bag(tmp_path / "a"), write_bag(tmp_path / "b")
    for tag in ["bagit.txt", *(p.name for p in b.glob("*manifest-*.txt"))]:
        (b / tag).unlink()
    proc = run_cli("fixity", a, b, "--db", db, "--json")
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    report = json.loads(proc.stdout)
    assert [x["bag"] for x in report["bags"]] == ["a", "b"]
    found = problems_of(report, 1)
    assert ("fixity.no_bagit", "bagit.txt") in found and ("fixity.no_manifest", "") in found
    assert ("fixity.unexpected", "data/a.txt") in found


def test_fixity_not_a_bag_named_folder_holding_no_bag_exits_1(tmp_path, db):
    a, empty = write_bag(tmp_path / "a"), tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("fixity", a, empty, "--db", db)
    assert proc.returncode == 1 and no_traceback(proc), proc.stderr
    assert "empty: NOT AUDITED" in proc.stdout


@pytest.mark.parametrize("fate", ["deleted", "renamed"])
def test_fixity_vanished_bag_the_registry_knows_is_reported(tmp_path, fate):
    """A bag audited before and gone from output/ (rm -rf, or renamed) is a problem, not a
    store '100% verified'; with it the last bag gone, the audit still says so."""
    out = tmp_path / "output"
    one, two = write_bag(out / "one"), write_bag(out / "two")
    assert run_cli("fixity", cwd=tmp_path, env=TREE).returncode == 0
    if fate == "deleted":
        shutil.rmtree(two)
    else:
        two.rename(out / "three")
    proc = run_cli("fixity", "--json", cwd=tmp_path, env=TREE)
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    report = json.loads(proc.stdout)
    vanished = [(b["bag"], p["code"]) for b in report["bags"] for p in b["problems"] if p["code"] == "fixity.vanished"]
    assert vanished == [("two", "fixity.vanished")]
    history = run_cli("fixity", "--history", "two", cwd=tmp_path, env=TREE)
    assert "no longer found" in history.stdout
    shutil.rmtree(one)
    shutil.rmtree(out / "three", ignore_errors=True)
    proc = run_cli("fixity", out, cwd=tmp_path, env=TREE)
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    assert "one: PROBLEMS" in proc.stdout and "two: PROBLEMS" in proc.stdout


@pytest.mark.parametrize("args", [("--budget", ""), ("--max-bytes", ""), ("--max-seconds", "nan")])
def test_empty_budget_and_nan_seconds_are_usage_errors(bag, db, args):
    """`--budget ''` ran a full audit, `--max-seconds nan` a rolling one that never stopped."""
    proc = run_cli("fixity", bag, "--db", db, *args)
    assert proc.returncode == 2 and no_traceback(proc), proc.stdout + proc.stderr
    assert args[0] in proc.stderr and not db.exists()


def test_ctrl_c_during_fixity_says_what_the_audit_kept(bag, db):
    """SIGINT while `pipeline fixity` runs (held in its report: stdout is a pipe nobody reads yet,
    and the report is larger than the pipe) names the registry, not `pipeline run`'s staging."""
    for n in range(600):
        (bag / "data" / f"extra-{n:04}.txt").write_bytes(b"x")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "fixity", bag, "--db", db, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None and not _finished_audits(db):
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and b"Traceback" not in err, err
    assert b"--history" in err and b"pipeline run" not in err


def _finished_audits(db) -> int:
    if not db.exists():
        return 0
    with closing(sqlite3.connect(db, timeout=60)) as con:
        try:
            return con.execute("SELECT count(*) FROM audits WHERE finished IS NOT NULL").fetchone()[0]
        except sqlite3.OperationalError:    # the schema is not written yet
            return 0


def test_names_in_the_human_report_cannot_forge_a_line_or_reach_the_terminal(bag, db):
    # before: a file named "x<LF>1 bag(s)..." printed a forged summary line, and ESC reached the terminal
    forged = "x\n1 bag(s), 0 files (0 B) checked; 0 problem(s), 0 changed file(s)\x1b[2J"
    (bag / "data" / forged).write_bytes(b"sneaked in\n")
    proc = run_cli("fixity", bag, "--db", db)
    assert proc.returncode == 3 and no_traceback(proc)
    assert "\x1b" not in proc.stdout
    assert [line for line in proc.stdout.splitlines() if line.startswith("1 bag(s)")] == \
        ["1 bag(s), 8 files (14.3 KB) checked; 2 problem(s), 0 changed file(s)"]   # unexpected, oxum
    assert "  data/x\\n1 bag(s), 0 files (0 B) checked; 0 problem(s), 0 changed file(s)\\x1b[2J: in the bag," \
        in proc.stdout
    history_out = run_cli("fixity", "--history", bag, "--db", db).stdout
    assert "\x1b" not in history_out and "data/x\\n1 bag(s)" in history_out
