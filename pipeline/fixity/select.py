"""Rolling audits: which files to re-hash tonight, oldest verification first.

A budget is a share of the store (`--budget 10%`), a number of bytes (`--max-bytes 50G`), or a
time (`--max-seconds 3600`); they combine (the first one reached stops the audit).  Files never
verified come first, then the ones verified longest ago; ties go by bag and path, so the order is
stable.  Byte budgets always take at least one file, and the file that reaches the budget is still
checked, so a nightly job always progresses and `--budget 10%` covers the store in ten nights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, TypeVar

from ..errors import UsageError

T = TypeVar("T")
DEFAULT_WINDOW_DAYS = 30
MAX_WINDOW_DAYS = 36500    # a century: a longer window is no audit policy (and overflows dates)


@dataclass(frozen=True)
class Budget:
    percent: Optional[float] = None
    max_bytes: Optional[int] = None
    max_seconds: Optional[float] = None

    @property
    def rolling(self) -> bool:
        return any(v is not None for v in (self.percent, self.max_bytes, self.max_seconds))

    def byte_cap(self, store_bytes: int) -> Optional[int]:
        caps = [c for c in (self.max_bytes,
                            None if self.percent is None else math.ceil(store_bytes * self.percent / 100))
                if c is not None]
        return min(caps) if caps else None

    def window_days(self) -> int:
        """The period a nightly run with this budget needs to cover the store (default 30 days)."""
        if self.percent:
            return min(MAX_WINDOW_DAYS, max(1, math.ceil(100 / self.percent)))
        return DEFAULT_WINDOW_DAYS


def parse_percent(text: str) -> float:
    """`10%` or `10` -> 10.0 (more than 0, at most 100)."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError as exc:
        raise UsageError(f"--budget {text!r}: not a percentage (e.g. 10%)") from exc
    if not 0 < value <= 100:
        raise UsageError(f"--budget {text!r}: must be more than 0% and at most 100%")
    return value


def choose(files: Iterable[T], budget: Budget, store_bytes: int,
           last_verified: Callable[[T], str], size: Callable[[T], int], order: Callable[[T], tuple]) -> list[T]:
    """The files to check, in the order to check them: never verified, then oldest verified."""
    ranked = sorted(files, key=lambda f: (last_verified(f) or "", order(f)))
    cap = budget.byte_cap(store_bytes)
    if cap is None:
        return ranked
    out, total = [], 0
    for f in ranked:
        if out and total >= cap:
            break
        out.append(f)
        total += size(f)
    return out
