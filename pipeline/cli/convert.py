"""`pipeline convert SRC DST.tif [--compression none|deflate] [--json]`"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import click

from .. import durable
from ..errors import ConversionError, Problem, errors_in
from ..model import Item
from ..stage import Context, Settings
from ..stages.convert import convert_item, frame_paths
from . import EXIT_INVALID, EXIT_OK, cli, echo_json, echo_problems, json_option
from .options import path_error, pixel_limit_option


def destinations(dst: Path, frames: int) -> list[Path]:
    """DST for one frame (as named, .tif or .tiff); the stage's frame names next to it for
    multi-frame sources."""
    return [dst] if frames == 1 else frame_paths(dst, frames)


def exists(path: Path) -> Problem:
    return Problem("output.exists", str(path), "already exists; not overwritten")


def failed(src: Path, where: Path, problems: list[Problem], as_json: bool) -> int:
    """Nothing converted: the JSON report of the failure (exit 1), else one line naming `where` and
    the first error (ConversionError)."""
    if as_json:
        echo_json({"command": "convert", "source": str(src), "proven": False, "masters": [],
                   "exit_code": EXIT_INVALID, "problems": [p.as_dict() for p in problems]})
        return EXIT_INVALID
    first = errors_in(problems)[0]
    raise ConversionError(f"{where}: {first.reason} [{first.code}]")


@cli.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--compression", type=click.Choice(["none", "deflate"]), default="none", show_default=True,
              help="deflate = Deflate with the horizontal predictor.")
@pixel_limit_option
@json_option
def convert(src, dst, compression, pixel_limit, as_json):
    """Convert one image to an archival TIFF master and prove it pixel for pixel.

    A multi-frame SRC (animated GIF or WebP, multi-page TIFF) gives one master per frame:
    DST's name with .f0001.tif, .f0002.tif... Exit 0 proven, 1 failed (nothing written), 2 usage.
    """
    if not src.is_file():
        raise path_error(src, "no such file")
    if dst.suffix.lower() not in (".tif", ".tiff"):
        raise path_error(dst, "the master's name must end in .tif or .tiff")
    if not dst.parent.is_dir():
        raise path_error(dst.parent, "no such folder for the master")
    if dst.exists():
        return failed(src, dst, [exists(dst)], as_json)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    except OSError as exc:
        raise path_error(dst.parent, f"cannot write the master there ({exc.strerror})") from exc
    try:
        settings = Settings(compression=compression, pixel_limit=pixel_limit, algorithms=("sha256",))
        # absolute, not resolved: a SRC that is a symbolic link is read under its own name
        ctx = Context.create(settings, src.absolute().parent, work, "convert")
        item = convert_item(Item(id=ctx.make_id(src.name), relpath=src.name, record=None), ctx)
        if errors_in(item.problems):
            return failed(src, src, item.problems, as_json)
        targets = destinations(dst, len(item.masters))
        taken = [t for t in targets if t.exists()]
        if taken:
            return failed(src, taken[0], [exists(t) for t in taken], as_json)
        done: list[Path] = []
        try:
            for master, target in zip(item.masters, targets):
                os.link(ctx.staging / master.bagpath, target)   # never overwrites
                done.append(target)
                durable.fsync_file(target)
            durable.fsync_file(dst.parent)    # the new names, too
        except OSError as exc:
            for target in done:
                target.unlink(missing_ok=True)
            raise ConversionError(f"{dst}: cannot write the master: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    warnings = [p for p in item.problems if not p.is_error]
    report = {"command": "convert", "source": str(src), "proven": True, "exit_code": EXIT_OK,
              "masters": [{"path": str(t), "size": m.size, "sha256": m.checksums["sha256"],
                           **m.technical} for m, t in zip(item.masters, targets)],
              "problems": [p.as_dict() for p in warnings]}
    if as_json:
        echo_json(report)
        return EXIT_OK
    echo_problems(warnings, err=True)
    for m, t in zip(item.masters, targets):
        tech = m.technical
        click.echo(f"{src} -> {t}: proven; {tech['width']}x{tech['height']} {tech['photometric']} "
                   f"{tech['bits_per_sample']}-bit, compression {tech['compression']}; "
                   f"pixels sha256 {tech['master_pixel_sha256']}")
    return EXIT_OK
