"""The fixity registry on real SQLite: what is recorded, rolling budgets, history, PREMIS,
two audits at once, and an audit killed with SIGKILL halfway."""
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import ROOT, no_traceback, run_cli
from pipeline.errors import UsageError
from pipeline.fixity import Budget, audit, history
from pipeline.fixity.premis_export import premis_document
from pipeline.fixity.registry import Registry
from pipeline.fixity.report import summary_lines
from pipeline.xmlio import NS, load_schema, validation_errors
from test_fixity import TREE, write_bag

DAY0 = datetime(2030, 3, 1, 2, 0, tzinfo=timezone.utc)
TEN = {f"data/f{i}.bin": bytes([i]) * 1000 for i in range(10)}   # ten payload files, 1000 bytes each


def frozen(moment: datetime):
    return lambda: moment


def rows(db: Path, sql: str, args=()):
    with sqlite3.connect(db) as con:
        return con.execute(sql, args).fetchall()


@pytest.fixture
def store(tmp_path):
    write_bag(tmp_path / "output" / "ten", TEN, algorithms=("sha256",))
    return tmp_path / "output"


def test_every_file_is_recorded_with_time_outcome_and_values_seen(store):
    db = store / "fixity.sqlite"
    report = audit(output=store, clock=frozen(DAY0))
    assert report.exit_code == 0
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]
    (audit_row,) = rows(db, "SELECT id, started, finished, mode, outcome, files_checked, bytes_checked FROM audits")
    assert audit_row[1:] == ("2030-03-01T02:00:00Z", "2030-03-01T02:00:00Z", "full", "intact", 13,
                             10_000 + sum((store / "ten" / n).stat().st_size for n in
                                          ("bagit.txt", "bag-info.txt", "manifest-sha256.txt")))
    checks = {p: (checked, outcome, json.loads(seen)) for p, checked, outcome, seen in
              rows(db, "SELECT path, checked, outcome, seen FROM checks WHERE audit_id = ?", (audit_row[0],))}
    assert checks["data/f3.bin"] == ("2030-03-01T02:00:00Z", "intact",
                                     {"sha256": __import__("hashlib").sha256(TEN["data/f3.bin"]).hexdigest()})
    assert len(checks) == 13
    assert rows(db, "SELECT count(*) FROM files WHERE last_verified = '2030-03-01T02:00:00Z'") == [(13,)]


def test_a_changed_file_is_recorded_and_keeps_its_last_good_verification(store):
    db = store / "fixity.sqlite"
    audit(output=store, clock=frozen(DAY0))
    (store / "ten" / "data/f1.bin").write_bytes(b"\x00" * 1000)
    report = audit(output=store, clock=frozen(DAY0 + timedelta(days=1)))
    assert report.exit_code == 3
    (row,) = rows(db, "SELECT last_outcome, last_checked, last_verified FROM files WHERE path = 'data/f1.bin'")
    assert row == ("changed", "2030-03-02T02:00:00Z", "2030-03-01T02:00:00Z")
    (check,) = rows(db, "SELECT outcome, expected, seen, code FROM checks WHERE path = 'data/f1.bin' AND outcome != 'intact'")
    assert check[0] == "changed" and check[3] == "fixity.mismatch"
    assert json.loads(check[1]) != json.loads(check[2])


def test_rolling_budget_checks_oldest_first_and_covers_the_store(store):
    db = store / "fixity.sqlite"
    seen_per_night = []
    for night in range(4):
        report = audit(output=store, budget=Budget(percent=30), clock=frozen(DAY0 + timedelta(days=night)))
        assert report.mode == "rolling" and report.window_days == 4
        aid = report.bags[0].audit_id
        seen_per_night.append({p for (p,) in rows(db, "SELECT path FROM checks WHERE audit_id = ? AND path LIKE 'data/%'",
                                                  (aid,))})
    # never-checked first, three files a night (30% of 10 x 1000 bytes), the fourth night finishes
    assert [len(s) for s in seen_per_night] == [3, 3, 3, 3]
    assert set().union(*seen_per_night[:3]) | seen_per_night[3] == set(TEN)
    assert seen_per_night[3] == {"data/f9.bin", "data/f0.bin", "data/f1.bin"}  # f0, f1: oldest again
    assert report.verified_share == 1.0
    # tag files are checked every night
    assert rows(db, "SELECT count(DISTINCT audit_id) FROM checks WHERE path = 'manifest-sha256.txt'") == [(4,)]


def test_share_verified_within_the_window(store):
    audit(output=store, budget=Budget(max_bytes=5000), clock=frozen(DAY0))
    later = audit(output=store, budget=Budget(max_bytes=2000), window_days=3,
                  clock=frozen(DAY0 + timedelta(days=5)))
    # night 1 verified five files, now outside the 3-day window; tonight two more and the tag files
    tags = sum((store / "ten" / n).stat().st_size for n in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt"))
    assert later.store_bytes == 10_000 + tags
    assert later.verified_bytes_in_window == 2000 + tags
    assert later.stopped_by_budget


def test_a_file_damaged_since_its_last_pass_is_not_counted_as_verified(store):
    audit(output=store, clock=frozen(DAY0))
    target = store / "ten" / "data/f3.bin"
    target.write_bytes(b"\x00" + target.read_bytes()[1:])
    later = audit(output=store, window_days=30, clock=frozen(DAY0 + timedelta(hours=1)))
    assert later.exit_code == 3
    # f3 passed an hour ago, inside the window, but its latest check failed
    assert later.verified_bytes_in_window == later.store_bytes - 1000


def tag_bytes(bag: Path) -> int:
    return sum((bag / n).stat().st_size for n in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt"))


@pytest.mark.parametrize("remove", ["data/f3.bin", "data"])
def test_missing_files_count_in_the_store_as_not_verified(store, remove):
    # before: the store was the files listed AND present, so a bag that lost its data/ was
    # "100.0% of the store verified intact" (its tag files only)
    tags = tag_bytes(store / "ten")
    audit(output=store, clock=frozen(DAY0))
    shutil.rmtree(store / "ten" / remove) if remove == "data" else (store / "ten" / remove).unlink()
    later = audit(output=store, clock=frozen(DAY0 + timedelta(hours=1)))
    assert later.exit_code == 3
    kept = 9000 if remove == "data/f3.bin" else 0
    assert (later.store_bytes, later.verified_bytes_in_window) == (10_000 + tags, kept + tags)
    assert f"{100 * (kept + tags) / (10_000 + tags):.1f}% of the store" in "\n".join(summary_lines(later))


def test_missing_payload_never_audited_counts_at_its_payload_oxum(store):
    tags = tag_bytes(store / "ten")
    shutil.rmtree(store / "ten" / "data")     # before any audit: the registry knows no size
    report = audit(output=store, budget=Budget(percent=50), clock=frozen(DAY0))
    assert (report.store_bytes, report.verified_bytes_in_window) == (10_000 + tags, tags)


def test_max_seconds_stops_early_and_keeps_what_it_did(store):
    report = audit(output=store, budget=Budget(max_seconds=1e-9), clock=frozen(DAY0))
    assert report.stopped_by_budget
    assert 1 <= report.bags[0].files_checked < 13
    assert report.exit_code == 0


def test_history_and_premis_export_valid_against_the_schema(store, xsd_dir):
    db = store / "fixity.sqlite"
    audit(output=store, clock=frozen(DAY0))
    audit(output=store, fast=True, clock=frozen(DAY0 + timedelta(hours=1)))
    (store / "ten" / "data/f2.bin").unlink()
    audit(output=store, clock=frozen(DAY0 + timedelta(days=1)))
    rows_ = history(db, "ten")
    assert [(r.mode, r.status) for r in rows_] == [("full", "intact"), ("fast", "complete"), ("full", "problems")]
    with Registry(db) as reg:
        problems = {r.id: reg.problem_checks(r.id) for r in rows_}
    doc = premis_document(rows_[0].location, "ten", rows_, problems)
    assert validation_errors(doc, load_schema(xsd_dir)) == []
    events = doc.findall(f"{{{NS['premis']}}}event")
    assert len(events) == 2  # the completeness-only audit is no fixity check
    types = {e.findtext(f"{{{NS['premis']}}}eventType") for e in events}
    uris = {e.find(f"{{{NS['premis']}}}eventType").get("valueURI") for e in events}
    assert types == {"fixity check"} and uris == {"http://id.loc.gov/vocabulary/preservation/eventType/fix"}
    outcomes = [e.findtext(f".//{{{NS['premis']}}}eventOutcome") for e in events]
    assert outcomes == ["success", "failure"]
    assert "data/f2.bin" in events[1].findtext(f".//{{{NS['premis']}}}eventOutcomeDetailNote")


def test_history_cli_and_premis_cli(store, xsd_dir, tmp_path):
    audit(output=store, clock=frozen(DAY0))
    proc = run_cli("fixity", "--history", store / "ten", "--output", store)
    assert proc.returncode == 0 and "2030-03-01T02:00:00Z" in proc.stdout and "intact" in proc.stdout
    proc = run_cli("fixity", "--history", "ten", "--output", store, "--premis")
    assert proc.returncode == 0
    from pipeline.xmlio import parse
    doc = parse(proc.stdout.encode())
    assert validation_errors(doc, load_schema(xsd_dir)) == []
    (store / "ten" / "data/f4.bin").unlink()
    audit(output=store, clock=frozen(DAY0 + timedelta(days=1)))
    proc = run_cli("fixity", "--history", "ten", "--output", store)
    assert "2030-03-02T02:00:00Z  full     problems" in proc.stdout
    assert "data/f4.bin: listed in the manifests, not in the bag [fixity.missing]" in proc.stdout
    unknown = run_cli("fixity", "--history", "nope", "--output", store)
    assert unknown.returncode == 2 and no_traceback(unknown)


def test_history_of_a_removed_bag_by_relative_path(store):
    # before: a relative path was made absolute only when it still existed, so the history of a
    # deleted bag was 'no audit of this bag' by ./ten, and found only by its absolute path
    audit(output=store, clock=frozen(DAY0))
    shutil.rmtree(store / "ten")
    proc = run_cli("fixity", "--history", "./ten", "--db", "fixity.sqlite", cwd=store, env=TREE)
    assert proc.returncode == 0 and f"ten ({(store / 'ten').resolve()}): 1 audit(s)" in proc.stdout, proc.stderr


def test_history_of_an_unknown_registry_is_usage_error(tmp_path):
    with pytest.raises(UsageError):
        history(tmp_path / "none.sqlite", "x")


def test_history_reads_the_registry_without_changing_it(store):
    """--history opens the registry read-only: its bytes stay as they are, and a file that is
    not a registry is a usage error (it used to get the registry's tables written into it)."""
    audit(output=store, clock=frozen(DAY0))
    db = store / "fixity.sqlite"
    before = db.read_bytes()
    assert [row.outcome for row in history(db, "ten")] == ["intact"]
    assert db.read_bytes() == before
    other = store / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    before = other.read_bytes()
    proc = run_cli("fixity", "--history", "ten", "--db", other)
    assert proc.returncode == 2 and "not a fixity registry" in proc.stderr and no_traceback(proc)
    assert other.read_bytes() == before
    text = store / "notes.sqlite"
    text.write_text("not a database at all\n" * 20)
    proc = run_cli("fixity", "--history", "ten", "--db", text)
    assert proc.returncode == 2 and "not a fixity registry" in proc.stderr and no_traceback(proc)


def test_audit_refuses_another_applications_database_and_leaves_it_as_it_is(store):
    # before: its tables got ours beside them, or, with its own `bags` table, the audit ended in
    # 'table bags has no column named location'
    other = store.parent / "app.sqlite"
    with closing(sqlite3.connect(other)) as con:
        con.execute("CREATE TABLE bags (id INTEGER PRIMARY KEY, label TEXT)")
        con.commit()
    before = other.read_bytes()
    proc = run_cli("fixity", "--output", store, "--db", other)
    assert proc.returncode == 2 and no_traceback(proc) and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "app.sqlite: not a fixity registry" in proc.stderr
    assert other.read_bytes() == before and not Path(f"{other}-wal").exists()


def test_registry_of_another_schema_version_is_unusable_exit_1(store):
    # before: exit 2 (usage); the README says an unusable registry is exit 1
    db = store / "fixity.sqlite"
    audit(output=store, clock=frozen(DAY0))
    with closing(sqlite3.connect(db)) as con:
        con.execute("UPDATE meta SET value = '9' WHERE key = 'schema'")
        con.commit()
    for args in (("--output", store), ("--history", "ten", "--output", store)):
        proc = run_cli("fixity", *args)
        assert proc.returncode == 1 and no_traceback(proc) and "registry schema 9" in proc.stderr, args


KILLER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import pipeline.fixity as fx
    fx.PROGRESS_EVERY = 1
    def progress(stage, done, total):
        if done >= {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)
    fx.audit([{bag!r}], db={db!r}, workers=1, commit_every=5, progress=progress)
""")


def test_audit_killed_halfway_keeps_what_it_recorded(tmp_path):
    bag = write_bag(tmp_path / "big", {f"data/{i:03d}.txt": str(i).encode() * 50 for i in range(60)},
                    algorithms=("sha256",))
    db = tmp_path / "fixity.sqlite"
    code = KILLER.format(root=str(ROOT), bag=str(bag), db=str(db), kill_at=40)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    (audit_row,) = rows(db, "SELECT finished, outcome FROM audits")
    assert audit_row == (None, None)
    recorded = rows(db, "SELECT count(*) FROM checks WHERE outcome = 'intact'")[0][0]
    assert 35 <= recorded < 63  # 60 payload files and 3 tag files
    # before: --history said 0/0 files 0 bytes for it; now what it recorded
    assert [(r.status, r.files_checked, r.bytes_checked) for r in history(db, str(bag))] == \
        [("interrupted", recorded, rows(db, "SELECT sum(size) FROM checks")[0][0])]
    assert f"interrupted  {recorded}/0 files" in run_cli("fixity", "--history", bag, "--db", db).stdout
    # the next rolling audit starts with what the killed one never reached
    verified_before = {p for (p,) in rows(db, "SELECT path FROM files WHERE last_verified IS NOT NULL")}
    report = audit([bag], db=db, budget=Budget(max_bytes=1))
    tonight = {p for (p,) in rows(db, "SELECT path FROM checks WHERE audit_id = ? AND path LIKE 'data/%'",
                                  (report.bags[0].audit_id,))}
    assert tonight and not tonight & verified_before


CONCURRENT = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {root!r})
    import pipeline.fixity as fx
    fx.PROGRESS_EVERY = 1
    def progress(stage, done, total):  # both audits meet halfway, with write transactions on each side
        if done == 20:
            open({me!r}, "w").close()
            limit = time.monotonic() + 60
            while not all(os.path.exists(m) for m in {markers!r}) and time.monotonic() < limit:
                time.sleep(0.01)
    r = fx.audit([{bag!r}], db={db!r}, commit_every=1, progress=progress)
    sys.exit(r.exit_code)
""")


def test_two_audits_at_once_both_complete(tmp_path):
    db = tmp_path / "fixity.sqlite"
    bags = [write_bag(tmp_path / n, {f"data/{i:03d}.txt": n.encode() * i for i in range(80)}, algorithms=("sha256",))
            for n in ("left", "right")]
    markers = [str(tmp_path / f"marker{i}") for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT.format(root=str(ROOT), bag=str(b), db=str(db),
                                                                       me=m, markers=markers)],
                              stderr=subprocess.PIPE, text=True) for b, m in zip(bags, markers)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert rows(db, "SELECT outcome, files_checked FROM audits ORDER BY id") == [("intact", 83)] * 2
    assert rows(db, "SELECT count(*) FROM checks") == [(2 * 83,)]
    assert rows(db, "SELECT count(*) FROM bags") == [(2,)]


def test_record_keeps_every_field_of_awkward_names_in_one_batch(tmp_path):
    """A batch goes into SQLite as one JSON array: quotes, backslashes, non-ASCII names, a size of
    None and reasons with newlines must come back exactly, and a name twice in a batch upserts."""
    from pipeline.fixity.registry import Check
    names = ['data/a "quoted".bin', "data/back\\slash.bin", "data/été 写真.tif", "data/line\nbreak.bin"]
    with Registry(tmp_path / "r.sqlite") as reg:
        bag_id, audit_id, _ = reg.begin_audit("/bags/x", "x", "full", "2030-03-01T02:00:00Z", ["sha256"], "me")
        checks = [Check(n, "intact", 7, {"sha256": "ab" * 32}) for n in names]
        checks.append(Check(names[0], "changed", None, {"sha256": "cd" * 32}, {"sha256": "ab" * 32},
                            "fixity.mismatch", 'sha256 "differs"\nfrom the manifest'))
        reg.record(bag_id, audit_id, "2030-03-01T02:00:01Z", checks)
        assert reg.count_checks(audit_id) == 5
        assert reg.problem_checks(audit_id) == [checks[-1]]
        assert reg.last_verified("/bags/x") == {n: "2030-03-01T02:00:01Z" for n in names}
    got = rows(tmp_path / "r.sqlite", "SELECT path, size, last_outcome FROM files ORDER BY path")
    assert got == sorted([(names[0], None, "changed")] + [(n, 7, "intact") for n in names[1:]])
