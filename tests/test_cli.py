"""The command line as users meet it: help everywhere, usage errors exit 2, no tracebacks."""
import json

import pytest

from conftest import ROOT, no_traceback, run_cli

SUBCOMMANDS = ["run", "validate", "convert", "verify", "fixity"]


def test_top_level_help_lists_every_subcommand():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for name in SUBCOMMANDS:
        assert name in proc.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name):
    proc = run_cli(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


def test_unknown_subcommand_is_usage_error():
    proc = run_cli("frobnicate")
    assert proc.returncode == 2
    assert no_traceback(proc)


def test_unknown_option_is_usage_error():
    proc = run_cli("run", "--no-such-option")
    assert proc.returncode == 2
    assert no_traceback(proc)


def test_missing_collection_is_one_line_usage_error(tmp_path):
    proc = run_cli("run", "--ingest", tmp_path / "nowhere", "--output", tmp_path / "out")
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "nowhere" in proc.stderr


def test_output_that_is_a_file_is_one_line_usage_error(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    proc = run_cli("run", "--ingest", ROOT / "ingest", "--output", tmp_path / "out")
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (tmp_path / "out").read_text() == "not a folder"


def test_wrong_schemas_folder_is_refused_before_any_work(tmp_path):
    proc = run_cli("run", "--ingest", ROOT / "ingest", "--output", tmp_path / "out",
                   "--schemas", tmp_path)
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "official schemas" in proc.stderr
    assert not (tmp_path / "out" / ".staging" / "khojaly-1992").exists()


def test_convert_into_an_unwritable_folder_is_one_line(tmp_path):
    proc = run_cli("convert", ROOT / "ingest" / "khojaly-1992" / "khojaly-1992-01.jpg", "/proc/x.tif")
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert len(proc.stderr.strip().splitlines()) == 1


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert "pipeline" in proc.stdout


# A usage error of each subcommand, --json among its words: (words, the problem's code).
# {tmp} is the test's own folder, where nothing exists.
JSON_USAGE_ERRORS = {
    "run-unknown-option": (["run", "--json", "--no-such-option"], "usage.option"),
    "run-bad-workers": (["run", "--workers", "many", "--json"], "usage.option"),
    "run-missing-path": (["run", "--json", "--output", "{tmp}/out", "{tmp}/nowhere"], "usage.path"),
    "run-bad-max-bag-size": (["run", "--max-bag-size", "lots", "--json"], "usage.option"),
    "validate-bad-workers": (["validate", "--json", "--workers", "-1"], "usage.option"),
    "convert-missing-path": (["convert", "{tmp}/nowhere.jpg", "{tmp}/out.tif", "--json"], "usage.path"),
    "verify-missing-path": (["verify", "--json", "{tmp}/nowhere"], "usage.path"),
    "fixity-json-with-csv": (["fixity", "--csv", "--json"], "usage.option"),
    "fixity-premis-with-json": (["fixity", "--history", "bag", "--premis", "--json"], "usage.option"),
    "unknown-command": (["frobnicate", "--json"], "usage.option"),
}
# The outcome and the list of results each command's --json report has.
REPORT_SHAPE = {"run": ("ok", "collections"), "validate": ("valid", "collections"),
                "convert": ("proven", "masters"), "verify": ("ok", "bags"), "fixity": ("ok", "bags"),
                "fixity history": ("ok", "audits"), None: ("ok", None)}


@pytest.mark.parametrize("case", JSON_USAGE_ERRORS)
def test_usage_error_with_json_is_a_json_report_too_usage_option_usage_path(case, tmp_path):
    """A script that parses stdout of `--json` found it empty on a usage error."""
    words, code = JSON_USAGE_ERRORS[case]
    proc = run_cli(*(w.format(tmp=tmp_path) for w in words))
    assert proc.returncode == 2 and no_traceback(proc), proc.stderr
    report = json.loads(proc.stdout)
    command = words[0] if words[0] in SUBCOMMANDS else None
    command = "fixity history" if command == "fixity" and "--history" in words else command
    outcome, results = REPORT_SHAPE[command]
    assert report["command"] == command and report[outcome] is False and report["exit_code"] == 2
    assert results is None or report[results] == []
    assert [p["code"] for p in report["problems"]] == [code]
    said = [line for line in proc.stderr.splitlines() if line.startswith(("Error: ", "pipeline: error: "))]
    assert len(said) == 1 and report["error"] in said[0], proc.stderr
    if code == "usage.path":
        assert report["problems"][0]["path"].startswith(str(tmp_path))
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tif").exists()


def test_usage_error_without_json_leaves_stdout_empty(tmp_path):
    proc = run_cli("run", "--workers", "many", "--", "--json")   # after --, --json is a collection's name
    assert proc.returncode == 2 and proc.stdout == "" and "'--workers'" in proc.stderr


def test_run_output_that_is_a_file_with_json_names_the_usage_problem_usage_path(tmp_path):
    """Found while running (run reports it in the collection's place): its problems were empty,
    then coded usage.option; the output folder is a path named on the command line."""
    (tmp_path / "out").write_text("not a folder")
    proc = run_cli("run", "--ingest", ROOT / "ingest", "--output", tmp_path / "out", "--json")
    assert proc.returncode == 2 and no_traceback(proc), proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["exit_code"] == 2
    [collection] = report["collections"]
    assert [p["code"] for p in collection["problems"]] == ["usage.path"]
    assert collection["problems"][0]["path"] == str(tmp_path / "out")
    assert collection["error"] == f"{tmp_path / 'out'}: {collection['problems'][0]['reason']}"
    said = [line for line in proc.stderr.splitlines() if line.startswith("pipeline: error: ")]
    assert len(proc.stderr.splitlines()) == 1 and said == [f"pipeline: error: {collection['error']}"]
