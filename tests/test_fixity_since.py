"""Each audit compared with the checks before it: damage is new or known, a restored file recovered.

Earlier audits run through the library with a frozen clock in the past (the module's clock
injection); the audit under test runs as `pipeline fixity` (now)."""
import csv
import hashlib
import io
import json
import shutil
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone

import pytest

from conftest import no_traceback, run_cli
from pipeline.fixity import Budget, audit
from test_fixity import PAYLOAD, _tar, write_bag

DAY0 = datetime(2025, 3, 1, 2, 0, tzinfo=timezone.utc)


def at(days: float):
    return lambda: DAY0 + timedelta(days=days)


def since_of(report, bag):
    (b,) = [b for b in report["bags"] if b["bag"] == bag]
    return {(p["path"], p["code"], p["since"]) for p in b["problems"]}, b["recovered"]


@pytest.fixture
def store(tmp_path):
    out = tmp_path / "output"
    write_bag(out / "bag1", algorithms=("sha256",))
    return out


def test_problems_say_new_or_known_and_a_restored_file_is_recovered_in_json_text_and_csv(store):
    bag = store / "bag1"
    db = ("--output", store)
    audit(output=store, clock=at(0))                       # intact
    (bag / "data/a.txt").write_bytes(b"ALPHA\n")
    assert audit(output=store, clock=at(1)).exit_code == 3  # a.txt changed (first seen damaged)
    (bag / "data/a.txt").write_bytes(PAYLOAD["data/a.txt"])  # restored from backup
    (bag / "data/notes/%percent.txt").unlink()
    write_bag(store / "bag2", {"data/x.txt": b"x"}, algorithms=("sha256",))
    (store / "bag2" / "data/x.txt").write_bytes(b"y")      # damaged before its first audit

    proc = run_cli("fixity", *db, "--json")
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    report = json.loads(proc.stdout)
    problems, recovered = since_of(report, "bag1")
    assert ("data/notes/%percent.txt", "fixity.missing", "new") in problems   # intact at the check before
    assert ("bag-info.txt", "fixity.oxum", "new") in problems
    assert recovered == [{"path": "data/a.txt", "before": ["fixity.mismatch"]}]
    assert since_of(report, "bag2") == ({("data/x.txt", "fixity.mismatch", None)}, [])  # first check: neither

    proc = run_cli("fixity", *db)
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    lines = proc.stdout.splitlines()
    missing = next(line for line in lines if "data/notes/%percent.txt" in line)
    assert missing.endswith("[fixity.missing] (known: the check before found it too)")
    assert "[recovered]" not in proc.stdout   # recovered once, when it was
    assert "since the check before: 0 new problem(s), 3 known, 0 file(s) recovered" in lines

    proc = run_cli("fixity", *db, "--csv")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert {(r["path"], r["since"]) for r in rows if r["code"] == "fixity.missing"} == {
        ("data/notes/%percent.txt", "known")}


def damaged_audited_restored(store, content: bytes, day: float):
    """bag1's data/a.txt damaged (`content`), found so by an audit on `day`, then restored from backup."""
    (store / "bag1" / "data/a.txt").write_bytes(content)
    audit(output=store, clock=at(day))
    (store / "bag1" / "data/a.txt").write_bytes(PAYLOAD["data/a.txt"])


def test_recovered_file_is_an_info_line_in_text_and_csv_not_a_problem(store):
    audit(output=store, clock=at(0))
    damaged_audited_restored(store, b"ALPHA\n", 1)
    proc = run_cli("fixity", "--output", store)
    assert proc.returncode == 0 and no_traceback(proc), proc.stdout + proc.stderr   # exit codes unchanged
    assert ("  info: data/a.txt: verified intact again (the check before found fixity.mismatch) [recovered]"
            in proc.stdout.splitlines())
    damaged_audited_restored(store, b"ALPHA\n", 2)
    proc = run_cli("fixity", "--output", store, "--csv")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert proc.returncode == 0
    assert [(r["path"], r["code"], r["severity"]) for r in rows if r["path"]] == [("data/a.txt", "recovered", "info")]


def test_rolling_audit_compares_a_file_with_its_own_last_check_not_the_last_nights_share(tmp_path):
    out = tmp_path / "output"
    files = {f"data/f{i}.bin": bytes([i]) * 1000 for i in range(4)}
    write_bag(out / "ten", files, algorithms=("sha256",))
    audit(output=out, clock=at(0))                                        # every file intact
    (out / "ten" / "data/f0.bin").write_bytes(b"\xff" * 1000)
    audit(output=out, budget=Budget(max_bytes=1000), clock=at(1))         # f0 (oldest first) found changed
    audit(output=out, budget=Budget(max_bytes=1000), clock=at(2))         # f1 only: f0 not checked
    proc = run_cli("fixity", "--output", out, "--budget", "50%", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    assert since_of(report, "ten")[0] == {("data/f0.bin", "fixity.mismatch", "known")}


def test_a_bag_vanished_again_after_a_clean_audit_is_new_again_fixity_vanished(store):
    # before: only hashed paths had a state; the bag's "" path never cleared, so it was "known"
    write_bag(store / "bag2", algorithms=("sha256",))
    audit(output=store, clock=at(0))
    away = store.parent / "away"
    shutil.move(store / "bag2", away)
    (vanished,) = [b for b in audit(output=store, clock=at(1)).bags if b.name == "bag2"]
    assert [f.code for f in vanished.findings] == ["fixity.vanished"]
    shutil.move(away, store / "bag2")
    assert audit(output=store, clock=at(2)).exit_code == 0               # back: clean
    shutil.move(store / "bag2", away)
    proc = run_cli("fixity", "--output", store, "--json")
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    assert since_of(json.loads(proc.stdout), "bag2") == ({("", "fixity.vanished", "new")}, [])


def test_payload_oxum_cleared_is_not_recovered_and_found_again_is_new_fixity_oxum(store):
    # before: bag-info.txt took fixity.oxum as its state though it is never hashed for it: "recovered"
    # when the payload was restored, and the oxum found again later was "known"
    audit(output=store, clock=at(0))
    damaged_audited_restored(store, b"longer content here\n", 1)
    assert audit(output=store, clock=at(2)).bags[0].recovered == [("data/a.txt", "fixity.mismatch")]
    (store / "bag1" / "data/a.txt").write_bytes(b"longer content here\n")
    proc = run_cli("fixity", "--output", store, "--json")
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    assert since_of(json.loads(proc.stdout), "bag1") == (
        {("bag-info.txt", "fixity.oxum", "new"), ("data/a.txt", "fixity.mismatch", "new")}, [])


def test_first_damage_is_new_though_a_second_audit_of_the_bag_records_it_meanwhile(store):
    # two audits of one bag at once (cron's rolling and a manual full one): the second records
    # a.txt while the first is still open; before, the first read the labels when it closed and
    # called its own first finding "known"
    audit(output=store, clock=at(0))
    (store / "bag1" / "data/a.txt").write_bytes(b"ALPHA\n")
    inner = []

    def meanwhile(name, done, total):    # the outer audit has recorded every file (commit_every=1)
        if done == total and not inner:
            inner.append(audit(output=store, budget=Budget(max_bytes=10**6), clock=at(1)))

    outer = audit(output=store, clock=at(1), progress=meanwhile, commit_every=1)
    assert inner, "the second audit ran while the first was open"
    assert [(f.path, f.since) for f in outer.bags[0].findings if f.code == "fixity.mismatch"] == [
        ("data/a.txt", "new")]


def test_an_error_after_a_warning_of_the_same_code_is_new_archive_sidecar(tmp_path):
    # plan_archive keeps archive.py's warnings (severity="warning"); before, record() judged them
    # by the code's severity (error), so the real error found later was "known"
    out = tmp_path / "output"
    tar = _tar(write_bag(tmp_path / "src" / "bag1", algorithms=("sha256",)), out / "bag1.tar", "w")
    sidecar = out / "bag1.tar.sha256"
    sidecar.write_text(f"{hashlib.sha256(tar.read_bytes()).hexdigest()}  other.tar\n")    # names another: a warning
    (bag,) = audit([tar], db=out / "fixity.sqlite", clock=at(0)).bags
    assert [(f.code, f.level) for f in bag.findings] == [("archive.sidecar", "warning")]
    sidecar.write_text(f"{'0' * 64}  bag1.tar\n")                                         # wrong checksum: an error
    proc = run_cli("fixity", tar, "--db", out / "fixity.sqlite", "--json")
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    assert since_of(json.loads(proc.stdout), "bag1.tar")[0] == {("bag1.tar.sha256", "archive.sidecar", "new")}


def test_a_full_audit_after_a_fast_one_compares_with_the_full_one_before_archive_sidecar_known(tmp_path):
    # before: compared with the fast audit before it, which does not check the sidecar (no
    # checksum scan), so full -> fast -> full called the same wrong sidecar "new"
    out = tmp_path / "output"
    tar = _tar(write_bag(tmp_path / "src" / "bag1", algorithms=("sha256",)), out / "bag1.tar", "w")
    (out / "bag1.tar.sha256").write_text(f"{'0' * 64}  bag1.tar\n")          # wrong checksum: an error
    db = out / "fixity.sqlite"
    assert [f.code for f in audit([tar], db=db, clock=at(0)).bags[0].findings] == ["archive.sidecar"]
    assert audit([tar], db=db, fast=True, clock=at(1)).bags[0].findings == []   # not checked
    proc = run_cli("fixity", tar, "--db", db, "--json")
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    assert since_of(json.loads(proc.stdout), "bag1.tar")[0] == {("bag1.tar.sha256", "archive.sidecar", "known")}


def test_a_bag_back_after_it_vanished_compares_with_the_audit_that_found_it_fixity_missing_known(store):
    # before: compared with the audit that found it vanished (its only row), so every problem the
    # bag still had came back "new": an unmounted share relabelled the store's known damage
    (store / "bag1" / "data/notes/%percent.txt").unlink()
    write_bag(store / "bag2", algorithms=("sha256",))                        # the folder keeps a bag
    audit(output=store, clock=at(0))                                         # fixity.missing found
    away = store.parent / "away"
    shutil.move(store / "bag1", away)
    for day, since in ((1, "new"), (2, "known")):                            # vanished two nights
        (bag1,) = [b for b in audit(output=store, clock=at(day)).bags if b.name == "bag1"]
        assert [(f.code, f.since) for f in bag1.findings] == [("fixity.vanished", since)]
    shutil.move(away, store / "bag1")
    proc = run_cli("fixity", "--output", store, "--json")
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    assert since_of(json.loads(proc.stdout), "bag1")[0] == {
        ("data/notes/%percent.txt", "fixity.missing", "known"), ("bag-info.txt", "fixity.oxum", "known")}


def test_a_hashed_row_without_a_size_is_no_planning_row_fixity_unreadable(store):
    # before: planned_before took every check without a size for a planning row, and a hashed
    # archive entry that could not be read has none
    from pipeline.fixity.registry import Check, Registry
    location = str((store / "bag1").resolve())
    with Registry(store / "fixity.sqlite") as registry:
        bag_id, first, _ = registry.begin_audit(location, "bag1", "full", "2025-03-01T02:00:00Z", ["sha256"], "t",
                                                [Check("data/gone.txt", "missing", code="fixity.missing")])
        registry.record(bag_id, first, "2025-03-01T02:00:01Z", [Check(
            "data/a.txt", "unreadable", None, None, {"sha256": "0" * 64}, "fixity.unreadable", "could not be read")])
        _, second, _ = registry.begin_audit(location, "bag1", "full", "2025-03-02T02:00:00Z", ["sha256"], "t")
        assert registry.planned_before(bag_id, second) == {
            ("data/gone.txt", "fixity.missing")}


def test_a_schema_2_registry_made_before_planning_rows_were_marked_opens_and_keeps_them(store):
    # a version-2 registry of the first days: no checks.planned; its planning rows are recognised
    (store / "bag1" / "data/notes/%percent.txt").unlink()
    audit(output=store, clock=at(0))
    with closing(sqlite3.connect(store / "fixity.sqlite")) as con:
        con.execute("DROP INDEX IF EXISTS checks_planned")
        if ("planned",) in con.execute("SELECT name FROM pragma_table_info('checks')"):
            con.execute("ALTER TABLE checks DROP COLUMN planned")
    proc = run_cli("fixity", "--output", store, "--json")
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    assert since_of(json.loads(proc.stdout), "bag1")[0] == {
        ("data/notes/%percent.txt", "fixity.missing", "known"), ("bag-info.txt", "fixity.oxum", "known")}


def test_a_full_audit_of_a_new_life_never_compares_with_the_old_life_fixity_missing(store):
    # a new life's first audit was fast: the full one after it has no full audit of its life to
    # compare with, and skipping fast audits must not reach the old life's
    (store / "bag1" / "data/notes/%percent.txt").unlink()
    write_bag(store / "bag2", algorithms=("sha256",))
    audit(output=store, clock=at(0))                                          # the old life's fixity.missing
    shutil.move(store / "bag1", store.parent / "away")
    assert run_cli("fixity", "--output", store, "--retire", "bag1", "--reason", "moved").returncode == 0
    shutil.move(store.parent / "away", store / "bag1")                         # the same bag, back
    assert audit(output=store, fast=True, clock=at(2)).bags[0].revived
    proc = run_cli("fixity", "--output", store, "--json")
    assert proc.returncode == 3 and no_traceback(proc), proc.stderr
    assert {since for _, _, since in since_of(json.loads(proc.stdout), "bag1")[0]} == {None}
