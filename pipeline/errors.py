"""One exception tree for the whole pipeline, and the registry of stable problem codes.

    PipelineError                    base; only this family ever leaves the public API
    +-- UsageError                   the call itself is wrong (exit 2)
    +-- InputError                   the user's input can be fixed by the user (exit 1)
    |   +-- RejectedError            validation collected problems; carries .problems
    |   +-- UnsupportedInput         a file the pipeline will not process
    +-- ProcessingError              a step failed on valid input (exit 1)
    |   +-- ConversionError          a master could not be written or proven
    |   +-- PackagingError           a bag could not be sealed or published
    |   +-- ClusterError             the Dask cluster failed or was unreachable
    +-- FixityError                  an audit found damaged, missing or unexpected files (exit 3)

Every problem found in the user's material is a `Problem` with a stable dotted code, registered in
one of the TOML files of `pipeline/codes/` (one file per area).  A code names what went wrong, never
where: `image.truncated`, `caption.schema`, `fixity.mismatch`.  Tests for invalid input are named
after the code they must raise.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Iterable

ERROR = "error"
WARNING = "warning"

UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")   # control characters, surrogates


def shown(name: str) -> str:
    """A name (or a record's key) safe to print on one line in UTF-8: control characters and lone
    surrogates escaped, undecodable bytes (surrogate escapes, U+DC80-U+DCFF) as `\\xNN`."""
    return UNSHOWN.sub(lambda m: (f"\\x{ord(m.group()) - 0xDC00:02x}" if "\udc80" <= m.group() <= "\udcff"
                                  else repr(m.group())[1:-1]), name)


@dataclass(frozen=True)
class Code:
    code: str
    severity: str
    summary: str


def _load_codes() -> dict[str, Code]:
    codes: dict[str, Code] = {}
    for entry in sorted(resources.files("pipeline.codes").iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        for name, spec in data.items():
            if name in codes:
                raise RuntimeError(f"problem code {name} is registered twice")
            codes[name] = Code(name, spec.get("severity", ERROR), spec["summary"])
    return codes


CODES: dict[str, Code] = _load_codes()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input or a package, reported as `path:field: reason [code]`.

    `path` is relative to the collection or bag (POSIX separators); `field` is a JSON pointer, a
    CSV `row N, column C`, an XML path, or "" when the whole file is meant.
    """

    code: str
    path: str
    reason: str
    field: str = ""
    severity: str = ""  # "" means: the registry's severity for this code

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise KeyError(f"unregistered problem code {self.code!r}")
        if not self.severity:
            object.__setattr__(self, "severity", CODES[self.code].severity)

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def render(self) -> str:
        where = self.path or "."
        if self.field:
            where = f"{where}:{self.field}"
        return f"{where}: {self.reason} [{self.code}]"

    def as_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "path": self.path,
                "field": self.field, "reason": self.reason}


def errors_in(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]


class PipelineError(Exception):
    """Base of every exception the pipeline raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[Problem, ...] = tuple(problems)


class UsageError(PipelineError):
    exit_code = 2


def path_error(path, reason: str) -> UsageError:
    """A path the caller named (on the command line or to the API) that cannot be used:
    `path: reason` [usage.path]."""
    return UsageError(f"{path}: {reason}", [Problem("usage.path", str(path), reason)])


class InputError(PipelineError):
    pass


class RejectedError(InputError):
    """Validation found problems; nothing was written."""


class UnsupportedInput(InputError):
    pass


class ProcessingError(PipelineError):
    pass


class ConversionError(ProcessingError):
    pass


class PackagingError(ProcessingError):
    pass


class ClusterError(ProcessingError):
    pass


class FixityError(PipelineError):
    exit_code = 3
