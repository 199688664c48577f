"""Worker process pools that end with the run: the workers leave Ctrl-C to the main process and
die with it, and shutting a pool down cannot be cut short by a second Ctrl-C.

Forked workers inherit the main process's open files, the collection's lock among them: a
worker left behind by a main process killed outright (the out-of-memory killer, `kill -9`) would
keep the collection locked and wait for work forever.  On Linux each worker asks the kernel to
kill it when its parent dies (prctl PR_SET_PDEATHSIG); elsewhere this is left to the OS.
"""
from __future__ import annotations

import ctypes
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1


def start_worker(parent: int) -> None:
    """A pool worker's initializer: Ctrl-C is the main process's to handle; end with `parent`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):       # not Linux: no such request
        return
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:              # the parent died before the request was made
        os._exit(1)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, initializer=start_worker, initargs=(os.getpid(),))


def shut(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and wait for the running tasks (their writes are atomic); a Ctrl-C
    meanwhile is ignored, as one interrupting the shutdown would leave the workers waiting for
    work and the interpreter waiting for them at exit."""
    quiet = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if quiet else None
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if quiet:
            signal.signal(signal.SIGINT, previous)
