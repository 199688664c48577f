"""Run report data: what each stage did, how long it took, what it found.  No printing here.

The command line renders it for people or as JSON (`pipeline run --json`).  Durations come from a
monotonic timer; they describe the run, never go into a bag, and so do not touch determinism.
"""
from __future__ import annotations

import resource
from dataclasses import asdict, dataclass

from .model import Package


@dataclass(frozen=True)
class StageReport:
    """One stage of one run.

    `bytes`: payload the package holds after the stage (originals, masters, metadata files);
    `bytes_added`: what this stage added to it (e.g. the masters, for convert).
    `problems` / `errors`: problems this stage added (all severities / errors only).
    `peak_mb`: the main process's peak resident memory so far (workers not included).
    """

    stage: str
    seconds: float
    items: int
    bytes: int
    bytes_added: int
    problems: int
    errors: int
    peak_mb: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def payload_bytes(package: Package) -> int:
    return metadata_bytes(package) + items_bytes(package.items)


def items_bytes(items) -> int:
    """The size of the items' originals and masters."""
    kept = getattr(items, "payload_bytes", None)     # an ItemStore answers from memory
    if kept is not None:
        return kept()
    return sum(f.size for i in items for f in i.objects())


def metadata_bytes(package: Package) -> int:
    """The size of every metadata file: the items' own and the package's."""
    kept = getattr(package.items, "metadata_bytes", None)     # an ItemStore answers from memory
    items = kept() if kept is not None else sum(f.size for i in package.items for f in i.metadata)
    return items + sum(f.size for f in package.metadata_files)


def problem_counts(package: Package) -> tuple[int, int]:
    """(all problems, errors) on the package and its items."""
    problems = package.all_problems
    return len(problems), sum(1 for p in problems if p.is_error)


@dataclass(frozen=True)
class Measure:
    """What a package holds at one moment: payload bytes, problems, errors."""

    bytes: int
    problems: int
    errors: int


def measure(package: Package) -> Measure:
    return Measure(payload_bytes(package), *problem_counts(package))


def stage_report(stage: str, seconds: float, before: Measure | Package, after: Package) -> StageReport:
    """`before`: the package the stage received, or its Measure taken before the stage ran."""
    if isinstance(before, Package):
        before = measure(before)
    now = measure(after)
    return StageReport(stage=stage, seconds=round(seconds, 3), items=len(after.items),
                       bytes=now.bytes, bytes_added=max(now.bytes - before.bytes, 0),
                       problems=max(now.problems - before.problems, 0),
                       errors=max(now.errors - before.errors, 0), peak_mb=peak_mb())


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports kilobytes)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
