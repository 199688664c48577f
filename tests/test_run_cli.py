"""`pipeline run` as users meet it: progress only on a terminal, the --json run report, exit codes."""
from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time

import pytest

import helpers_stages as hs
from conftest import no_traceback, run_cli
from pipeline.executor import STAGE_NAMES

STAGE_KEYS = {"stage", "seconds", "items", "bytes", "bytes_added", "problems", "errors", "peak_mb"}
PROBLEM_KEYS = {"code", "severity", "path", "field", "reason"}


@pytest.fixture
def ingest(tmp_path):
    hs.make_collection(tmp_path / "ingest", n=3)
    return tmp_path / "ingest"


def run_json(ingest, output, *extra):
    proc = run_cli("run", "--ingest", ingest, "--output", output, "--json", *extra)
    assert no_traceback(proc), proc.stderr
    return proc, json.loads(proc.stdout)


def test_json_report_shape(ingest, tmp_path):
    proc, report = run_json(ingest, tmp_path / "output")
    assert report["command"] == "run"
    assert proc.returncode == (0 if report["ok"] else 1)
    [coll] = report["collections"]
    assert coll["collection"] == "coll"
    assert coll["items"] == 3
    assert coll["seconds"] >= 0
    names = [s["stage"] for s in coll["stages"]]
    assert names and names == [n for n in STAGE_NAMES if n in names]
    for s in coll["stages"]:
        assert set(s) == STAGE_KEYS
        assert s["items"] == 3 and s["seconds"] >= 0 and s["bytes"] >= s["bytes_added"] >= 0
    assert all(set(p) == PROBLEM_KEYS for p in coll["problems"])
    if coll["ok"]:
        assert set(coll["stages_run"]) == set(names)
    else:
        assert coll["error"]


def test_record_no_image_rejected_json_exit_1(ingest, tmp_path):
    (ingest / "coll" / "img0001.jpg").unlink()
    proc, report = run_json(ingest, tmp_path / "output")
    assert proc.returncode == 1
    [coll] = report["collections"]
    assert coll["ok"] is False and report["ok"] is False
    assert "rejected" in coll["error"]
    assert "record.no_image" in {p["code"] for p in coll["problems"]}
    assert [s["stage"] for s in coll["stages"]] == ["discover", "validate"]
    assert not (tmp_path / "output").exists()


def test_record_no_image_rejected_human_one_line_per_problem(ingest, tmp_path):
    (ingest / "coll" / "img0001.jpg").unlink()
    proc = run_cli("run", "--ingest", ingest, "--output", tmp_path / "output")
    assert proc.returncode == 1
    assert no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert any(line.startswith("img0001.json") and line.endswith("[record.no_image]") for line in lines)
    assert lines[-1].startswith("pipeline: error: coll: rejected")


def test_one_rejected_collection_does_not_stop_the_others(ingest, tmp_path):
    hs.make_collection(ingest, n=2, name="other")
    (ingest / "coll" / "img0001.jpg").unlink()
    proc, report = run_json(ingest, tmp_path / "output")
    assert proc.returncode == 1
    assert [c["collection"] for c in report["collections"]] == ["coll", "other"]
    assert report["collections"][1]["items"] == 2


def test_no_progress_when_stderr_is_not_a_terminal(ingest, tmp_path):
    proc = run_cli("run", "--ingest", ingest, "--output", tmp_path / "output", "--until", "discover")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "[#" not in proc.stderr
    assert "coll: discover: 3 items" in proc.stdout


def run_on_terminal(*args):
    """Run the CLI with stderr on a pseudo-terminal; returns (exit code, what the terminal got)."""
    master, slave = pty.openpty()
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        seen += chunk
    proc.communicate(timeout=120)
    os.close(master)
    return proc.returncode, seen.decode("utf-8", "replace")


def test_progress_bar_on_a_terminal(ingest, tmp_path):
    code, seen = run_on_terminal("run", "--ingest", ingest, "--output", tmp_path / "output",
                                 "--until", "discover")
    assert code == 0
    assert "discover" in seen and "3/3" in seen and "/s" in seen


def test_quiet_silences_the_progress_bar_on_a_terminal(ingest, tmp_path):
    code, seen = run_on_terminal("run", "--ingest", ingest, "--output", tmp_path / "output",
                                 "--until", "discover", "--quiet")
    assert code == 0
    assert "3/3" not in seen


def test_a_broken_sidecar_is_found_by_the_validate_stage_which_reads_it(ingest, tmp_path):
    """Discovery pairs sidecars by name and reads none (the validate stage reads each record
    in its workers): `--until discover` passes a sidecar that is not JSON, validation rejects it."""
    (ingest / "coll" / "img0001.json").write_text('{"identifier": "x",}', encoding="utf-8")
    out = tmp_path / "output"
    assert run_cli("run", "--ingest", ingest, "--output", out, "--until", "discover", "--quiet").returncode == 0
    proc = run_cli("run", "--ingest", ingest, "--output", out, "--until", "validate", "--quiet")
    assert proc.returncode == 1 and no_traceback(proc)
    assert "img0001.json" in proc.stdout + proc.stderr and "[record.json]" in proc.stdout + proc.stderr


def test_until_unknown_stage_is_usage_error(ingest, tmp_path):
    proc = run_cli("run", "--ingest", ingest, "--output", tmp_path / "output", "--until", "nowhere")
    assert proc.returncode == 2
    assert no_traceback(proc)


EPOCH = {"SOURCE_DATE_EPOCH": "700000000"}


def start_run(ingest, output, *extra):
    """`pipeline run` in its own process group (as a shell runs it), not waited for."""
    env = dict(os.environ, **EPOCH)
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--ingest", str(ingest),
                             "--output", str(output), "--quiet", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def proof_records(output, name="busy"):
    return sorted((output / ".staging" / f"{name}.proofs").glob("*.json"))


def master_stats(folder):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("**/*.tif")}


def reused_count(bag):
    [mets] = [p for p in bag.rglob("*.xml") if "mets" in p.name.lower()]
    return mets.read_text(encoding="utf-8").count("reused the master written and proven")


@pytest.fixture
def busy(tmp_path):
    hs.make_busy_collection(tmp_path / "ingest", n=12, size=(1200, 900))
    return tmp_path / "ingest", tmp_path / "output"


def test_killed_mid_convert_rerun_reuses_proven_masters(busy):
    ingest, output = busy
    proc = start_run(ingest, output, "--workers", "1")
    assert hs.wait_for(lambda: len(proof_records(output)) >= 3), proc.communicate()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proven = len(proof_records(output))
    before = master_stats(output / ".staging" / "busy")
    assert proven >= 3 and len(before) >= proven
    assert not (output / "busy").exists()

    rerun = run_cli("run", "--ingest", ingest, "--output", output, "--workers", "1", env=EPOCH)
    assert rerun.returncode == 0, rerun.stderr
    after = master_stats(output / "busy")
    assert len(after) == 12
    kept = [name for name, st in before.items() if after.get(name) == st]  # same inode, same mtime
    assert len(kept) >= proven
    assert reused_count(output / "busy") >= proven


def test_ctrl_c_mid_convert_exits_130_and_rerun_finishes(busy):
    ingest, output = busy
    proc = start_run(ingest, output, "--workers", "2")
    assert hs.wait_for(lambda: len(proof_records(output)) >= 2), proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C on a terminal does: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pipeline: interrupted"), err
    assert not (output / "busy").exists()
    proven = len(proof_records(output))
    assert proven >= 2

    rerun = run_cli("run", "--ingest", ingest, "--output", output, env=EPOCH)
    assert rerun.returncode == 0, rerun.stderr
    assert reused_count(output / "busy") >= proven


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    out = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc to find the workers")
def test_workers_end_with_a_main_process_killed_outright_and_the_rerun_finishes(busy):
    """kill -9 of the main process alone (what the out-of-memory killer does): its workers, which
    hold the collection's lock file open, end too, so the rerun is not refused as another run."""
    ingest, output = busy
    proc = start_run(ingest, output, "--workers", "2")
    assert hs.wait_for(lambda: len(proof_records(output)) >= 2), proc.communicate()
    workers = _children(proc.pid)
    assert workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert hs.wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=30), workers
    rerun = run_cli("run", "--ingest", ingest, "--output", output, env=EPOCH)
    assert rerun.returncode == 0 and no_traceback(rerun), rerun.stderr


def test_ctrl_c_twice_still_ends_the_run_with_one_line(busy):
    """A second Ctrl-C while the workers finish their items (what `timeout` or cron forwarding
    the signal, or an impatient user, does) once left the run hanging for ever."""
    ingest, output = busy
    proc = start_run(ingest, output, "--workers", "2")
    assert hs.wait_for(lambda: len(proof_records(output)) >= 2), proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)      # a hang fails here
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert not _children(proc.pid)


def test_many_warnings_of_one_kind_are_counted_not_all_printed(tmp_path):
    """Twelve JPEGs without a resolution: the human report shows ten such warnings and one line
    counting the rest; --json lists all twelve; errors are never cut (see the rejected tests)."""
    hs.make_collection(tmp_path / "ingest", n=12)
    proc = run_cli("run", "--ingest", tmp_path / "ingest", "--output", tmp_path / "human", "--quiet")
    assert proc.returncode == 0 and no_traceback(proc), proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.endswith("[convert.resolution_assumed]")]
    assert len(lines) == 11
    assert lines[-1] == ("warning: 2 more: not shown, like the 10 above (--json lists every one) "
                         "[convert.resolution_assumed]")
    _, report = run_json(tmp_path / "ingest", tmp_path / "json")
    [coll] = report["collections"]
    assert sum(p["code"] == "convert.resolution_assumed" for p in coll["problems"]) == 12


def test_an_icc_profile_whose_description_xml_cannot_hold_is_carried_and_labelled(tmp_path):
    """The profile is carried byte for byte; its description, a label in the METS's MIX, has the
    character XML cannot hold replaced (U+FFFD). It once crashed the METS writer with a traceback."""
    import io

    from PIL import Image, ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    at = profile.find("sRGB".encode("utf-16-le"))
    bad = profile[:at] + "\x01".encode("utf-16-le") + profile[at + 2:]
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(bad))).startswith("\x01")
    folder = hs.make_collection(tmp_path / "ingest", n=2)
    Image.new("RGB", (48, 32), (90, 80, 70)).save(folder / "img0000.jpg", quality=90, icc_profile=bad)
    proc, report = run_json(tmp_path / "ingest", tmp_path / "output")
    assert proc.returncode == 0, report
    mets = (tmp_path / "output" / "coll" / "data" / "metadata" / "mets.xml").read_text(encoding="utf-8")
    assert "\ufffdRGB built-in" in mets


def test_run_reports_discovery_and_validation_problems_at_once(ingest, tmp_path):
    """An image without a record (found by discovery), a zero-byte image and an impossible
    date (found by validation): `pipeline run` lists all three, as `pipeline validate` does."""
    coll = ingest / "coll"
    (coll / "img0000.json").unlink()                                  # item.no_record
    (coll / "img0001.jpg").write_bytes(b"")                           # image.empty
    record = json.loads((coll / "img0002.json").read_text(encoding="utf-8"))
    (coll / "img0002.json").write_text(json.dumps(record | {"date": "1992-13"}), encoding="utf-8")
    proc, report = run_json(ingest, tmp_path / "output")
    assert proc.returncode == 1
    [found] = report["collections"]
    run_errors = sorted((p["code"], p["path"]) for p in found["problems"] if p["severity"] == "error")
    validated = json.loads(run_cli("validate", "--ingest", ingest, "--json").stdout)["collections"][0]
    assert run_errors == sorted((p["code"], p["path"]) for p in validated["problems"] if p["severity"] == "error")
    assert {path for _, path in run_errors} == {"img0000.jpg", "img0001.jpg", "img0002.json"}


def test_a_rejected_run_leaves_no_trace_in_output(ingest, tmp_path):
    (ingest / "coll" / "img0001.jpg").write_bytes(b"")
    proc = run_cli("run", "--ingest", ingest, "--output", tmp_path / "output")
    assert proc.returncode == 1 and no_traceback(proc), proc.stderr
    assert not (tmp_path / "output").exists()            # not even the lock of the run
    (tmp_path / "kept").mkdir()
    proc = run_cli("run", "--ingest", ingest, "--output", tmp_path / "kept")
    assert proc.returncode == 1 and os.listdir(tmp_path / "kept") == []


def test_run_on_dot_packages_the_folder_under_its_own_name(ingest, tmp_path):
    proc = run_cli("run", ".", "--output", tmp_path / "output", "--json", cwd=ingest / "coll")
    assert proc.returncode == 0 and no_traceback(proc), proc.stderr
    assert json.loads(proc.stdout)["collections"][0]["collection"] == "coll"
    assert sorted(os.listdir(tmp_path / "output")) == [".staging", "coll"]


@pytest.mark.parametrize("name", [".hidden", "line\nbreak", "x" * 201])
def test_a_collection_folder_whose_name_cannot_name_a_bag_is_refused(tmp_path, name):
    hs.make_collection(tmp_path / "ingest", n=1, name=name)
    proc = run_cli("run", tmp_path / "ingest" / name, "--output", tmp_path / "output")
    assert proc.returncode == 1 and no_traceback(proc), proc.stderr
    assert "the collection folder's name becomes its bag's name" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "output").exists()
