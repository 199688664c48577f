"""`pipeline validate` as users run it: the sample passes, the broken corpus is rejected, nothing written."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from cases.build import HERE as CASES, RUNTIME, add_runtime_defect, all_codes
from conftest import no_traceback, run_cli
from pipeline.errors import CODES, ERROR

LINE = re.compile(r"^(warning: )?[^:\n]+(:[^\n]*)?: .+ \[[a-z_]+\.[a-z_]+\]$")


def tree_digest(root: Path) -> str:
    """Every path, its kind, mode, size, mtime and content under root."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            h.update(os.fsencode(path.relative_to(root)) + b"\0")
            h.update(f"{st.st_mode} {st.st_size} {st.st_mtime_ns}\0".encode())
            if path.is_symlink():
                h.update(os.fsencode(os.readlink(path)))
            elif path.is_file():
                h.update(path.read_bytes())
    return h.hexdigest()


def broken_corpus(tmp_path: Path) -> Path:
    ingest = tmp_path / "ingest"
    for code in all_codes():
        shutil.copytree(CASES / code, ingest / code, symlinks=True)
        if code in RUNTIME:
            add_runtime_defect(code, ingest / code)
    return ingest


def test_sample_is_valid_with_warnings_and_untouched(sample_collection):
    before = tree_digest(sample_collection.parent)
    proc = run_cli("validate", "--ingest", sample_collection.parent, "--workers", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert no_traceback(proc) and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[-1] == "khojaly-1992: valid: 20 items, 0 errors, 4 warnings"
    assert all(LINE.match(line) for line in lines[:-1]), lines
    assert "[place.spelling]" in proc.stdout and "brotherís" in proc.stdout
    assert tree_digest(sample_collection.parent) == before


def test_json_report(sample_collection):
    proc = run_cli("validate", sample_collection, "--json", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["valid"] is True
    (coll,) = report["collections"]
    assert (coll["collection"], coll["items"], coll["errors"], coll["warnings"]) == ("khojaly-1992", 20, 0, 4)
    assert {p["code"] for p in coll["problems"]} == {"caption.mojibake", "place.spelling"}


def test_broken_corpus_is_rejected_code_by_code_and_untouched(tmp_path):
    ingest = broken_corpus(tmp_path)
    before = tree_digest(ingest)
    proc = run_cli("validate", "--ingest", ingest, "--json", "--workers", "1")
    assert proc.returncode == 1
    assert no_traceback(proc)
    report = {c["collection"]: c for c in json.loads(proc.stdout)["collections"]}
    for code in all_codes():
        found = {p["code"] for p in report[code]["problems"]}
        assert code in found, (code, found)
        assert report[code]["valid"] is (CODES[code].severity != ERROR), code
    assert tree_digest(ingest) == before


def test_one_line_per_problem_even_for_hostile_names(tmp_path):
    ingest = broken_corpus(tmp_path)
    proc = run_cli("validate", ingest / "name.control", ingest / "name.encoding", ingest / "record.schema")
    assert proc.returncode == 1 and no_traceback(proc)
    lines = proc.stdout.splitlines()
    problems = [line for line in lines if not line.endswith(" warnings")]
    assert problems and all(LINE.match(line) for line in problems), problems
    assert r"line\nbreak.jpg: the name holds control characters (U+000A)" in proc.stdout
    assert r"caf\xe9.jpg" in proc.stdout


def test_usage_errors_exit_2(tmp_path):
    proc = run_cli("validate", tmp_path / "no-such-collection")
    assert proc.returncode == 2 and no_traceback(proc)
    assert proc.stderr.strip().count("\n") == 0
    proc = run_cli("validate", "--pixel-limit", "0", tmp_path)
    assert proc.returncode == 2 and no_traceback(proc)


def test_a_folder_that_cannot_name_a_collection_does_not_stop_the_others(tmp_path):
    """A badly named folder in ingest/ is reported in its place, and the collections beside it
    are still validated (--json gives the whole report)."""
    import helpers_stages as hs
    hs.make_collection(tmp_path / "ingest", n=1, name="x" * 210)
    hs.make_collection(tmp_path / "ingest", n=1, name="good")
    proc = run_cli("validate", "--ingest", tmp_path / "ingest", "--json")
    assert proc.returncode == 1 and no_traceback(proc), proc.stderr
    reports = {r["collection"]: r for r in json.loads(proc.stdout)["collections"]}
    assert reports["good"]["valid"] is True
    assert reports["x" * 210]["valid"] is False and "becomes its bag's name" in reports["x" * 210]["error"]
