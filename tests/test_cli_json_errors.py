"""With --json, stdout is one JSON document whatever the exit code: also when a command fails
(exit 1) or cannot run, not only on a usage error (tests/test_cli.py) or a success."""
import fcntl
import json
import os
from pathlib import Path

import pytest

from conftest import no_traceback, run_cli
from convert_fixtures import png
from pipeline.cli import cli, echo_json, json_option, main
from pipeline.errors import ProcessingError, UsageError
from pipeline.executor import run as run_collection


def one_report(proc, exit_code: int) -> dict:
    """The one JSON document on stdout (json.loads of all of it: never two), and its exit code."""
    assert proc.returncode == exit_code and no_traceback(proc), proc.stderr
    report = json.loads(proc.stdout)
    assert report["exit_code"] == exit_code
    return report


def test_convert_to_an_existing_destination_json_report_output_exists(tmp_path):
    """The refusal left stdout empty (exit 1, a line on stderr only)."""
    (tmp_path / "a.png").write_bytes(png("L"))
    (tmp_path / "a.tif").write_bytes(b"keep")
    proc = run_cli("convert", tmp_path / "a.png", tmp_path / "a.tif", "--json")
    report = one_report(proc, 1)
    assert report["command"] == "convert" and report["proven"] is False and report["masters"] == []
    assert [(p["code"], p["path"]) for p in report["problems"]] == [("output.exists", str(tmp_path / "a.tif"))]
    assert (tmp_path / "a.tif").read_bytes() == b"keep" and sorted(os.listdir(tmp_path)) == ["a.png", "a.tif"]
    human = run_cli("convert", tmp_path / "a.png", tmp_path / "a.tif")
    assert human.returncode == 1 and human.stdout == ""
    assert human.stderr == f"pipeline: error: {tmp_path / 'a.tif'}: already exists; not overwritten [output.exists]\n"


def test_convert_of_a_corrupt_file_json_report_convert_undecodable(tmp_path):
    (tmp_path / "cut.png").write_bytes(png("L")[:40])
    proc = run_cli("convert", tmp_path / "cut.png", tmp_path / "cut.tif", "--json")
    report = one_report(proc, 1)
    assert report["proven"] is False and [p["code"] for p in report["problems"]] == ["convert.undecodable"]
    assert os.listdir(tmp_path) == ["cut.png"]


def test_run_with_the_output_locked_json_report_output_locked(sample_collection, tmp_path):
    """Another run's lock, held here for real: the collection's problems were empty."""
    lock = tmp_path / "output" / ".staging" / f"{sample_collection.name}.lock"
    lock.parent.mkdir(parents=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = run_cli("run", sample_collection, "--output", tmp_path / "output", "--json")
    finally:
        os.close(fd)
    report = one_report(proc, 1)
    [collection] = report["collections"]
    assert report["ok"] is False and collection["ok"] is False
    assert [(p["code"], p["path"]) for p in collection["problems"]] == [("output.locked", str(lock))]
    assert "another run is working on this collection" in collection["error"]
    assert sorted(p.name for p in (tmp_path / "output").rglob("*")) == [".staging", lock.name]


def test_fixity_that_cannot_open_its_registry_json_report_command_failed(tmp_path):
    """--db in a 'folder' that is a file: exit 1, could not run; stdout was empty."""
    (tmp_path / "file").write_text("x")
    db = tmp_path / "file" / "fixity.sqlite"
    proc = run_cli("fixity", tmp_path, "--db", db, "--json")
    report = one_report(proc, 1)
    assert report["command"] == "fixity" and report["ok"] is False and report["bags"] == []
    [problem] = report["problems"]
    assert problem["code"] == "command.failed" and problem["reason"] == report["error"]
    assert str(db) in report["error"] and report["error"] in proc.stderr


def test_fixity_with_a_db_that_is_not_sqlite_json_report_usage_path(tmp_path):
    """A path named on the command line (it was coded usage.option)."""
    (tmp_path / "notes.db").write_text("not SQLite")
    proc = run_cli("fixity", tmp_path, "--db", tmp_path / "notes.db", "--json")
    report = one_report(proc, 2)
    assert [(p["code"], p["path"]) for p in report["problems"]] == [("usage.path", str(tmp_path / "notes.db"))]
    assert "not a fixity registry" in report["error"]
    assert (tmp_path / "notes.db").read_text() == "not SQLite"


def test_validate_of_a_collection_it_refuses_names_a_problem_command_failed(tmp_path):
    """A collection folder whose name cannot be a bag's: its report's problems were empty."""
    (tmp_path / ".hidden").mkdir()
    proc = run_cli("validate", tmp_path / ".hidden", "--json")
    report = one_report(proc, 1)
    [collection] = report["collections"]
    assert [p["code"] for p in collection["problems"]] == ["command.failed"]
    assert collection["problems"][0]["reason"] == collection["error"]


def test_run_of_no_collection_folder_is_a_usage_path_error(tmp_path):
    """The library's own path errors are coded as the command line's are (it was usage.option)."""
    with pytest.raises(UsageError) as raised:
        run_collection(tmp_path / "nowhere", tmp_path / "output")
    assert [(p.code, p.path) for p in raised.value.problems] == [("usage.path", str(tmp_path / "nowhere"))]
    assert not (tmp_path / "output").exists()


def test_a_command_that_wrote_its_report_and_then_failed_leaves_one_document(capsys):
    """main adds its error report only when the command wrote none: never two documents."""
    @cli.command("reported-then-failed")
    @json_option
    def reported_then_failed(as_json):
        echo_json({"command": "reported-then-failed", "ok": True})
        raise ProcessingError("failed after its report")
    try:
        with pytest.raises(SystemExit) as exited:
            main(["reported-then-failed", "--json"])
    finally:
        cli.commands.pop("reported-then-failed")
    assert exited.value.code == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == {"command": "reported-then-failed", "ok": True}
    assert err == "pipeline: error: failed after its report\n"



def test_missing_db_unusable_schemas_and_profile_paths_json_report_usage_path(tmp_path):
    """A --db that does not exist, a --schemas folder without the schemas, a --profile that is no
    profile: each was coded usage.option; each is a path named on the command line."""
    from test_fixity import TREE, write_bag
    write_bag(tmp_path / "bag")
    (tmp_path / "coll").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "profile.json").write_text("[1]\n")
    cases = [(("fixity", "--history", "bag", "--db", "nowhere.sqlite"), "nowhere.sqlite"),
             (("run", "coll", "--schemas", "empty", "--output", "out"), str(tmp_path / "empty")),
             (("verify", "bag", "--profile", "profile.json"), "profile.json")]
    for args, path in cases:
        report = one_report(run_cli(*args, "--json", cwd=tmp_path, env=TREE), 2)
        problems = report["collections"][0]["problems"] if args[0] == "run" else report["problems"]
        assert [(p["code"], p["path"]) for p in problems] == [("usage.path", path)], args
    assert sorted(os.listdir(tmp_path)) == ["bag", "coll", "empty", "profile.json"]


def test_ctrl_c_of_a_run_with_json_is_one_report_command_interrupted(tmp_path):
    """A real SIGINT to `pipeline run --json` mid-convert: stdout was empty (exit 130)."""
    import signal
    import subprocess
    import sys

    import helpers_stages as hs
    hs.make_busy_collection(tmp_path / "ingest", n=8, size=(1200, 900))
    output = tmp_path / "output"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--ingest", tmp_path / "ingest",
                             "--output", output, "--workers", "1", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        proofs = output / ".staging" / "busy.proofs"
        assert hs.wait_for(lambda: proofs.is_dir() and any(proofs.glob("*.json"))), proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)      # what Ctrl-C on a terminal does: the whole group
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in out + err, err
    report = json.loads(out)
    assert report["command"] == "run" and report["ok"] is False and report["collections"] == []
    assert report["exit_code"] == 130 and err.strip() == f"pipeline: {report['error']}"
    assert [p["code"] for p in report["problems"]] == ["command.interrupted"]
    assert os.listdir(output) == [".staging"]   # no bag published


def test_json_as_the_value_of_another_option_asks_for_no_json_report(tmp_path):
    """`--scheduler --json`: the word is --scheduler's value, so the user asked for no report."""
    proc = run_cli("run", "--executor", "dask", "--scheduler", "--json", "--ingest", tmp_path / "none")
    assert proc.returncode == 2 and no_traceback(proc) and proc.stdout == ""
    assert "no such ingest folder" in proc.stderr
    one_report(run_cli("run", "--json", "--ingest", tmp_path / "none"), 2)


def _bytes_read(pid: int) -> int:
    """What a process and its children have read so far (/proc/PID/io rchar)."""
    total = 0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for p in [pid, *map(int, children)]:
            io = dict(line.split(": ") for line in Path(f"/proc/{p}/io").read_text().splitlines())
            total += int(io["rchar"])
    except (OSError, ValueError, KeyError):
        pass
    return total


def test_ctrl_c_of_verify_says_interrupted_not_a_rerun_of_run_command_interrupted(tmp_path):
    """The interruption's line spoke of `pipeline run`'s staging for every command."""
    import signal
    import subprocess
    import sys

    import helpers_stages as hs
    bag = tmp_path / "bag"
    (bag / "data").mkdir(parents=True)
    with open(bag / "data" / "big.bin", "wb") as f:
        f.truncate(3 << 30)                     # sparse: seconds to hash, no disk
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    (bag / "manifest-sha256.txt").write_text("0" * 64 + "  data/big.bin\n")  # never reached
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "verify", "--json", "--processes", "1", bag],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert hs.wait_for(lambda: _bytes_read(proc.pid) > (200 << 20)), proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in out + err, err
    report = json.loads(out)
    assert report["command"] == "verify" and report["error"] == "interrupted"
    assert [p["code"] for p in report["problems"]] == ["command.interrupted"]
    assert err.strip() == "pipeline: interrupted"
