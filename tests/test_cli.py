"""The command line as users meet it: help everywhere, usage errors exit 2, no tracebacks."""
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
