"""A real Dask cluster for tests: one `dask scheduler` and N `dask worker` processes.

Workers run without a nanny, so killing one (SIGKILL) really loses it, and with tests/ and this
checkout on their PYTHONPATH, so the per-item functions of helpers_stages import there and the
pipeline they run is the one under test (not another copy installed in site-packages).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

TESTS = Path(__file__).resolve().parent


class DaskCluster:
    def __init__(self, workdir: Path, workers: int = 2, config: dict[str, str] | None = None) -> None:
        """`config`: Dask settings as environment variables (DASK_DISTRIBUTED__...)."""
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = workdir / "scheduler.json"
        self.env = dict(os.environ, **(config or {}), PYTHONPATH=os.pathsep.join(
            [str(TESTS), str(TESTS.parent), *filter(None, [os.environ.get("PYTHONPATH")])]))
        self.scheduler = self._spawn("scheduler", "--host", "127.0.0.1", "--port", "0",
                                     "--no-dashboard", "--scheduler-file", str(self.scheduler_file))
        self.address = self._wait_for_address()
        self.workers = [self._worker() for _ in range(workers)]
        self.wait_for_workers(workers)

    def _worker(self) -> subprocess.Popen:
        return self._spawn("worker", "--scheduler-file", str(self.scheduler_file), "--host", "127.0.0.1",
                           "--nthreads", "1", "--no-nanny", "--no-dashboard", "--memory-limit", "2GB")

    def revive(self) -> None:
        """Replace every worker that died (a test killed it) and wait until all are back."""
        if all(w.poll() is None for w in self.workers):
            return
        self.workers = [w if w.poll() is None else self._worker() for w in self.workers]
        self.wait_for_workers(len(self.workers))

    def _spawn(self, kind: str, *args: str) -> subprocess.Popen:
        log = open(self.workdir / f"{kind}-{time.monotonic_ns()}.log", "wb")
        return subprocess.Popen([sys.executable, "-m", "dask", kind, *args], env=self.env,
                                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)

    def _wait_for_address(self, timeout: float = 30) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.scheduler.poll() is not None:
                raise RuntimeError("dask scheduler exited early; see its log in " + str(self.workdir))
            try:
                return json.loads(self.scheduler_file.read_text())["address"]
            except (FileNotFoundError, ValueError, KeyError):
                time.sleep(0.1)
        raise RuntimeError("dask scheduler did not start")

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
        from distributed import Client
        with Client(self.address, set_as_default=False, timeout="20s") as client:
            client.wait_for_workers(n, timeout=timeout)

    def kill_worker(self, index: int = 0) -> None:
        self.workers[index].send_signal(signal.SIGKILL)
        self.workers[index].wait(timeout=10)

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class HoldFirstTask(WorkerPlugin):
    """Holds the first task whose key starts with `prefix` in the whole cluster: the worker that
    is about to run it writes its pid into `claim` (linked in whole, so only one worker ever
    claims it and a reader never sees half a pid), then stops, answering nothing, until the test
    kills it (or `hold` seconds pass).  The task has not started: the scheduler still counts it
    as processing on that worker."""

    name = "hold-first-task"

    def __init__(self, claim: Path, prefix: str, hold: float = 60.0) -> None:
        self.claim, self.prefix, self.hold = str(claim), prefix, hold

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish != "executing" or not str(key).startswith(self.prefix):
            return
        mine = f"{self.claim}.{os.getpid()}"
        Path(mine).write_text(str(os.getpid()))
        try:
            os.link(mine, self.claim)
        except FileExistsError:
            return      # another task was the first
        finally:
            os.unlink(mine)
        time.sleep(self.hold)   # on the worker's event loop: the whole worker stands still
