"""`pipeline fixity --retire BAG --reason TEXT`: a bag deliberately deleted or moved stops being
reported vanished, keeps its history, and starts a new life if it comes back; and a registry of
schema version 1 (before retirements and per-file states) is migrated when opened."""
import json
import shutil
import sqlite3
from contextlib import closing
from datetime import datetime, timezone

import pytest

from conftest import no_traceback, run_cli
from pipeline.errors import UsageError
from pipeline.fixity import audit
from pipeline.fixity.registry import Registry
from test_fixity import TREE, write_bag

DAY0 = datetime(2025, 3, 1, 2, 0, tzinfo=timezone.utc)


def fixity(*args, cwd):
    proc = run_cli("fixity", *args, cwd=cwd, env=TREE)
    assert no_traceback(proc), proc.stderr
    return proc


def indexes(con) -> set[str]:
    return {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_retired_bag_is_no_longer_vanished_and_its_history_shows_audits_and_retirement(tmp_path):
    # before: a bag deleted on purpose was fixity.vanished at every audit, for ever
    out = tmp_path / "output"
    write_bag(out / "one"), write_bag(out / "two")
    audit(output=out, clock=lambda: DAY0)
    shutil.rmtree(out / "two")
    assert "fixity.vanished" in fixity(cwd=tmp_path).stdout
    proc = fixity("--retire", "two", "--reason", "moved to the tape library", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.count("\n") == 1
    assert proc.stdout.startswith(f"two ({(out / 'two').resolve()}): retired 20")
    assert proc.stdout.rstrip().endswith(": moved to the tape library")
    proc = fixity(cwd=tmp_path)
    assert proc.returncode == 0 and "vanished" not in proc.stdout and "two" not in proc.stdout, proc.stdout
    history = fixity("--history", "two", cwd=tmp_path).stdout.splitlines()
    assert history[0].endswith("2 audit(s)") and history[1].startswith("  2025-03-01T02:00:00Z  full     intact")
    assert "no longer found" in history[3] and history[4].endswith("retired: moved to the tape library")
    report = json.loads(fixity("--history", "two", "--json", cwd=tmp_path).stdout)
    assert [r["reason"] for r in report["retirements"]] == ["moved to the tape library"]
    assert report["retirements"][0]["revived"] is None
    proc = fixity("--retire", "two", "--reason", "again", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "already retired" in proc.stderr


def test_retire_an_unknown_ambiguous_or_present_bag_is_usage_error_exit_2_one_line(tmp_path):
    db = tmp_path / "fixity.sqlite"
    for store in ("a", "b"):
        write_bag(tmp_path / store / "same")
        audit([tmp_path / store], db=db, clock=lambda: DAY0)
    shutil.rmtree(tmp_path / "a" / "same")
    for bag, says in (("nowhere", "no audit of this bag"), ("same", "several bags have this name"),
                      (tmp_path / "b" / "same", "the bag is still there")):
        proc = fixity("--retire", bag, "--reason", "gone", "--db", db, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
        assert says in proc.stderr
    assert fixity("--retire", tmp_path / "a" / "same", "--reason", "gone", "--db", db, cwd=tmp_path).returncode == 0
    for args in (("--retire", "same"), ("--reason", "why"), ("--retire", "same", "--reason", " ")):
        assert fixity(*args, "--db", db, cwd=tmp_path).returncode == 2, args


def test_a_bag_back_at_a_retired_location_is_audited_as_a_new_life(tmp_path):
    out = tmp_path / "output"
    write_bag(out / "two")
    audit(output=out, clock=lambda: DAY0)
    (out / "two" / "data" / "a.txt").write_bytes(b"ALPHA\n")
    audit(output=out, clock=lambda: DAY0.replace(day=2))        # the old life's damage
    shutil.rmtree(out / "two")
    assert fixity("--retire", "two", "--reason", "deaccessioned", cwd=tmp_path).returncode == 0
    write_bag(out / "two")                                      # another bag, same place
    (out / "two" / "data" / "a.txt").write_bytes(b"ALPHA\n")
    proc = fixity("--json", cwd=tmp_path)
    report = json.loads(proc.stdout)
    assert proc.returncode == 3
    assert {p["since"] for p in report["bags"][0]["problems"]} == {None}   # nothing compared with the old life
    assert report["bags"][0]["revived"]["reason"] == "deaccessioned"
    assert "info: found at a location retired 20" not in fixity(cwd=tmp_path).stdout  # said once, when it was
    history = fixity("--history", "two", cwd=tmp_path).stdout
    assert "retired: deaccessioned" in history and "found again at its location" in history
    assert fixity("--history", "two", "--json", cwd=tmp_path).stdout.count('"revived": "20') == 1


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE bags (id INTEGER PRIMARY KEY, location TEXT NOT NULL UNIQUE, name TEXT NOT NULL, first_seen TEXT NOT NULL);
CREATE TABLE audits (
    id INTEGER PRIMARY KEY, bag_id INTEGER NOT NULL REFERENCES bags(id),
    started TEXT NOT NULL, finished TEXT, mode TEXT NOT NULL, outcome TEXT,
    files_checked INTEGER NOT NULL DEFAULT 0, bytes_checked INTEGER NOT NULL DEFAULT 0,
    files_total INTEGER NOT NULL DEFAULT 0, bytes_total INTEGER NOT NULL DEFAULT 0,
    problems INTEGER NOT NULL DEFAULT 0, algorithms TEXT NOT NULL DEFAULT '', agent TEXT NOT NULL DEFAULT '');
CREATE INDEX audits_bag ON audits(bag_id, started);
CREATE TABLE checks (
    audit_id INTEGER NOT NULL REFERENCES audits(id), path TEXT NOT NULL, checked TEXT NOT NULL,
    outcome TEXT NOT NULL, size INTEGER, seen TEXT NOT NULL DEFAULT '{}', expected TEXT NOT NULL DEFAULT '{}',
    code TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '');
CREATE INDEX checks_audit ON checks(audit_id);
CREATE TABLE files (
    bag_id INTEGER NOT NULL REFERENCES bags(id), path TEXT NOT NULL, size INTEGER,
    last_checked TEXT, last_outcome TEXT, last_verified TEXT,
    PRIMARY KEY (bag_id, path)) WITHOUT ROWID;
INSERT INTO meta VALUES ('schema', '1');
"""


def test_registry_of_schema_1_is_migrated_keeping_its_history_and_file_states(tmp_path):
    out = tmp_path / "output"
    bag = write_bag(out / "old", algorithms=("sha256",))
    db = out / "fixity.sqlite"
    when = "2024-01-01T00:00:00Z"
    with closing(sqlite3.connect(db)) as con:     # a registry as version 1 wrote it: one audit, a.txt changed
        con.executescript(V1_SCHEMA)
        con.execute("INSERT INTO bags VALUES (1, ?, 'old', ?)", (str(bag.resolve()), when))
        con.execute("INSERT INTO audits VALUES (1, 1, ?, ?, 'full', 'problems', 2, 12, 2, 12, 1, 'sha256', 'v1')",
                    (when, when))
        con.execute("INSERT INTO checks VALUES (1, 'data/a.txt', ?, 'changed', 6, '{}', '{}', 'fixity.mismatch',"
                    " 'sha256 differ from the manifest')", (when,))
        con.executemany("INSERT INTO files VALUES (1, ?, 6, ?, ?, ?)",
                        [("data/a.txt", when, "changed", None), ("data/photos/b.jpg", when, "intact", when)])
        con.commit()
    assert "2024-01-01T00:00:00Z  full     problems" in fixity("--history", "old", cwd=tmp_path).stdout  # read as it is
    (bag / "data" / "a.txt").write_bytes(b"ALPHA\n")
    (bag / "data" / "photos" / "b.jpg").write_bytes(b"\x00" * 10240)
    proc = fixity("--json", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    problems = {(p["path"], p["since"]) for p in json.loads(proc.stdout)["bags"][0]["problems"]}
    assert problems == {("data/a.txt", "known"), ("data/photos/b.jpg", "new")}
    with closing(sqlite3.connect(db)) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)
        assert "retirements_open" in indexes(con)
    history = fixity("--history", "old", cwd=tmp_path).stdout
    assert "2 audit(s)" in history and "v1" not in history and "sha256 differ from the manifest" in history
    shutil.rmtree(bag)
    assert fixity("--retire", "old", "--reason", "moved", cwd=tmp_path).returncode == 0


def test_premis_export_of_history_holds_the_retirement_as_a_deaccession_event(tmp_path, xsd_dir):
    """--history --premis left the retirement out: now a deaccession event (id.loc.gov URI), its
    detail the reason, after the bag's fixity checks, valid, the same at every export."""
    from pipeline.xmlio import NS, load_schema, parse, validation_errors
    out = tmp_path / "output"
    write_bag(out / "two")
    audit(output=out, clock=lambda: DAY0)
    shutil.rmtree(out / "two")
    assert fixity("--retire", "two", "--reason", "moved to <tape> & gone", cwd=tmp_path).returncode == 0
    proc = fixity("--history", "two", "--premis", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == fixity("--history", "two", "--premis", cwd=tmp_path).stdout
    doc = parse(proc.stdout.encode())
    assert validation_errors(doc, load_schema(xsd_dir)) == []
    p = f"{{{NS['premis']}}}"
    events = doc.findall(f"{p}event")
    assert [e.findtext(f"{p}eventType") for e in events] == ["fixity check", "deaccession"]
    retired = events[1]
    assert retired.find(f"{p}eventType").get("valueURI") == "http://id.loc.gov/vocabulary/preservation/eventType/dea"
    assert retired.findtext(f".//{p}eventDetail") == "moved to <tape> & gone"
    assert retired.findtext(f".//{p}eventOutcome") == "success"
    assert "retirement recorded" in retired.findtext(f".//{p}eventOutcomeDetailNote")
    assert retired.findtext(f"{p}eventDateTime") >= "2025-03-02"    # when it was retired, not audited
    assert retired.findtext(f".//{p}linkingObjectIdentifierValue") == doc.findtext(f".//{p}objectIdentifierValue")


def test_premis_with_json_is_a_usage_error_exit_2_one_line(tmp_path):
    """--history --premis --json wrote the PREMIS XML, exit 0 (as --csv with --json, they exclude each other)."""
    out = tmp_path / "output"
    write_bag(out / "two")
    audit(output=out, clock=lambda: DAY0)
    proc = fixity("--history", "two", "--premis", "--json", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--premis" in proc.stderr
    assert json.loads(proc.stdout)["problems"][0]["code"] == "usage.option" and "<premis" not in proc.stdout


def test_two_retirements_of_one_bag_at_once_only_one_is_kept(tmp_path):
    # before: `already retired` was checked outside the transaction, so two --retire at once both
    # passed it and the bag had two open retirements; the unique index retirements_open decides
    out = tmp_path / "output"
    write_bag(out / "two")
    audit(output=out, clock=lambda: DAY0)
    location = str((out / "two").resolve())
    with Registry(out / "fixity.sqlite") as first, Registry(out / "fixity.sqlite") as second:
        first.retire(location, "2025-03-02T00:00:00Z", "moved")      # both passed the check before
        with pytest.raises(UsageError, match="already retired"):
            second.retire(location, "2025-03-02T00:00:01Z", "moved too")
    with closing(sqlite3.connect(out / "fixity.sqlite")) as con:
        assert con.execute("SELECT reason FROM retirements").fetchall() == [("moved",)]


def test_a_schema_2_registry_without_the_open_retirement_index_gets_it_when_opened(tmp_path):
    out = tmp_path / "output"
    write_bag(out / "one")
    audit(output=out, clock=lambda: DAY0)
    with closing(sqlite3.connect(out / "fixity.sqlite")) as con:   # as this version's first schema 2 made it
        con.execute("DROP INDEX retirements_open")
        assert "retirements_open" not in indexes(con)
    assert fixity(cwd=tmp_path).returncode == 0
    with closing(sqlite3.connect(out / "fixity.sqlite")) as con:
        assert "retirements_open" in indexes(con)
        plan = " ".join(row[-1] for row in con.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM retirements r WHERE r.bag_id = 1 AND r.revived IS NULL"))
        assert "retirements_open" in plan     # bags_in and begin_audit no longer scan every retirement


def test_a_registry_holding_two_open_retirements_of_one_bag_opens_audits_and_retires(tmp_path):
    # before: SCHEMA created retirements_open at every writable open, and a registry the race of
    # two --retire at once had left with two open rows failed it: every audit and --retire exited 1
    out = tmp_path / "output"
    write_bag(out / "one"), write_bag(out / "two")
    audit(output=out, clock=lambda: DAY0)
    shutil.rmtree(out / "two")
    with closing(sqlite3.connect(out / "fixity.sqlite")) as con, con:   # as the race left it
        con.execute("DROP INDEX retirements_open")
        con.executemany("INSERT INTO retirements (bag_id, retired, reason) SELECT id, ?, ? FROM bags"
                        " WHERE name = 'two'", [("2025-03-02T00:00:01Z", "moved too"), ("2025-03-02T00:00:00Z", "moved")])
    proc = fixity(cwd=tmp_path)
    assert proc.returncode == 0 and "vanished" not in proc.stdout, proc.stdout + proc.stderr
    proc = fixity("--retire", "two", "--reason", "again", cwd=tmp_path)
    assert proc.returncode == 2 and "already retired" in proc.stderr
    shutil.rmtree(out / "one")
    assert fixity("--retire", "one", "--reason", "gone", cwd=tmp_path).returncode == 0
    with closing(sqlite3.connect(out / "fixity.sqlite")) as con:
        assert "retirements_open" in indexes(con)
        assert con.execute("SELECT b.name, r.reason FROM retirements r JOIN bags b ON b.id = r.bag_id"
                           " ORDER BY r.id").fetchall() == [("two", "moved"), ("one", "gone")]   # the earliest kept


def test_history_and_retire_json_reports_carry_outcome_and_exit_code_and_their_own_command(tmp_path):
    """Every --json report has its outcome and exit_code (history's and retire's had neither),
    and the report of a usage error names the mode (it said plain 'fixity', with 'bags')."""
    out = tmp_path / "output"
    write_bag(out / "one")
    audit(output=out, clock=lambda: DAY0)
    shutil.rmtree(out / "one")
    retired = json.loads(fixity("--retire", "one", "--reason", "gone", "--json", cwd=tmp_path).stdout)
    assert (retired["command"], retired["ok"], retired["exit_code"]) == ("fixity retire", True, 0)
    history = json.loads(fixity("--history", "one", "--json", cwd=tmp_path).stdout)
    assert (history["command"], history["ok"], history["exit_code"]) == ("fixity history", True, 0)
    for args, command in ((("--history", "nothing"), "fixity history"),
                          (("--retire", "one", "--reason", "again"), "fixity retire")):
        proc = fixity(*args, "--json", cwd=tmp_path)
        report = json.loads(proc.stdout)
        assert proc.returncode == 2 and (report["command"], report["ok"], report["exit_code"]) == (command, False, 2)
