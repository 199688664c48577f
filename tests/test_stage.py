"""The context: one timestamp per run, deterministic identifiers."""
import pickle
import uuid
from pathlib import Path

import pytest

from pipeline.errors import UsageError
from pipeline.stage import Context, Settings


def make(monkeypatch, epoch="1700000000", name="coll", cid="coll-id"):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    return Context.create(Settings(), Path("/in") / name, Path("/out"), name, cid)


def test_source_date_epoch_fixes_the_clock(monkeypatch):
    ctx = make(monkeypatch)
    assert ctx.now() == "2023-11-14T22:13:20Z"
    assert ctx.staging == Path("/out/.staging/coll")


def test_ids_are_deterministic_uuid5_and_depend_on_collection(monkeypatch):
    a = make(monkeypatch)
    b = make(monkeypatch)
    c = make(monkeypatch, cid="other")
    assert a.make_id("item", "x.jpg") == b.make_id("item", "x.jpg")
    assert a.make_id("item", "x.jpg") != c.make_id("item", "x.jpg")
    assert a.make_id("item", "x.jpg") != a.make_id("item", "y.jpg")
    assert uuid.UUID(a.make_id("item", "x.jpg")).version == 5


def test_context_pickles_for_workers(monkeypatch):
    ctx = make(monkeypatch)
    assert pickle.loads(pickle.dumps(ctx)) == ctx


def test_bad_source_date_epoch_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(UsageError):
        Context.create(Settings(), Path("/in"), Path("/out"), "c")


@pytest.mark.parametrize("epoch", ["253402300800", "-1", "99999999999999999999"])
def test_a_source_date_epoch_outside_years_1970_to_9999_is_a_usage_error(monkeypatch, epoch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    with pytest.raises(UsageError, match="between 0 and 253402300799"):
        Context.create(Settings(), Path("/in"), Path("/out"), "c")


def test_the_last_second_of_9999_is_a_source_date_epoch(monkeypatch):
    assert make(monkeypatch, epoch="253402300799").now() == "9999-12-31T23:59:59Z"


def test_a_source_date_epoch_of_year_10000_is_one_line_and_exit_2(tmp_path):
    from conftest import no_traceback, run_cli
    proc = run_cli("validate", tmp_path, env={"SOURCE_DATE_EPOCH": "253402300800"})
    assert proc.returncode == 2 and no_traceback(proc), proc.stderr
    assert [line for line in proc.stderr.splitlines() if line] == [
        "pipeline: error: SOURCE_DATE_EPOCH must be between 0 and 253402300799 (1970 to 9999), not '253402300800'"]
