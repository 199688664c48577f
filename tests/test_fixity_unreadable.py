"""A folder of a bag that the audit may not list (mode 000), seen by a user who cannot bypass file
modes: root lists any folder, so as root the CLI is run as the unprivileged user 65534 (setpriv)."""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, no_traceback, run_cli
from test_fixity import write_bag

SETPRIV = shutil.which("setpriv")
NOBODY = [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups"] if SETPRIV else []
# root keeping its uid but without the capabilities that bypass file modes: for when this Python
# lives where user 65534 may not run it (e.g. under /root, mode 700)
NO_DAC = [SETPRIV, "--inh-caps=-dac_override,-dac_read_search",
          "--bounding-set=-dac_override,-dac_read_search"] if SETPRIV else []


def unprivileged(*args, cwd):
    """`python -m pipeline ARGS` as a process that file modes apply to."""
    if os.geteuid() != 0:
        return run_cli(*args, cwd=cwd)
    probe = subprocess.run([*NOBODY, sys.executable, "-c", "import pipeline.cli"], cwd=cwd, capture_output=True)
    prefix = NOBODY if probe.returncode == 0 else NO_DAC
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    return subprocess.run([*prefix, sys.executable, "-m", "pipeline", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def shared_tmp():
    """A folder user 65534 may enter (pytest's tmp_path is private to root)."""
    if os.geteuid() == 0 and not SETPRIV:
        pytest.skip("running as root without setpriv (util-linux): root lists any folder")
    folder = Path(tempfile.mkdtemp(prefix="fixity-unreadable-"))
    folder.chmod(0o755)
    yield folder
    for p in [folder, *folder.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(folder)


def test_fixity_unreadable_names_a_folder_of_the_bag_that_cannot_be_listed(tmp_path, shared_tmp):
    # before: the folder was skipped in silence, its files reported fixity.missing (and a wrong
    # Payload-Oxum), as if deleted
    output = shared_tmp / "output"
    shutil.copytree(write_bag(tmp_path / "bag1"), output / "bag1")
    registry = shared_tmp / "registry"
    registry.mkdir()
    for p in [output, registry, *output.rglob("*")]:
        p.chmod(0o777 if p == registry else (0o755 if p.is_dir() else 0o644))
    (output / "bag1" / "data" / "photos").chmod(0o000)
    proc = unprivileged("fixity", "--output", output, "--db", registry / "fixity.sqlite", cwd=ROOT)
    assert proc.returncode == 3 and no_traceback(proc), proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "  data/photos: the folder cannot be listed: Permission denied [fixity.unreadable]" in lines
    assert "  data/photos/b.jpg: in data/photos, a folder that cannot be listed [fixity.unreadable]" in lines
    assert "fixity.missing" not in proc.stdout and "fixity.oxum" not in proc.stdout
