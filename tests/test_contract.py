"""Contract: on any broken input only PipelineError subclasses leave the public API, and a rejected
collection leaves nothing in the output folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import pipeline
from cases.build import HERE as CASES, RUNTIME, add_runtime_defect, all_codes
from pipeline.errors import CODES, ERROR, PipelineError, RejectedError, UsageError

ONE = pipeline.Settings(workers=1)


def public_calls(collection: Path, output: Path):
    yield lambda: pipeline.validate_collection(collection, ONE)
    yield lambda: pipeline.run(collection, output, ONE)


def published(output: Path) -> list[str]:
    return sorted(p.name for p in output.iterdir() if p.name != ".staging") if output.exists() else []


@pytest.mark.parametrize("code", all_codes())
def test_only_pipeline_errors_escape(code, tmp_path):
    collection = tmp_path / "in" / code
    shutil.copytree(CASES / code, collection, symlinks=True)
    if code in RUNTIME:
        add_runtime_defect(code, collection)
    output = tmp_path / "out"
    for call in public_calls(collection, output):
        try:
            call()
        except PipelineError as exc:
            assert not isinstance(exc, UsageError), exc
            if CODES[code].severity == ERROR:
                assert isinstance(exc, RejectedError) and code in {p.code for p in exc.problems}
        # any other exception fails this test with its traceback: a bug
    if CODES[code].severity == ERROR:
        assert published(output) == []


@pytest.mark.parametrize("target", ["missing", "a-file"])
def test_a_collection_that_is_not_a_folder_is_a_usage_error(tmp_path, target):
    (tmp_path / "a-file").write_text("x")
    for call in public_calls(tmp_path / target, tmp_path / "out"):
        with pytest.raises(UsageError):
            call()
