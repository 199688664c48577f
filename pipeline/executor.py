"""Runs the stages over a collection: per-item work in parallel, staging, lock, publish.

    discover -> validate -> convert -> describe -> package

Validation runs before anything is written; if it finds errors the run stops with
`RejectedError` and `output/` is untouched.  Writing stages work in `output/.staging/<name>/`;
the package stage seals the bag there and renames it into `output/` (see stages/package.py).
A lock file in `output/.staging/` keeps two runs off the same collection.
"""
from __future__ import annotations

import fcntl
import importlib
import os
import time
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from .errors import (PackagingError, PipelineError, ProcessingError, Problem, RejectedError, UsageError, errors_in,
                     path_error, shown)
from .itemstore import ItemStore, store_folder
from .model import Item, Package
from .pools import shut, worker_pool
from .report import StageReport, measure, stage_report
from .stage import Context, Settings, Stage
from .stages.discover import name_fault

STAGE_NAMES = ("discover", "validate", "convert", "describe", "package")

# progress(stage_name, done, total) -- called in the main process only
Progress = Callable[[str, int, int], None]


def load_stage(name: str) -> Optional[Stage]:
    """The stage's `STAGE` object, or None when that stage is not built yet."""
    try:
        module = importlib.import_module(f"pipeline.stages.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"pipeline.stages.{name}":
            return None
        raise
    return getattr(module, "STAGE", None)


@dataclass
class RunResult:
    package: Package
    stages_run: list[str] = field(default_factory=list)
    stages_missing: list[str] = field(default_factory=list)
    published: list[Path] = field(default_factory=list)
    stages: list[StageReport] = field(default_factory=list)


def worker_count(settings: Settings) -> int:
    return settings.workers if settings.workers > 0 else (os.cpu_count() or 1)


def _call(fn, item: Item, ctx: Context) -> Item:
    return fn(item, ctx)


def map_items(fn, items: Sequence[Item], ctx: Context, stage: str,
              progress: Optional[Progress] = None, client=None,
              keep: Optional[Callable[[Item], Item]] = None, into=None) -> Sequence[Item]:
    """Apply a per-item function to every item, in order, over the configured executor.

    Local: a process pool with at most 2 x workers items in flight, so memory depends on the
    number of workers, not on the number of items.  Dask: see cluster.map_on_dask (`client`, an
    open distributed.Client, is reused when given).  `keep` is applied to each result as it
    arrives in this process.  `into` (len(items) long, assignable by index,
    e.g. an ItemStore) receives the results instead of a new list.
    """
    keep = keep or (lambda item: item)
    total = len(items)
    if progress:
        progress(stage, 0, total)
    if ctx.settings.executor == "dask":
        from .cluster import map_on_dask  # optional extra
        return map_on_dask(fn, items, ctx, stage, progress, client=client, keep=keep, into=into)
    workers = min(worker_count(ctx.settings), max(total, 1))
    results = into if into is not None else [None] * total
    if workers <= 1:
        for i, item in enumerate(items):
            results[i] = keep(fn(item, ctx))
            if progress:
                progress(stage, i + 1, total)
        return results  # type: ignore[return-value]
    done = 0
    pending: dict = {}
    pool = worker_pool(workers)
    try:
        it = iter(enumerate(items))
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < 2 * workers:
                try:
                    i, item = next(it)
                except StopIteration:
                    exhausted = True
                    break
                pending[pool.submit(_call, fn, item, ctx)] = (i, item.relpath)
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                i, relpath = pending.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool as exc:    # a worker killed (OOM killer, a C crash)
                    raise ProcessingError(f"{stage}: {relpath}: a worker process died (out of memory?); "
                                          "no bag was published; a rerun reuses what was proven") from exc
                results[i] = keep(result)
                done += 1
                if progress:
                    progress(stage, done, total)
    finally:
        # On an error or Ctrl-C: drop the queued items; the running ones finish their
        # atomic writes (temp name, rename), so staging holds only whole files for a rerun.
        shut(pool)
    return results  # type: ignore[return-value]


class _HandOff(Sequence):
    """The items of a stage, each let go once it has been handed to a worker.

    The results come back as new objects (from another process), so holding the inputs until
    the stage ends would keep two generations of every item in memory at once.
    """

    def __init__(self, items: Sequence[Item]) -> None:
        self._items: list[Optional[Item]] = list(items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):
        return self._items[i]

    def __iter__(self) -> Iterator[Item]:
        for i in range(len(self._items)):
            item, self._items[i] = self._items[i], None
            yield item  # type: ignore[misc]


def run_stage(stage: Stage, handed: list[Package], ctx: Context,
              progress: Optional[Progress] = None, client=None, on_disk: bool = False) -> Package:
    """Run one stage over the package handed in a one-item list, which this empties: a caller
    that keeps no other reference holds none while the stage runs, and the input items are freed
    as they are handed out (see _HandOff) instead of living until the stage ends."""
    package = handed.pop()
    if stage.per_item is not None:
        items = package.items if isinstance(package.items, ItemStore) else _HandOff(package.items)
        package = replace(package, items=())
        # `on_disk` (pipeline run): the results go to disk as they arrive (an ItemStore), so
        # between stages a run holds an offset per item, not the items.  `pipeline validate`
        # keeps them in memory and writes nothing.
        store = ItemStore(store_folder(ctx.output), len(items)) if on_disk else None
        results = map_items(stage.per_item, items, ctx, stage.name, progress, client=client, into=store)
        del items
        package = replace(package, items=results if store is not None else tuple(results))
        del results
    if stage.collect is not None:
        if progress and stage.per_item is None:
            progress(stage.name, 0, len(package.items))
        package = stage.collect(package, ctx)
        if progress and stage.per_item is None:
            progress(stage.name, len(package.items), len(package.items))
    return replace(package, stages_done=package.stages_done + (stage.name,))


# The bag takes the collection folder's name, and its parts' and archives' names add up to
# "-123-of-456.tar.gz.sha256": 200 bytes leave room for them within a file name's 255.
COLLECTION_NAME_BYTES = 200


def _check_collection(collection: Path) -> Path:
    """The collection folder, resolved (`.` and `..` have no name of their own): its name
    becomes the bag's, so it must be one a bag can carry (RejectedError otherwise)."""
    collection = Path(collection)
    if not collection.is_dir():
        raise path_error(collection, "not a collection folder")
    collection = collection.resolve()
    name = collection.name
    fault = name_fault(name)            # the rules of every name in the collection, and a few more
    size = len(name.encode("utf-8", "surrogateescape"))
    reason = ("it has none" if not name else
              fault[1].replace("the name", "it", 1) if fault else
              "it is hidden (it starts with '.')" if name.startswith(".") else
              f"it is {size} bytes long, more than {COLLECTION_NAME_BYTES}" if size > COLLECTION_NAME_BYTES else "")
    if reason:
        raise RejectedError(f"{shown(str(collection))}: the collection folder's name becomes its bag's name, "
                            f"and {reason}; rename the folder")
    return collection


def _empty_package(collection: Path) -> Package:
    return Package(name=collection.name, source=collection, collection=None)


@contextmanager
def collection_lock(output: Path, name: str) -> Iterator[None]:
    """An exclusive, non-blocking lock per collection; released when the process ends."""
    locks = output / ".staging"
    path = locks / f"{name}.lock"
    try:
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise path_error(locks, f"cannot hold the run's work area there ({exc.strerror or exc})") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise PipelineError(f"{name}: another run is working on this collection "
                                f"(lock {path}); try again when it has finished",
                                [Problem("output.locked", str(path), "another run is working on this collection; "
                                         "try again when it has finished")]) from exc
        yield
    finally:
        os.close(fd)


def _withdraw(output: Path, name: str, made: list[Path]) -> None:
    """A rejected run leaves output/ as it found it: its lock file goes (while still held, so no
    other run can take it meanwhile), and so do the folders it made, when empty."""
    try:
        (output / ".staging" / f"{name}.lock").unlink(missing_ok=True)
    except OSError:
        pass
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            pass        # not empty: someone else's now


def validate_collection(collection: Path, settings: Settings = Settings(),
                        progress: Optional[Progress] = None) -> Package:
    """Discover and validate one collection; write nothing.  Problems are on the package."""
    collection = _check_collection(collection)
    ctx = Context.create(settings, collection, Path("output"), collection.name)
    package = _empty_package(collection)
    for name in ("discover", "validate"):
        stage = load_stage(name)
        if stage is None:
            continue
        handed = [package]
        del package     # the stage's input items go as they are handed out
        package = run_stage(stage, handed, ctx, progress)
        if name == "discover" and package.collection is not None:
            ctx = replace(ctx, collection_id=str(package.collection.data.get("identifier") or ctx.collection_id))
    return package


@contextmanager
def _cluster(settings: Settings) -> Iterator[object]:
    """The run's Dask client when the executor is dask (connected once, before any work)."""
    if settings.executor != "dask":
        yield None
        return
    from .cluster import connect  # optional extra
    with connect(settings.scheduler) as client:
        yield client


def run(collection: Path, output: Path, settings: Settings = Settings(),
        until: Optional[str] = None, progress: Optional[Progress] = None,
        on_stage: Optional[Callable[[StageReport], None]] = None) -> RunResult:
    """Run every stage that exists over one collection, up to and including `until`.

    `on_stage` receives each stage's StageReport as soon as the stage ends (also when a later
    stage fails), for run reports; the same reports are on RunResult.stages.
    Staging (output/.staging/<name>/) is never wiped here: a rerun after a crash or Ctrl-C
    reuses what the stages left there.
    """
    collection = _check_collection(collection)
    if until is not None and until not in STAGE_NAMES:
        raise UsageError(f"--until must be one of {', '.join(STAGE_NAMES)}, not {until!r}")
    if settings.schemas_dir is not None:
        from .xmlio import load_schema
        load_schema(settings.schemas_dir)   # a wrong --schemas is refused before any work
    output = Path(output)
    with _cluster(settings) as client:      # an unreachable cluster is refused before output/ is touched
        return _run_locked(collection, output, settings, until, progress, on_stage, client)


def _run_locked(collection: Path, output: Path, settings: Settings, until: Optional[str],
                progress: Optional[Progress], on_stage, client) -> RunResult:
    made = [folder for folder in (output, output / ".staging") if not os.path.exists(folder)]   # never raises
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise path_error(output, f"cannot be used as the output folder ({exc.strerror})") from exc
    ctx = Context.create(settings, collection, output.resolve(), collection.name)
    result = RunResult(package=_empty_package(collection))
    with collection_lock(output, collection.name):
        if until in (None, "package") and load_stage("package") is not None:
            from .publish import preflight  # before any work: refuse an existing bag, or
            try:
                finished = preflight(output, collection.name)  # finish a killed run's publish
            except OSError as exc:
                raise PackagingError(f"{collection.name}: {exc.filename or output}: {exc.strerror or exc}; "
                                     "the earlier run's publish could not be finished") from exc
            if finished:
                result.published = [output / p for p in finished]
                return result
        for name in STAGE_NAMES:
            stage = load_stage(name)
            if stage is None:
                result.stages_missing.append(name)
                continue
            before, started = measure(result.package), time.monotonic()
            handed, result.package = [result.package], _empty_package(collection)
            # handed over in a list that run_stage empties: nothing here keeps the input's items
            result.package = run_stage(stage, handed, ctx, progress, client=client, on_disk=True)
            report = stage_report(name, time.monotonic() - started, before, result.package)
            result.stages.append(report)
            result.stages_run.append(name)
            if on_stage:
                on_stage(report)
            if name == "discover" and result.package.collection is not None:
                ident = str(result.package.collection.data.get("identifier") or "")
                ctx = replace(ctx, collection_id=ident or ctx.collection_id)
            errors = errors_in(result.package.all_problems)
            # Discovery's problems wait for validation's, so that every problem is reported at
            # once; validation reads what discovery found and handles what it refused.
            if errors and (name != "discover" or until == "discover"):
                if name in ("discover", "validate"):
                    _withdraw(output, collection.name, made)
                    raise RejectedError(
                        f"{collection.name}: rejected with {len(errors)} problem(s); nothing was written",
                        result.package.all_problems)
                raise ProcessingError(
                    f"{collection.name}: {name} failed with {len(errors)} problem(s); no bag was published",
                    result.package.all_problems)
            if name == until:
                break
    result.published = [output / p for p in getattr(result.package, "published", ())]
    return result
