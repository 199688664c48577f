"""The Dask executor on a real local cluster: a `dask scheduler` and two `dask worker` processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import dask
import distributed
import pytest

import helpers_stages as hs
from conftest import no_traceback, run_cli
from dask_cluster import DaskCluster, HoldFirstTask
from pipeline.cluster import map_on_dask
from pipeline.errors import ClusterError, ConversionError
from pipeline.executor import map_items
from test_executor import CountingItems, make_ctx

UNREACHABLE = "tcp://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    c = DaskCluster(tmp_path_factory.mktemp("dask"), workers=2)
    yield c
    c.close()


@pytest.fixture
def cluster(dask_cluster):
    """The module's cluster with both workers alive (tests may kill them)."""
    dask_cluster.revive()
    return dask_cluster


def test_dask_results_equal_local_results(cluster, tmp_path):
    local_ctx = make_ctx(tmp_path, workers=2)
    dask_ctx = make_ctx(tmp_path, executor="dask", scheduler=cluster.address)
    items = hs.make_items(local_ctx, 30)
    assert map_items(hs.digest_item, items, dask_ctx, "convert") == \
        map_items(hs.digest_item, items, local_ctx, "convert")


def test_dask_work_runs_in_the_worker_processes(cluster, tmp_path):
    ctx = make_ctx(tmp_path, executor="dask", scheduler=cluster.address)
    out = map_items(hs.where_item, hs.make_items(ctx, 8), ctx, "convert")
    pids = {i.image["pid"] for i in out}
    assert pids <= {w.pid for w in cluster.workers}


def test_dask_workers_write_into_shared_staging(cluster, tmp_path):
    ctx = make_ctx(tmp_path, executor="dask", scheduler=cluster.address)
    out = map_items(hs.stage_file_item, hs.make_items(ctx, 5), ctx, "convert")
    assert len(hs.staged_files(ctx)) == 5
    assert all(i.image["size"] > 0 for i in out)


def test_dask_submission_window_bounded(cluster, tmp_path):
    ctx = make_ctx(tmp_path, executor="dask", scheduler=cluster.address)
    items = CountingItems(hs.make_items(ctx, 40))
    seen = []
    map_items(hs.digest_item, items, ctx, "convert", lambda s, d, t: seen.append((d, items.taken)))
    assert seen[-1] == (40, 40)
    assert max(taken - done for done, taken in seen) <= 2 * 2  # two workers of one thread


def test_pipeline_error_on_a_worker_reaches_the_caller_unchanged(cluster, tmp_path):
    ctx = make_ctx(tmp_path, executor="dask", scheduler=cluster.address)
    with pytest.raises(ConversionError, match="img0002.jpg: cannot be converted"):
        map_items(hs.failing_item, hs.make_items(ctx, 6), ctx, "convert")


def test_unreachable_scheduler_is_a_cluster_error(tmp_path):
    ctx = make_ctx(tmp_path, executor="dask", scheduler=UNREACHABLE)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(ClusterError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9") as info:
            map_items(hs.digest_item, hs.make_items(ctx, 2), ctx, "convert")
    assert "\n" not in str(info.value)


def test_cli_unreachable_scheduler_one_line_exit_1(tmp_path):
    (tmp_path / "ingest" / "coll").mkdir(parents=True)
    proc = run_cli("run", "--ingest", tmp_path / "ingest", "--output", tmp_path / "output",
                   "--executor", "dask", "--scheduler", UNREACHABLE, "--json",
                   env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"})
    assert proc.returncode == 1, proc.stderr
    assert no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0]
    report = json.loads(proc.stdout)
    assert report["ok"] is False and "cannot reach" in report["collections"][0]["error"]
    assert not (tmp_path / "output").exists()      # refused before output/ is touched


@pytest.fixture
def not_a_scheduler():
    """A TCP service that is no Dask scheduler: it greets every connection with a banner, as SSH
    does, and then says nothing."""
    import socket
    import threading
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in held:
        conn.close()


@pytest.mark.parametrize("kind", ["not_a_scheduler", "no_port", "unknown_protocol"])
def test_cli_scheduler_address_that_is_no_dask_scheduler_one_line_exit_1(tmp_path, request, kind):
    """A service that is no Dask scheduler once hung the run for ever (or died allocating
    exabytes for the banner); an address without a port lingered 60 s in a traceback."""
    address = {"not_a_scheduler": lambda: request.getfixturevalue("not_a_scheduler"),
               "no_port": lambda: "notanaddress", "unknown_protocol": lambda: "nosuch://127.0.0.1:8786"}[kind]()
    (tmp_path / "ingest" / "coll").mkdir(parents=True)
    proc = run_cli("run", "--ingest", tmp_path / "ingest", "--output", tmp_path / "output",
                   "--executor", "dask", "--scheduler", address,
                   env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}, timeout=90)
    assert proc.returncode == 1 and no_traceback(proc), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0], proc.stderr
    assert not (tmp_path / "output").exists()


def test_cli_dask_executor_without_scheduler_is_usage_error(tmp_path):
    (tmp_path / "ingest" / "coll").mkdir(parents=True)
    proc = run_cli("run", "--ingest", tmp_path / "ingest", "--output", tmp_path / "output",
                   "--executor", "dask")
    assert proc.returncode == 2
    assert no_traceback(proc)


EPOCH = {"SOURCE_DATE_EPOCH": "700000000"}


def test_dask_bag_byte_identical_to_local_bag(cluster, sample_collection, tmp_path):
    ingest, name = sample_collection.parent, sample_collection.name
    local = run_cli("run", "--ingest", ingest, "--output", tmp_path / "local", env=EPOCH)
    assert local.returncode == 0, local.stderr
    remote = run_cli("run", "--ingest", ingest, "--output", tmp_path / "dask", "--executor", "dask",
                     "--scheduler", cluster.address, env=EPOCH)
    assert remote.returncode == 0, remote.stderr
    a, b = hs.bag_bytes(tmp_path / "local" / name), hs.bag_bytes(tmp_path / "dask" / name)
    assert sorted(a) == sorted(b)
    assert [p for p in a if a[p] != b[p]] == []
    assert any(p.endswith(".tif") for p in a)


@pytest.fixture
def strict_cluster(tmp_path_factory):
    """A cluster whose scheduler gives up on a task the first time a worker dies under it
    (KilledWorker), where the module's cluster gives it to another worker."""
    c = DaskCluster(tmp_path_factory.mktemp("dask-strict"), workers=2,
                    config={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    yield c
    c.close()


@pytest.mark.parametrize("kind, ends", [("cluster", "with the bag"), ("strict_cluster", "without a bag")])
def test_worker_killed_mid_run_cli_bag_identical_to_local_or_none(kind, ends, request, tmp_path):
    """A worker SIGKILLed while `pipeline run --executor dask` waits for its task: the run ends
    with the bag a local run makes, byte for byte (the task ran again elsewhere), or with exit 1,
    one line and no bag (the scheduler gave the task up: KilledWorker); never a traceback.
    Deterministic: the worker that takes the first convert task holds it (a worker plugin,
    HoldFirstTask) until this test has killed that very worker."""
    cluster = request.getfixturevalue(kind)
    hs.make_collection(tmp_path / "ingest", n=6)
    claim, output = tmp_path / "held-by", tmp_path / "output"
    with distributed.Client(cluster.address, set_as_default=False, timeout="20s") as client:
        client.register_plugin(HoldFirstTask(claim, "convert_item-"))
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "-q", "--ingest", str(tmp_path / "ingest"),
                                 "--output", str(output), "--executor", "dask", "--scheduler", cluster.address],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, **EPOCH))
        try:
            assert hs.wait_for(claim.exists, timeout=60), "no worker took a convert task"
            held = [w.pid for w in cluster.workers].index(int(claim.read_text()))
            assert proc.poll() is None      # the run waits for the held task
            cluster.kill_worker(held)
            out, err = proc.communicate(timeout=60)
        finally:
            client.unregister_worker_plugin(HoldFirstTask.name)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "Traceback" not in out + err, err
    if ends == "with the bag":
        assert proc.returncode == 0, err
        local = run_cli("run", "--ingest", tmp_path / "ingest", "--output", tmp_path / "local", "-q", env=EPOCH)
        assert local.returncode == 0, local.stderr
        a, b = hs.bag_bytes(tmp_path / "local" / "coll"), hs.bag_bytes(output / "coll")
        assert sorted(a) == sorted(b) and [p for p in a if a[p] != b[p]] == []
    else:
        assert proc.returncode == 1 and len(err.strip().splitlines()) == 1, err
        assert "Dask workers died while running it" in err and "no bag was published" in err
        assert [p.name for p in output.iterdir() if not p.name.startswith(".")] == []


def test_worker_killed_mid_run_the_run_completes(cluster, tmp_path):
    ctx = make_ctx(tmp_path, executor="dask", scheduler=cluster.address)
    items = hs.make_items(ctx, 12)

    def kill_after_two(stage, done, total):
        if done == 2:
            cluster.kill_worker(0)

    out = map_items(hs.slow_item, items, ctx, "convert", kill_after_two)
    assert cluster.workers[0].poll() is not None  # the worker really died
    assert out == [hs.digest_item(i, ctx) for i in items]


def test_every_worker_lost_fails_with_cluster_error(cluster, tmp_path):
    ctx = make_ctx(tmp_path, executor="dask", scheduler=cluster.address)

    def kill_all(stage, done, total):
        if done == 1:
            cluster.kill_worker(0)
            cluster.kill_worker(1)

    with pytest.raises(ClusterError, match="no Dask worker left") as info:
        map_on_dask(hs.slow_item, hs.make_items(ctx, 10), ctx, "convert", kill_all, grace=2)
    assert "\n" not in str(info.value)


def test_dask_extra_missing_says_how_to_install(tmp_path):
    """With `distributed` not importable, the run names the extra to install (no traceback)."""
    (tmp_path / "ingest" / "coll").mkdir(parents=True)
    code = ("import sys; sys.modules['distributed'] = None; from pipeline.cli import main; "
            "main(sys.argv[1:])")
    proc = subprocess.run([sys.executable, "-c", code, "run", "--ingest", str(tmp_path / "ingest"),
                           "--output", str(tmp_path / "output"), "--executor", "dask",
                           "--scheduler", UNREACHABLE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert proc.stderr.strip().splitlines() == [
        "pipeline: error: the dask executor needs the optional extra: pip install 'preservation-pipeline[dask]'"]


def test_scheduler_lost_mid_run_is_a_cluster_error(cluster, tmp_path):
    """Last in this module: it kills the module's scheduler."""
    ctx = make_ctx(tmp_path, executor="dask", scheduler=cluster.address)

    def kill_scheduler(stage, done, total):
        if done == 2:
            cluster.scheduler.kill()
            cluster.scheduler.wait()

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        with pytest.raises(ClusterError, match="scheduler lost") as info:
            map_items(hs.slow_item, hs.make_items(ctx, 12), ctx, "convert", kill_scheduler)
    assert "\n" not in str(info.value)
