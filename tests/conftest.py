"""Shared test fixtures: the CLI as a subprocess, the official XSDs, the sample collection."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "ingest"
XSD_DIR = Path(os.environ.get("PIPELINE_XSD_DIR", ROOT.parent / "shared" / "xsd"))
IN_CI = bool(os.environ.get("CI"))


def run_cli(*args, cwd=None, env=None, input=None, timeout=600):
    """Run `python -m pipeline ARGS` as a subprocess; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.pop("SOURCE_DATE_EPOCH", None)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], cwd=cwd, env=full_env,
                          input=input, capture_output=True, text=True, timeout=timeout)


def no_traceback(proc) -> bool:
    return "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def xsd_dir() -> Path:
    """The official schemas; skipped outside this project's CI when the folder is absent."""
    if not (XSD_DIR / "mets.xsd").is_file():
        if IN_CI:
            pytest.fail(f"official XSDs not found in {XSD_DIR}; CI must validate XML")
        pytest.skip(f"official XSDs not found in {XSD_DIR} (clone outside the project workspace)")
    return XSD_DIR


@pytest.fixture
def sample_collection(tmp_path) -> Path:
    """A private copy of the sample collection (ingest/khojaly-1992)."""
    src = SAMPLE / "khojaly-1992"
    if not src.is_dir():
        pytest.skip("sample collection not generated yet")
    dst = tmp_path / "ingest" / src.name
    shutil.copytree(src, dst)
    return dst
