"""`pipeline verify BAG...`: full BagIt validation of bag folders and tar/tar.gz/zip bags."""
from __future__ import annotations

from pathlib import Path

import click

from ..profile import load_profile
from ..verify import Report, verify_bag
from . import EXIT_INVALID, EXIT_OK, ProgressBar, cli, echo_json, json_option, quiet_option
from .options import path_error


def _one_line(text: str) -> str:
    """Names may hold CR and LF: shown escaped so that each problem stays on one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _render(report: Report) -> list[str]:
    lines = []
    for p in report.problems:
        where = f"{report.bag}/{p.path}" if p.path else report.bag
        if p.field:
            where = f"{where}:{p.field}"
        prefix = "" if p.is_error else "warning: "
        lines.append(_one_line(f"{prefix}{where}: {p.reason} [{p.code}]"))
    errors = sum(p.is_error for p in report.problems)
    warnings = len(report.problems) - errors
    what = f"{report.files} payload files, {report.bytes} bytes, {report.hashed} files hashed"
    if report.valid:
        lines.append(f"{report.bag}: valid ({what}" + (f"; {warnings} warning(s))" if warnings else ")"))
    else:
        lines.append(f"{report.bag}: INVALID: {errors} problem(s) ({what})")
    return lines


@cli.command()
@click.argument("bags", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--profile", "profile_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also check each bag against this BagIt profile (JSON).")
@click.option("--schemas", type=click.Path(path_type=Path, file_okay=False), envvar="PIPELINE_SCHEMAS",
              help="Folder of the official XSDs: our packages' METS and DC are validated against them.")
@click.option("--fast", is_flag=True, help="Completeness and Payload-Oxum only; no checksums.")
@click.option("--processes", type=click.IntRange(min=0), default=0,
              help="Processes hashing files (default: all cores).")
@json_option
@quiet_option
def verify(bags, profile_path, schemas, fast, processes, as_json, quiet):
    """Validate BagIt bags (RFC 8493, BagIt 0.93 to 1.0): folders, or tar, tar.gz and zip files.

    Every problem is reported, each with its file and reason.  Nothing is fetched, nothing outside
    the bag is read, archives are streamed without unpacking.

    \b
    Exit codes: 0 every bag valid (warnings allowed), 1 a bag is invalid, 2 usage.
    """
    if schemas is not None and not schemas.is_dir():
        raise click.BadParameter(f"{schemas}: no such folder", param_hint="--schemas")
    for path in bags:
        if not path.exists():
            raise path_error(path, "no such bag (neither a folder nor a tar or zip file)")
    profile = load_profile(profile_path) if profile_path else None
    bar = ProgressBar(quiet or as_json)
    reports = []
    for path in bags:
        report = verify_bag(path, fast=fast, workers=processes, schemas=schemas, profile=profile,
                            progress=bar, label=str(path))
        bar.close()
        reports.append(report)
        if not as_json:
            for line in _render(report):
                click.echo(line)
    ok = all(r.valid for r in reports)
    if as_json:
        echo_json({"command": "verify", "ok": ok, "exit_code": EXIT_OK if ok else EXIT_INVALID,
                   "bags": [r.as_dict() for r in reports]})
    return EXIT_OK if ok else EXIT_INVALID
