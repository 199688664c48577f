"""Options shared by several subcommands, and turning them into Settings."""
from __future__ import annotations

import math
from pathlib import Path

import click

from ..errors import UsageError, path_error  # noqa: F401  (path_error: the subcommands import it from here)
from ..stage import DEFAULT_PIXEL_LIMIT

SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str, option: str = "") -> int:
    """`50G`, `700M`, `1024` -> bytes, at least 1 (no limit is the option left out, never 0);
    `option` (e.g. `--max-bag-size`) names the option in the usage error."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B") if text else ""
    unit = t[-1:] if t[-1:] in SIZE_UNITS else ""
    number = t[:-1] if unit else t
    where = f"{option}: " if option else ""
    try:
        value = float(number)
    except ValueError as exc:
        raise UsageError(f"{where}not a size: {text!r} (use e.g. 700M, 50G)") from exc
    if not math.isfinite(value):     # inf, nan, 1e400: no size
        raise UsageError(f"{where}not a size: {text!r}")
    if value * SIZE_UNITS[unit] < 1:
        raise UsageError(f"{where}{text!r} is less than 1 byte (leave the option out for no limit)")
    return int(value * SIZE_UNITS[unit])


class Size(click.ParamType):
    """An option's size (see parse_size): a bad one is click's usage error naming the option."""

    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


def collections_in(ingest: Path, names: tuple[str, ...]) -> list[Path]:
    """The collections named on the command line, or every collection folder in `ingest`."""
    if names:
        out = []
        for name in names:
            p = Path(name)
            if not p.is_dir() and (ingest / name).is_dir():
                p = ingest / name
            if not p.is_dir():
                raise path_error(name, "no such collection folder")
            out.append(p)
        return out
    if not ingest.is_dir():
        raise path_error(ingest, "no such ingest folder")
    found = sorted(p for p in ingest.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise path_error(ingest, "no collection folders in it")
    return found


ingest_option = click.option("--ingest", type=click.Path(path_type=Path), default=Path("ingest"),
                             show_default=True, help="Folder holding the collections.")
pixel_limit_option = click.option("--pixel-limit", type=click.IntRange(min=1), default=DEFAULT_PIXEL_LIMIT,
                                  show_default=True, help="Refuse images with more pixels (decompression bombs).")
workers_option = click.option("--workers", type=click.IntRange(min=0), default=0,
                              help="Worker processes for per-item work (default: all cores).")
