"""Atomic publish: kill -9 at any moment, two runs at once, an existing bag never overwritten.

The runs are real processes (tests/package_helpers.py as a script): they build the staging
payload as the stages before `package` would, then run the package stage under the executor's
lock.  With SOURCE_DATE_EPOCH fixed, every run writes the same bytes, so after a kill `output/`
is compared entry by entry with a clean reference run.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bagit
import pytest

from helpers_stages import make_collection
from package_helpers import bagit_valid, build, pipeline_valid, tree_bytes
from pipeline import publish
from pipeline.errors import PackagingError
from pipeline.stage import Settings
from pipeline.stages.package import package_collection

HELPER = Path(__file__).resolve().parent / "package_helpers.py"
ROOT = HELPER.parent.parent
ENV = {**os.environ, "SOURCE_DATE_EPOCH": "1600000000",
       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

PLAIN = ("0", "", "3")              # MAX_BAG_SIZE SERIALIZE ITEMS
SPLIT_TAR = ("120000", "tar.gz", "4")  # two items per bag (the tar.gz bounded by the tar it holds) -> 2 bags


def driver(output: Path, args, kill_at: int = 0, env=None, wait=True):
    cmd = [sys.executable, str(HELPER), str(output), "coll", *args, str(kill_at)]
    if not wait:
        return subprocess.Popen(cmd, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env or ENV, capture_output=True, text=True, timeout=120)


def snapshot(output: Path) -> dict[str, object]:
    """Everything published in output/: folders as {relpath: bytes}, files as bytes."""
    out = {}
    for entry in sorted(output.iterdir()) if output.is_dir() else ():
        if entry.name != ".staging":
            out[entry.name] = tree_bytes(entry) if entry.is_dir() else entry.read_bytes()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A clean run of each configuration: its output and how many file-system steps it took."""
    refs = {}
    for args in (PLAIN, SPLIT_TAR):
        out = tmp_path_factory.mktemp("ref") / "output"
        proc = driver(out, args)
        assert proc.returncode == 0, proc.stderr
        steps = int(proc.stderr.rsplit("steps=", 1)[1])
        for entry in out.iterdir():
            if entry.name == ".staging" or entry.suffix == ".sha256":
                continue
            assert bagit_valid(entry) if entry.is_dir() else pipeline_valid(entry)
        refs[args] = (snapshot(out), steps)
    return refs


def check_after_kill_and_rerun(out: Path, args, expected: dict, when: str) -> None:
    """output/ holds only whole, correct names: none, all, or (killed between the renames) some of
    them with the publish journal (README); a rerun finishes the job."""
    after_kill = snapshot(out)
    for name, content in after_kill.items():
        assert content == expected[name], f"{name} after kill -9 {when}"
    journal = (out / ".staging" / "coll.publish").exists()
    assert journal or after_kill in ({}, expected), f"some names published, no journal, {when}"
    complete = after_kill == expected and not journal
    proc = driver(out, args)
    if complete:
        # killed after the publish was complete: a rerun refuses to overwrite the package
        assert proc.returncode == 1 and "already exists" in proc.stderr, proc.stderr
    else:
        assert proc.returncode == 0, f"rerun after kill -9 {when}: {proc.stderr}"
    assert snapshot(out) == expected, f"rerun after kill -9 {when}"
    assert sorted(p.name for p in (out / ".staging").iterdir()) == ["coll.lock"]


def killed_then_rerun(tmp: Path, args, kill_at: int, expected: dict) -> None:
    out = tmp / f"kill{kill_at}" / "output"
    proc = driver(out, args, kill_at)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    check_after_kill_and_rerun(out, args, expected, f"at step {kill_at}")


def test_kill_9_at_each_step_of_a_plain_run(tmp_path, reference):
    expected, steps = reference[PLAIN]
    points = sorted(set(range(1, steps + 1, 4)) | set(range(steps - 8, steps + 1)))  # all of publish
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda n: killed_then_rerun(tmp_path, PLAIN, n, expected), points))


def test_kill_9_during_a_split_and_serialized_run(tmp_path, reference):
    expected, steps = reference[SPLIT_TAR]
    assert set(expected) == {"coll-1-of-2", "coll-2-of-2", "coll-1-of-2.tar.gz", "coll-1-of-2.tar.gz.sha256",
                             "coll-2-of-2.tar.gz", "coll-2-of-2.tar.gz.sha256"}
    points = sorted(set(range(1, steps + 1, 25)) | set(range(steps - 13, steps + 1)))  # all of publish
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda n: killed_then_rerun(tmp_path, SPLIT_TAR, n, expected), points))


def test_kill_9_at_random_moments(tmp_path, reference):
    expected, _ = reference[SPLIT_TAR]
    seed = int(os.environ.get("KILL_SEED", "5"))
    rng = random.Random(seed)
    for attempt in range(3):
        out = tmp_path / f"r{attempt}" / "output"
        proc = driver(out, SPLIT_TAR, wait=False)
        delay = rng.uniform(0.15, 0.5)  # a run takes about 0.5 s, most of it starting Python
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        check_after_kill_and_rerun(out, SPLIT_TAR, expected, f"after {delay:.3f} s (KILL_SEED={seed})")


def test_two_runs_at_once_one_refuses(tmp_path, reference):
    expected, _ = reference[PLAIN]
    out = tmp_path / "output"
    gate = tmp_path / "gate"
    first = driver(out, PLAIN, env={**ENV, "PACKAGE_TEST_PAUSE": str(gate)}, wait=False)
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{gate}.ready").exists():
            assert first.poll() is None and time.monotonic() < deadline, "first run did not start"
            time.sleep(0.02)
        second = driver(out, PLAIN)  # the first one holds the lock, mid-run
        assert second.returncode == 1
        assert "another run is working on this collection" in second.stderr
        assert "Traceback" not in second.stderr
        Path(f"{gate}.go").touch()
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert snapshot(out) == expected
    third = driver(out, PLAIN)  # and once the bag exists, a new run refuses to overwrite it
    assert third.returncode == 1 and "already exists" in third.stderr
    assert snapshot(out) == expected


def test_rename_never_replaces(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("new")
    for existing in ("empty-dir", "file"):
        dst = tmp_path / existing
        dst.mkdir() if existing == "empty-dir" else dst.write_text("old")  # rename(2) would replace both
        with pytest.raises(FileExistsError):
            publish.rename_noreplace(src, dst)
    assert (src / "f").read_text() == "new" and (tmp_path / "file").read_text() == "old"


def test_journal_left_by_a_killed_run_is_finished_first(tmp_path):
    package, ctx = build(tmp_path / "output")
    sealed = publish.sealed_dir(ctx.output, "coll")
    sealed.mkdir(parents=True)
    (sealed / "coll.zip").write_bytes(b"zip")
    (ctx.output / "coll").mkdir()  # the first move happened before the kill
    publish.journal_path(ctx.output, "coll").write_text(
        '{"moves": [["coll.sealed/coll", "coll"], ["coll.sealed/coll.zip", "coll.zip"]]}')
    result = package_collection(package, ctx)
    assert result.published == ("coll", "coll.zip")
    assert (ctx.output / "coll.zip").read_bytes() == b"zip"
    assert sorted(os.listdir(ctx.output / ".staging")) == []


def test_existing_target_found_mid_publish_is_not_replaced(tmp_path):
    package, ctx = build(tmp_path / "output")
    sealed = publish.sealed_dir(ctx.output, "coll")
    (sealed / "coll").mkdir(parents=True)
    (ctx.output / "coll").mkdir()
    (ctx.output / "coll" / "theirs").write_text("x")
    with pytest.raises(PackagingError) as err:
        publish.publish(ctx.output, "coll", [(sealed / "coll", "coll")])
    assert {p.code for p in err.value.problems} == {"output.exists"}
    assert tree_bytes(ctx.output / "coll") == {"theirs": b"x"}


def test_real_runs_two_at_once_then_kill_9_then_rerun(sample_collection, tmp_path, cli):
    """`pipeline run` on the sample: a second run refuses while the first holds the lock; the
    first, killed at a random moment, leaves no bag or a whole one; a rerun finishes the job."""
    out = tmp_path / "output"
    name = sample_collection.name
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    first = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(sample_collection),
                              "--output", str(out), "-q"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / ".staging" / name / "data").exists() and first.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = cli("run", sample_collection, "--output", out, "-q")
        assert second.returncode == 1 and "Traceback" not in second.stderr
        if first.poll() is None:  # the usual case: the first run is still converting
            assert "another run is working on this collection" in second.stderr
        time.sleep(random.Random(int(os.environ.get("KILL_SEED", "5"))).uniform(0.0, 1.5))
        first.send_signal(signal.SIGKILL)
    finally:
        first.communicate()
    published = [p.name for p in out.iterdir() if p.name != ".staging"]
    assert published in ([], [name])
    if published:
        assert bagit.Bag(str(out / name)).validate(), "a published bag is whole"
    else:
        rerun = cli("run", sample_collection, "--output", out, "-q")
        assert rerun.returncode == 0, rerun.stderr
    assert bagit.Bag(str(out / name)).validate()
    assert [p.name for p in out.iterdir() if p.name != ".staging"] == [name]


def test_output_exists_only_for_this_collections_own_parts(tmp_path):
    """Collections `box-1-of-2` and `box` share output/: box-1-of-2's bag (unsplit: no Bag-Count)
    is not a part of `box`, which publishes beside it; a real part of `box` still refuses it."""
    output = tmp_path / "output"
    other, ctx = build(output, name="box-1-of-2", settings=Settings(serialize="zip"))
    assert package_collection(other, ctx).published == ("box-1-of-2", "box-1-of-2.zip", "box-1-of-2.zip.sha256")
    box, ctx = build(output, name="box")
    assert package_collection(box, ctx).published == ("box",)
    mine = tmp_path / "mine" / "output"
    split, ctx = build(mine, name="box", settings=Settings(max_bag_size=7500))
    assert package_collection(split, ctx).published == ("box-1-of-2", "box-2-of-2")
    with pytest.raises(PackagingError) as err:
        publish.preflight(mine, "box")
    assert [(p.code, p.path) for p in err.value.problems] == [("output.exists", "box-1-of-2"),
                                                               ("output.exists", "box-2-of-2")]


def test_a_sealed_but_unpublished_bag_goes_back_to_the_work_area(tmp_path):
    package, ctx = build(tmp_path / "output")
    sealed = publish.sealed_dir(ctx.output, "coll")
    sealed.mkdir()
    ctx.staging.rename(sealed / "coll")  # killed after sealing, before the journal
    assert publish.preflight(ctx.output, "coll") == ()
    assert (ctx.staging / package.items[0].original.bagpath).is_file()
    assert package_collection(package, ctx).published == ("coll",)


def test_a_journal_whose_sources_are_gone_says_how_to_start_afresh(tmp_path):
    output = tmp_path / "output"
    publish.staging_root(output).mkdir(parents=True)
    journal = publish.journal_path(output, "coll")
    journal.write_text('{"moves": [["coll.sealed/coll", "coll"]]}')
    with pytest.raises(PackagingError) as err:
        publish.preflight(output, "coll")
    assert str(journal) in str(err.value) and not (output / "coll").exists()
    journal.unlink()
    assert publish.preflight(output, "coll") == ()


def test_publish_removes_the_proofs_so_a_rerun_has_no_stale_name_clash(tmp_path, cli):
    """Published, moved away, one JPEG replaced by the same picture as PNG: the rerun publishes
    (the proof records and claims of the published run are gone with its staging)."""
    from PIL import Image
    folder = make_collection(tmp_path / "ingest", n=2)
    out = tmp_path / "output"
    first = cli("run", folder, "--output", out, "-q")
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (out / ".staging").iterdir()) == ["coll.lock"]
    (out / "coll").rename(tmp_path / "moved")
    Image.open(folder / "img0001.jpg").save(folder / "img0001.png")
    (folder / "img0001.jpg").unlink()
    again = cli("run", folder, "--output", out, "-q")
    assert again.returncode == 0 and "convert.name_clash" not in again.stderr, again.stderr
    assert bagit_valid(out / "coll")
    assert (out / "coll" / "data/objects/originals/img0001.png").is_file()
