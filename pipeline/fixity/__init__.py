"""Fixity audits of stored bags: re-hash, compare with every manifest, record, report.

    audit(paths, output=..., db=...)   -> AuditReport     (prints nothing, never exits)
    history(db, bag)                   -> list[AuditRow]
    premis_export.premis_document(...)                     PREMIS 3 fixity-check events

Flow: plan every bag (manifests read, files listed: missing, unexpected, links, Payload-Oxum need
no checksum) -> choose the files to re-hash (all of them, or a rolling budget, oldest
verification first) -> hash them in parallel (`hashing.hash_many`), every algorithm in one read ->
compare -> record each batch in the SQLite registry as it comes -> report.

A full audit takes one bag at a time, and a bag's plan lives in a temporary SQLite file
(plan.py, store.py): manifest lines and files are streamed in, compared with SQL, and the files
to hash streamed out, so memory stays flat however many files a bag holds.  A rolling audit plans
every bag first and ranks the files of the whole store, which it holds in memory.
A serialized bag is read as one stream, so a byte budget never splits
it: it is checked whole (or, once a --max-seconds budget is spent, left for the next run).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Container, Iterable, Iterator, Optional, Sequence

from .. import __version__
from ..errors import UsageError, path_error
from ..hashing import hash_many
from .plan import BagPlan, FileTask, Finding, disk_path, find_targets, is_bag_folder, plan_bag, text_name
from .registry import AuditRow, Check, Registry
from .report import AuditReport, BagReport
from .select import MAX_WINDOW_DAYS, Budget, choose

__all__ = ["audit", "history", "retire", "Budget", "AuditReport", "BagReport", "Finding", "utc_now"]

AGENT = f"preservation-pipeline {__version__}"
COMMIT_EVERY = 2000        # results per registry transaction ...
COMMIT_SECONDS = 2.0       # ... or fewer, once this long has passed since the last commit
PROGRESS_EVERY = 64

Clock = Callable[[], datetime]
Progress = Callable[[str, int, int], None]


def utc_now() -> datetime:
    """The audit's clock: real time matters for audits (SOURCE_DATE_EPOCH is not honoured)."""
    return datetime.now(timezone.utc)


def stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Run:
    """One bag's audit in progress."""

    plan: BagPlan
    report: BagReport
    bag_id: int = 0
    pending: list[Check] = field(default_factory=list)
    fresh: list[Finding] = field(default_factory=list)   # the pending checks' findings, not yet labelled
    held: Optional[list[FileTask]] = None    # the files to hash, once the plan database is closed

    def tasks(self) -> Iterable[FileTask]:
        return self.plan.tasks() if self.held is None else self.held

    def hold(self) -> "_Run":
        """Keep the files to hash in memory and close the plan database: a rolling audit ranks the
        files of every bag at once, and an open database per bag (a connection and its page
        cache) would grow memory with the number of bags, not of files."""
        self.held = list(self.plan.tasks())
        self.plan.close()
        return self


def _since(before: Optional[Container], problem: object) -> str:
    """An error is new or known by what the check before found ('' when there was none)."""
    return "" if before is None else ("known" if problem in before else "new")


def _label(run: _Run, recorded: list[tuple[str, Optional[str], str]]) -> None:
    """File the run's hashed findings in its report, each labelled by its file's state before this
    audit as the registry wrote it, and the files found intact again (bounded: only problems
    and recoveries are kept, as the report holds them anyway)."""
    before = {path: prior.split() for path, prior, state in recorded if state and prior is not None}
    run.report.findings += [replace(f, since=_since(before.get(f.key or f.path), f.code)) if f.is_error else f
                            for f in run.fresh]
    run.report.recovered += [(path, prior) for path, prior, state in recorded if not state and prior]
    run.fresh = []


def _check_of(f: Finding) -> Check:
    """A planning finding's row: its code's second part, or its level below error (planned_before)."""
    outcome = f.code.split(".", 1)[1] if f.is_error else f.level
    expected = {f.algorithm: f.expected} if f.expected else None
    return Check(f.path, outcome, expected=expected, code=f.code, reason=f.reason)


def _compare(run: _Run, task: FileTask, size: Optional[int], digests: Optional[dict], error: str) -> Check:
    """The check of one hashed file; its findings wait in the run until it is recorded."""
    rep = run.report
    rep.files_checked += 1
    rep.bytes_checked += size or 0
    if digests == task.expected:  # the common case, in one C comparison
        return Check(task.key, "intact", size, digests)
    key = "" if task.key == task.rel else task.key
    if error:
        f = Finding("fixity.unreadable", task.rel, f"could not be read: {error}", key=key)
        run.fresh.append(f)
        return Check(task.key, "unreadable", size, None, task.expected, f.code, f.reason)
    bad = [alg for alg in sorted(task.expected) if digests.get(alg) != task.expected[alg]]
    for alg in bad:
        run.fresh.append(Finding("fixity.mismatch", task.rel, f"{alg} differs from the manifest: the file changed",
                                 alg, task.expected[alg], digests.get(alg, ""), key=key))
    seen = {alg: digests[alg] for alg in task.expected if alg in digests}
    if bad:
        return Check(task.key, "changed", size, seen, task.expected, "fixity.mismatch",
                     f"{', '.join(bad)} differ from the manifest")
    return Check(task.key, "intact", size, seen)


class _Recorder:
    """Batches checks per bag and commits them every COMMIT_EVERY results or COMMIT_SECONDS."""

    def __init__(self, registry: Registry, clock: Clock, commit_every: int) -> None:
        self.registry, self.clock, self.commit_every = registry, clock, commit_every
        self.runs: dict[int, _Run] = {}
        self.count = 0
        self.last = time.monotonic()

    def add(self, run: _Run, check: Check) -> None:
        run.pending.append(check)
        self.runs[id(run)] = run
        self.count += 1
        if self.count >= self.commit_every or time.monotonic() - self.last >= COMMIT_SECONDS:
            self.flush()

    def flush(self) -> None:
        when = stamp(self.clock())
        for run in self.runs.values():
            if run.pending:
                _label(run, self.registry.record(run.bag_id, run.report.audit_id, when, run.pending))
                run.pending = []
        self.runs, self.count, self.last = {}, 0, time.monotonic()


class _TaskPath(str):
    """A file's path that carries its run and task through `hash_many` (which hands back the path
    object it was given), so that no path -> task table of the whole store is needed."""

    __slots__ = ("run", "task")


def _hash_folders(chosen: Iterable[tuple[_Run, FileTask]], algorithms: list[str],
                  workers: int) -> Iterator[tuple[_Run, FileTask, object]]:
    def paths() -> Iterator[_TaskPath]:  # made lazily: only the files in flight exist as paths
        for run, task in chosen:
            path = _TaskPath(disk_path(run.plan, task))
            path.run, path.task = run, task
            yield path

    for result in hash_many(paths(), algorithms, workers, follow_symlinks=False):
        yield result.path.run, result.path.task, (result.size, result.digests, result.error)


def _hash_archive(run: _Run) -> Iterator[tuple[_Run, FileTask, object]]:
    tasks = {t.rel: t for t in run.tasks()}  # the archive's listing is in memory already
    for rel, size, digests, error in run.plan.archive.digests({rel: set(t.expected) for rel, t in tasks.items()}):
        yield run, tasks[rel], (size, digests, error)


def _refuse_db_inside(db: Path, targets: Sequence[Path]) -> None:
    db = db.resolve()
    for t in targets:
        if is_bag_folder(t) and db.is_relative_to(t.resolve()):
            raise UsageError(f"{db}: the registry may not live inside the bag {t} (an audit never writes in a bag)")


def audit(paths: Iterable[Path | str] = (), *, output: Path | str = "output", db: Path | str | None = None,
          fast: bool = False, budget: Budget = Budget(), window_days: Optional[int] = None, workers: int = 0,
          clock: Clock = utc_now, progress: Optional[Progress] = None,
          commit_every: int = COMMIT_EVERY) -> AuditReport:
    """Audit the bags at `paths` (default: every bag in `output`) and record it in the registry.

    `fast` checks completeness only (file lists and Payload-Oxum, no checksum): it is never
    reported or recorded as a fixity verification.  `budget` makes a rolling audit.  `clock`
    gives the time of day (tests freeze it).  Raises UsageError (bad call), ProcessingError
    (registry unusable); damage is in the report, never raised.
    """
    output = Path(output)
    db = Path(db) if db else output / "fixity.sqlite"
    targets, folders = find_targets([Path(p) for p in paths], output)
    nothing = UsageError(f"{', '.join(map(str, paths)) or output}: no bag found")
    if not targets and not any(folders.values()) and not db.is_file():  # with a registry, bags may have vanished
        raise nothing
    _refuse_db_inside(db, targets)
    mode = "fast" if fast else ("rolling" if budget.rolling else "full")
    window = window_days or budget.window_days()
    if not 1 <= window <= MAX_WINDOW_DAYS:
        raise UsageError(f"--window-days {window}: must be from 1 to {MAX_WINDOW_DAYS}")
    began, t0 = clock(), time.monotonic()
    deadline = t0 + budget.max_seconds if budget.max_seconds is not None else None
    report = AuditReport(started=stamp(began), finished="", mode=mode, registry=str(db), window_days=window)
    with Registry(db) as registry:
        gone = {folder: list(_vanished(registry, folder, targets)) for folder in folders}
        # a named folder holding no bag is planned (fixity.not_a_bag) unless bags the registry knows vanished from it
        targets += [f for f, empty in folders.items() if empty and not gone[f]]
        if budget.rolling:  # the oldest files of the whole store first: every bag planned at once
            runs = [run and run.hold() for run in (_open(plan_bag(t), report, registry, mode, began)
                                                   for t in targets)]
            report.stopped_by_budget = _rehash([r for r in runs if r], registry, budget, clock, progress,
                                               workers, commit_every, deadline)
            for run in runs:
                _close(run, report, registry, clock)
        else:  # one bag at a time: memory holds one bag's plan, however large the store
            for target in targets:
                run = _open(plan_bag(target, fast), report, registry, mode, began)
                if run and not fast:
                    bar = (lambda stage, done, total, name=run.plan.name: progress(name, done, total)) \
                        if progress else None
                    _rehash([run], registry, budget, clock, bar, workers, commit_every, None)
                _close(run, report, registry, clock)
        for plan in (plan for plans in gone.values() for plan in plans):
            _close(_open(plan, report, registry, mode, began), report, registry, clock)
    if not report.bags:
        raise nothing
    for rep in report.bags:
        rep.findings.sort(key=lambda f: (f.path, f.code, f.algorithm))
        rep.recovered.sort()
    report.finished = stamp(clock())
    return report


def _vanished(registry: Registry, folder: Path, targets: Sequence[Path]) -> Iterator[BagPlan]:
    """A plan with one `fixity.vanished` finding for each bag the registry knows in a folder of
    bags that is no more among its bags (deleted, moved, renamed or emptied)."""
    found = {text_name(str(t.resolve())) for t in targets}
    for location, name in registry.bags_in(text_name(str(folder.resolve()))):
        if not name.startswith(".") and location not in found:
            yield BagPlan(location, name, findings=[Finding(
                "fixity.vanished", "", f"{location}: audited before, no longer found (deleted, moved or renamed)")])


def _open(plan: BagPlan, report: AuditReport, registry: Registry, mode: str,
          began: datetime) -> Optional[_Run]:
    """The bag's report, its audit row and the problems planning found; None when it is no bag."""
    rep = BagReport(plan.location, plan.name, mode, findings=list(plan.findings), manifests=plan.manifests,
                    algorithms=plan.algorithms, files_total=plan.files_total,
                    bytes_total=plan.bytes_total, normalized=plan.normalized)
    report.bags.append(rep)
    if not rep.audited:
        plan.close()
        return None
    run = _Run(plan, rep)
    run.bag_id, rep.audit_id, rep.revived = registry.begin_audit(plan.location, plan.name, mode, stamp(began),
                                                                 plan.algorithms, AGENT, map(_check_of, plan.findings))
    # planning's errors are compared with an earlier audit's that planned the bag alike (none for a
    # new life), not with per-file states, which only hashing keeps
    vanished = [f.code for f in plan.findings] == ["fixity.vanished"]
    before = None if rep.revived else registry.planned_before(run.bag_id, rep.audit_id, mode == "fast", vanished)
    rep.findings = [replace(f, since=_since(before, (f.path, f.code))) if f.is_error else f for f in rep.findings]
    if plan.store is not None:   # a missing file counts at the size the registry or Payload-Oxum knew
        listed, payload = plan.store.listed_bytes(str(registry.path), run.bag_id)
        rep.bytes_listed = listed + max(0, (plan.oxum_bytes or 0) - payload)
    return run


def _close(run: Optional[_Run], report: AuditReport, registry: Registry, clock: Clock) -> None:
    """Finish the bag's audit row and count what of it was verified within the window."""
    if run is None:
        return
    rep, now = run.report, clock()
    cutoff = stamp(now - timedelta(days=report.window_days))
    report.verified_bytes_in_window += registry.verified_bytes(run.bag_id, cutoff,
                                                               ((t.key, t.size) for t in run.tasks()))
    registry.finish_audit(rep.audit_id, stamp(now), rep.outcome, rep.files_checked, rep.bytes_checked,
                          rep.files_total, rep.bytes_total, len(rep.errors))
    run.plan.close()
    run.plan = None


def _rehash(runs: list[_Run], registry: Registry, budget: Budget, clock: Clock, progress: Optional[Progress],
            workers: int, commit_every: int, deadline: Optional[float]) -> bool:
    """Hash the chosen files, compare, record.  True when a budget left files unchecked."""
    folders = [r for r in runs if r.plan.folder is not None]
    archives = [r for r in runs if r.plan.archive is not None]
    algorithms = sorted({alg for run in folders for alg in run.plan.algorithms})
    if budget.rolling:  # tag files (manifests, bag-info.txt) are always checked; payload by budget
        candidates = [(run, task) for run in folders for task in run.tasks()]
        verified = {run.plan.location: registry.last_verified(run.plan.location) for run in folders}
        payload = [c for c in candidates if c[1].key.startswith("data/")]
        store = sum(t.size for _, t in payload) + sum(
            t.size for run in archives for t in run.tasks() if t.key.startswith("data/"))
        chosen = [c for c in candidates if not c[1].key.startswith("data/")] + choose(
            payload, budget, store, last_verified=lambda c: verified[c[0].plan.location].get(c[1].key, ""),
            size=lambda c: c[1].size, order=lambda c: (c[0].plan.location, c[1].key))
        total, stopped = len(chosen), len(chosen) < len(candidates)
        del candidates
    else:  # streamed from each plan's database, never listed
        chosen = ((run, task) for run in folders for task in run.tasks())
        total, stopped = sum(r.plan.files_total for r in folders), False
    total += sum(r.plan.files_total for r in archives)
    recorder = _Recorder(registry, clock, commit_every)
    done = 0

    def results() -> Iterator[tuple[_Run, FileTask, object]]:
        if folders:
            yield from _hash_folders(chosen, algorithms, workers)
        for run in archives:
            if deadline is None or time.monotonic() < deadline:
                yield from _hash_archive(run)

    if progress:
        progress("fixity", 0, total)
    stream = results()
    try:
        for run, task, (size, digests, error) in stream:
            recorder.add(run, _compare(run, task, size, digests, error))
            done += 1
            if progress and (done % PROGRESS_EVERY == 0 or done == total):
                progress("fixity", done, total)
            if deadline is not None and time.monotonic() >= deadline and done < total:
                stopped = True
                break
    finally:
        stream.close()
        recorder.flush()
    return stopped or done < total


def history(db: Path | str, bag: str) -> list[AuditRow]:
    """Every audit of one bag (a path to it, or its name when that is unique), oldest first."""
    with _registry(db, readonly=True) as registry:
        return registry.audits(_find(registry, db, bag)[0])


def retire(db: Path | str, bag: str, reason: str, *, clock: Clock = utc_now) -> tuple[str, str, str]:
    """Record that a bag (a path to it, or its name when unique) was deliberately deleted or moved,
    and why: it is no longer reported vanished, and its history is kept.  A bag found at its
    location again is audited as a new life.  Returns (location, name, when)."""
    if not reason.strip():
        raise UsageError("--reason: say why the bag is retired")
    with _registry(db) as registry:
        location, name = _find(registry, db, bag)
        if os.path.lexists(location):
            raise UsageError(f"{location}: the bag is still there; retire it once it is deleted or moved away")
        when = stamp(clock())
        registry.retire(location, when, reason)
        return location, name, when


def _registry(db: Path | str, readonly: bool = False) -> Registry:
    if not Path(db).is_file():
        raise path_error(db, "no such fixity registry")
    return Registry(Path(db), readonly=readonly)


def _find(registry: Registry, db: Path | str, bag: str) -> tuple[str, str]:
    """(location, name) of the one bag `bag` names: its path, or its name when that is unique."""
    ref = text_name(os.path.realpath(bag))    # a bag since removed too (it has a history)
    found = registry.find_bag(ref) or registry.find_bag(text_name(bag))
    if not found:
        raise UsageError(f"{bag}: no audit of this bag in {db}")
    if len(found) > 1:
        raise UsageError(f"{bag}: several bags have this name in {db}; name one by its path: "
                         + ", ".join(loc for loc, _ in found))
    return found[0]
