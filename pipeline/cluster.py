"""Per-item work on an existing Dask distributed cluster (`--executor dask --scheduler ADDRESS`).

The collection and the output folder must be on a filesystem that every worker mounts at the
same path (the context carries absolute paths), and the workers must have this package installed
in the same version.  Items and the context are small and picklable; each item is one task.

At most 2 x (threads in the cluster) tasks are in flight, so the scheduler never holds the whole
collection.  A lost worker is Dask's to handle (it reschedules that worker's tasks); the run fails
with ClusterError when the scheduler cannot be reached, when a task killed workers too often, or
when no worker is left for `NO_WORKER_GRACE` seconds.  The caller (executor.run) publishes
nothing after such a failure.

The connect timeout is Dask's `distributed.comm.timeouts.connect` setting (environment variable
`DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT`, 30 s by default).
"""
from __future__ import annotations

import queue
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence

from .errors import ClusterError, UsageError
from .model import Item
from .stage import Context

INSTALL_HINT = "the dask executor needs the optional extra: pip install 'preservation-pipeline[dask]'"
POLL_SECONDS = 1.0
NO_WORKER_GRACE = 30.0
CONNECT_MARGIN = 5.0      # seconds beyond Dask's connect timeout for the whole handshake


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise UsageError(INSTALL_HINT) from exc
    return distributed


@contextmanager
def connect(address: str) -> Iterator[object]:
    """An open distributed.Client on `address`, closed on exit; ClusterError if unreachable."""
    if not address:
        raise UsageError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    distributed = _distributed()
    try:
        distributed.comm.get_address_host_port(address)     # refused before a client is half made
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {_one_line(exc)}") from exc
    client = _client(distributed, address)
    try:
        yield client
    finally:
        try:
            client.close(timeout=10)
        except (OSError, TimeoutError):
            pass  # the scheduler is already gone; nothing is left to release


def _client(distributed, address: str):
    """A distributed.Client on `address`, made within the connect timeout plus a margin: made in
    a thread of its own, as a service that is not a Dask scheduler can keep the handshake
    waiting for ever; any failure is a ClusterError."""
    import dask.config
    from dask.utils import parse_timedelta
    timeout = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="s") or 30
    made: dict = {}

    def make() -> None:
        try:
            made["client"] = distributed.Client(address, set_as_default=False, timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller's thread
            made["error"] = exc

    thread = threading.Thread(target=make, name="dask-connect", daemon=True)
    thread.start()
    thread.join(timeout + CONNECT_MARGIN)
    if thread.is_alive():
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: no answer in "
                           f"{timeout + CONNECT_MARGIN:g} s (is a Dask scheduler listening there?)")
    error = made.get("error")
    if isinstance(error, Exception):
        _forget_half_made(distributed, error)
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {_one_line(error)}") from error
    if error is not None:
        raise error
    return made["client"]


def _forget_half_made(distributed, error: BaseException) -> None:
    """A Client whose constructor failed still tries to close its connection when collected,
    waiting for it (and printing a traceback) up to twice the connect timeout: it is marked
    closed (Client.close returns at once for a closed client) and its event loop stopped."""
    tb = error.__traceback__
    while tb is not None:
        client = tb.tb_frame.f_locals.get("self")
        if isinstance(client, distributed.Client):
            client.status = "closed"
            try:
                client._loop_runner.stop()
            except Exception:  # noqa: BLE001 -- best effort on a client that never was
                pass
        tb = tb.tb_next


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _lost(address: str, exc: BaseException) -> ClusterError:
    return ClusterError(f"lost the Dask scheduler at {address}: {_one_line(exc)}; no bag was published")


def _thread_count(client, address: str) -> int:
    try:
        return sum(client.nthreads().values())
    except (OSError, TimeoutError) as exc:
        raise _lost(address, exc) from exc


def map_on_dask(fn: Callable[[Item, Context], Item], items: Sequence[Item], ctx: Context, stage: str,
                progress: Optional[Callable[[str, int, int], None]] = None, client=None,
                grace: float = NO_WORKER_GRACE, keep: Optional[Callable[[Item], Item]] = None,
                into=None) -> Sequence[Item]:
    """Apply `fn` to every item on the cluster at ctx.settings.scheduler; results in input order.

    `client`: an open distributed.Client to reuse (else one is opened for this call); `grace`:
    seconds without any worker before the run fails; `keep`: applied to each result as it arrives.
    """
    keep = keep or (lambda item: item)
    address = ctx.settings.scheduler
    if client is None:
        with connect(address) as own:
            return map_on_dask(fn, items, ctx, stage, progress, client=own, grace=grace, keep=keep, into=into)
    total = len(items)
    results = into if into is not None else [None] * total
    pending: dict = {}
    finished: queue.Queue = queue.Queue()  # futures land here when done, failed or cancelled
    try:
        window = 2 * max(_thread_count(client, address), 1)
        it = iter(enumerate(items))
        exhausted, done, idle_since = False, 0, None
        while pending or not exhausted:
            while not exhausted and len(pending) < window:
                try:
                    i, item = next(it)
                except StopIteration:
                    exhausted = True
                    break
                try:
                    fut = client.submit(fn, item, ctx, pure=False)
                except OSError as exc:          # CommClosedError among them: the scheduler is gone
                    raise _lost(address, exc) from exc
                pending[fut] = (i, item.relpath)
                fut.add_done_callback(finished.put)
            if not pending:
                break
            try:
                fut = finished.get(timeout=POLL_SECONDS)
            except queue.Empty:
                idle_since = _check_workers(client, address, stage, idle_since, grace)
                continue
            idle_since = None
            i, relpath = pending.pop(fut)
            results[i] = keep(_result(fut, relpath, stage))
            done += 1
            if progress:
                progress(stage, done, total)
    finally:
        if pending:
            try:
                client.cancel(list(pending))
            except (OSError, TimeoutError):
                pass  # the scheduler is gone, and with it the tasks
    return results  # type: ignore[return-value]


def _check_workers(client, address: str, stage: str, idle_since: Optional[float],
                   grace: float) -> Optional[float]:
    """Fail when the cluster has had no worker for `grace` seconds."""
    if _thread_count(client, address) > 0:
        return None
    now = time.monotonic()
    if idle_since is None:
        return now
    if now - idle_since >= grace:
        raise ClusterError(f"{stage}: no Dask worker left on {address} for {grace:g} s; "
                           "no bag was published")
    return idle_since


def _result(fut, relpath: str, stage: str) -> Item:
    distributed = _distributed()
    if fut.status == "cancelled":
        raise ClusterError(f"{stage}: {relpath}: the Dask cluster cancelled the task "
                           "(scheduler lost?); no bag was published")
    if fut.status == "error":
        exc = fut.exception()
        if isinstance(exc, distributed.KilledWorker):
            raise ClusterError(f"{stage}: {relpath}: Dask workers died while running it "
                               f"({_one_line(exc)}); no bag was published") from exc
    try:
        return fut.result()
    except OSError as exc:
        if fut.status != "finished":    # the task's own error, raised again here
            raise
        # finished, but its result could not be fetched: the scheduler is gone
        raise ClusterError(f"{stage}: {relpath}: its result could not be fetched (scheduler lost? "
                           f"{_one_line(exc)}); no bag was published") from exc
    except distributed.CancelledError as exc:
        raise ClusterError(f"{stage}: {relpath}: the Dask cluster cancelled the task "
                           "(scheduler lost?); no bag was published") from exc
