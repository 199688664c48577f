"""Each audit compared with the checks before it: damage is new or known, a restored file recovered.

Earlier audits run through the library with a frozen clock in the past (the module's clock
injection); the audit under test runs as `pipeline fixity` (now)."""
import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from conftest import no_traceback, run_cli
from pipeline.fixity import Budget, audit
from test_fixity import PAYLOAD, write_bag

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


def test_recovered_file_is_an_info_line_in_text_and_csv_not_a_problem(store):
    bag = store / "bag1"
    audit(output=store, clock=at(0))
    (bag / "data/a.txt").write_bytes(b"ALPHA\n")
    audit(output=store, clock=at(1))
    (bag / "data/a.txt").write_bytes(PAYLOAD["data/a.txt"])
    proc = run_cli("fixity", "--output", store)
    assert proc.returncode == 0 and no_traceback(proc), proc.stdout + proc.stderr   # exit codes unchanged
    assert ("  info: data/a.txt: verified intact again (the check before found fixity.mismatch) [recovered]"
            in proc.stdout.splitlines())
    (bag / "data/a.txt").write_bytes(b"ALPHA\n")
    audit(output=store, clock=at(2))
    (bag / "data/a.txt").write_bytes(PAYLOAD["data/a.txt"])
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
