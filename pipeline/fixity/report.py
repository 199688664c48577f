"""What an audit found, and its renderings: a human summary, a JSON document, CSV rows.

The library builds these; only `pipeline/cli/fixity.py` prints them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional

from ..errors import shown
from .plan import Finding

EXIT_INTACT, EXIT_NOT_RUN, EXIT_PROBLEMS = 0, 1, 3
CSV_HEADER = ("bag", "path", "code", "severity", "algorithm", "expected", "actual", "reason", "since")


@dataclass
class BagReport:
    location: str
    name: str
    mode: str                          # full | rolling | fast
    audit_id: Optional[int] = None     # None: the bag could not be audited
    findings: list[Finding] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    algorithms: list[str] = field(default_factory=list)
    files_checked: int = 0
    bytes_checked: int = 0
    files_total: int = 0               # files the manifests list that the bag holds
    bytes_total: int = 0
    bytes_listed: int = 0              # bytes of every file the manifests list, present or not
    normalized: int = 0
    recovered: list[tuple[str, str]] = field(default_factory=list)   # (path, error codes found before)
    revived: Optional[tuple[str, str]] = None   # (retired, reason): found at a retired location, a new life

    @property
    def audited(self) -> bool:
        return not any(f.code == "fixity.not_a_bag" for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    @property
    def outcome(self) -> str:
        if not self.audited:
            return "not audited"
        if self.errors:
            return "problems"
        return "complete" if self.mode == "fast" else "intact"

    def as_dict(self) -> dict:
        return {"bag": self.name, "location": self.location, "audit_id": self.audit_id, "mode": self.mode,
                "outcome": self.outcome, "fixity_checked": self.mode != "fast",
                "manifests": self.manifests, "algorithms": self.algorithms,
                "files_checked": self.files_checked, "bytes_checked": self.bytes_checked,
                "files_total": self.files_total, "bytes_total": self.bytes_total,
                "bytes_listed": self.bytes_listed,
                "normalized_names": self.normalized,
                "problems": [f.as_dict() for f in self.findings],
                "recovered": [{"path": p, "before": codes.split()} for p, codes in self.recovered],
                "revived": self.revived and {"retired": self.revived[0], "reason": self.revived[1]}}


@dataclass
class AuditReport:
    started: str
    finished: str
    mode: str
    registry: str
    window_days: int
    bags: list[BagReport] = field(default_factory=list)
    verified_bytes_in_window: int = 0   # bytes of the audited store found intact within the window
    stopped_by_budget: bool = False

    @property
    def store_bytes(self) -> int:
        """Bytes of every file the manifests list: a missing file counts, as not verified."""
        return sum(b.bytes_listed for b in self.bags)

    @property
    def verified_share(self) -> float:
        return self.verified_bytes_in_window / self.store_bytes if self.store_bytes else 0.0

    @property
    def unreadable_bags(self) -> int:
        """Bags that could not be read at all (their size is unknown, so not in store_bytes)."""
        return sum(1 for b in self.bags if any(f.code == "archive.unreadable" for f in b.findings))

    @property
    def exit_code(self) -> int:
        if any(b.errors and b.audited for b in self.bags):
            return EXIT_PROBLEMS
        return EXIT_NOT_RUN if any(not b.audited for b in self.bags) else EXIT_INTACT

    def as_dict(self) -> dict:
        return {"command": "fixity", "ok": self.exit_code == EXIT_INTACT, "exit_code": self.exit_code,
                "mode": self.mode, "started": self.started, "finished": self.finished,
                "registry": self.registry,
                "store": {"bags": len(self.bags), "files": sum(b.files_total for b in self.bags),
                          "bytes": self.store_bytes,
                          "files_checked": sum(b.files_checked for b in self.bags),
                          "bytes_checked": sum(b.bytes_checked for b in self.bags),
                          "window_days": self.window_days,
                          "verified_bytes_in_window": self.verified_bytes_in_window,
                          "verified_share_in_window": round(self.verified_share, 6),
                          "unreadable_bags": self.unreadable_bags,
                          "stopped_by_budget": self.stopped_by_budget},
                "bags": [b.as_dict() for b in self.bags]}

    def csv_rows(self) -> Iterator[tuple]:
        """CSV_HEADER rows: one per finding, and one per bag (path empty, code = its outcome)."""
        for b in self.bags:
            yield (b.name, "", b.outcome, "", ",".join(b.algorithms), "", "",
                   f"{b.files_checked} of {b.files_total} files checked ({b.mode})", "")
            if b.revived:
                yield (b.name, "", "revived", "info", "", "", "", revived_text(b.revived), "")
            for f in b.findings:
                d = f.as_dict()
                yield (b.name, f.path, f.code, d["severity"], f.algorithm, f.expected, f.actual, f.reason, f.since)
            for path, codes in b.recovered:
                yield (b.name, path, "recovered", "info", "", "", "", recovered_text(codes), "")


def size_text(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def finding_text(f: Finding) -> str:
    where = f.path or "."
    if f.field:
        where = f"{where}:{f.field}"
    detail = f.reason
    if f.code == "fixity.mismatch":
        detail = f"{f.algorithm} expected {f.expected}, found {f.actual}"
    elif f.expected and f.code == "fixity.missing":
        detail = f"{f.reason} ({f.algorithm} {f.expected})"
    prefix = "" if f.is_error else "warning: "
    since = {"new": " (new since the check before)", "known": " (known: the check before found it too)"}
    return f"{prefix}{where}: {detail} [{f.code}]{since.get(f.since, '')}"


def revived_text(revived: tuple[str, str]) -> str:
    return f"found at a location retired {revived[0]} ({revived[1]}): audited as a new life"


def recovered_text(codes: str) -> str:
    return f"verified intact again (the check before found {', '.join(codes.split())})"


def summary_lines(report: AuditReport) -> Iterator[str]:
    """The human report, one line each: names are printed as `shown` (control characters such as
    a newline or ESC escaped), so no file name can forge a line or drive the terminal."""
    return map(shown, _summary_lines(report))


def _summary_lines(report: AuditReport) -> Iterator[str]:
    for b in report.bags:
        head = f"{b.name}: {b.outcome.upper()}"
        if not b.audited:
            yield f"{head} - {b.findings[0].reason}"
            continue
        if b.mode == "fast":
            yield (f"{head} - completeness only (file list and Payload-Oxum); no checksum was computed, "
                   f"this is not a fixity check")
        else:
            scope = "" if b.files_checked == b.files_total else f" of {b.files_total}"
            yield (f"{head} - {b.files_checked}{scope} files ({size_text(b.bytes_checked)}) re-hashed "
                   f"against {', '.join(b.manifests) or 'no manifest'}")
        if b.revived:
            yield f"  info: {revived_text(b.revived)}"
        for f in b.findings:
            yield f"  {finding_text(f)}"
        for path, codes in b.recovered:
            yield f"  info: {path}: {recovered_text(codes)} [recovered]"
        if b.normalized:
            yield (f"  note: {b.normalized} file name(s) differ from the manifest only in Unicode "
                   f"normalization (NFC/NFD); they were matched and checked")
    changed = len({(b.name, f.path) for b in report.bags for f in b.findings if f.code == "fixity.mismatch"})
    errors = sum(len(b.errors) for b in report.bags if b.audited)
    yield (f"{len(report.bags)} bag(s), {sum(b.files_checked for b in report.bags)} files "
           f"({size_text(sum(b.bytes_checked for b in report.bags))}) checked; "
           f"{errors} problem(s), {changed} changed file(s)"
           + ("; stopped by the budget" if report.stopped_by_budget else ""))
    found = [f.since for b in report.bags for f in b.errors]
    recovered = sum(len(b.recovered) for b in report.bags)
    if found.count("new") or found.count("known") or recovered:
        yield (f"since the check before: {found.count('new')} new problem(s), {found.count('known')} known, "
               f"{recovered} file(s) recovered")
    unknown = (f"; {report.unreadable_bags} bag(s) could not be read, their size is unknown and not counted"
               if report.unreadable_bags else "")
    if report.mode != "fast" and not report.store_bytes:
        yield "nothing of the store verified: no payload bytes found" + unknown
    elif report.mode != "fast":
        yield (f"{100 * report.verified_share:.1f}% of the store ({size_text(report.verified_bytes_in_window)} "
               f"of {size_text(report.store_bytes)}) verified intact within the last {report.window_days} days"
               + unknown)
    yield f"registry: {report.registry}"
