"""`pipeline fixity [PATH...]`: audit stored bags, record every check, report; `--history BAG`."""
from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import click

from ..errors import UsageError, shown
from ..fixity import audit, history, retire
from ..fixity.registry import Registry
from ..fixity.report import CSV_HEADER, summary_lines
from ..fixity.select import MAX_WINDOW_DAYS, Budget, parse_percent
from . import ProgressBar, cli, echo_json, json_option, quiet_option
from .options import parse_size


INTERRUPTED = ("what the audit recorded is kept; an audit it did not finish shows as interrupted in "
               "--history, and the next rolling audit starts with the files it never reached")


def _history(db: Path, bag: str, as_json: bool, premis: bool) -> int:
    rows = history(db, bag)
    with Registry(db, readonly=True) as registry:     # history never writes
        problems = {r.id: registry.problem_checks(r.id) for r in rows if r.problems}
        retirements = registry.retirements(rows[0].location)
    if premis:
        from ..fixity.premis_export import premis_document  # lxml only when asked
        from ..xmlio import to_bytes
        sys.stdout.buffer.write(to_bytes(premis_document(rows[0].location, rows[0].name, rows, problems,
                                                         retirements)))
        return 0
    if as_json:
        echo_json({"command": "fixity history", "ok": True, "exit_code": 0, "bag": rows[0].name,
                   "location": rows[0].location,
                   "audits": [{**r.__dict__, "outcome": r.status,
                               "problems_found": [c._asdict() for c in problems.get(r.id, [])]} for r in rows],
                   "retirements": [{"retired": when, "reason": reason, "revived": revived}
                                   for when, reason, revived in retirements]})
        return 0
    click.echo(shown(f"{rows[0].name} ({rows[0].location}): {len(rows)} audit(s)"))
    # in time order; within one second a retirement follows the audits, a revival precedes its audit
    events = [(r.started, 1, r) for r in rows] + [(when, 2, f"  {when}  retired: {reason}")
                                                  for when, reason, _ in retirements]
    events += [(revived, 0, f"  {revived}  found again at its location: audited from here as a new life")
               for _, _, revived in retirements if revived]
    for _, _, r in sorted(events, key=lambda e: e[:2]):
        if isinstance(r, str):
            click.echo(shown(r))
            continue
        click.echo(f"  {r.started}  {r.mode:<7}  {r.status:<11}  {r.files_checked}/{r.files_total} files  "
                   f"{r.bytes_checked} bytes  {r.problems} problem(s)  [{r.algorithms}]")
        for c in problems.get(r.id, []):
            click.echo(shown(f"      {c.path or '.'}: {c.reason} [{c.code}]"))
    return 0


def _retire(db: Path, bag: str, reason: str, as_json: bool) -> int:
    location, name, when = retire(db, bag, reason)
    if as_json:
        echo_json({"command": "fixity retire", "ok": True, "exit_code": 0, "bag": name, "location": location,
                   "retired": when, "reason": reason})
    else:
        click.echo(shown(f"{name} ({location}): retired {when}: {reason}"))
    return 0


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(path_type=Path), default=Path("output"), show_default=True,
              help="Folder of stored bags (audited when no PATH is given) and of the default registry.")
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False),
              help="SQLite registry of every check [default: OUTPUT/fixity.sqlite].")
@click.option("--fast", is_flag=True,
              help="Completeness only: file lists and Payload-Oxum, no checksum (NOT a fixity check).")
@click.option("--budget", metavar="PCT%", help="Rolling audit: re-hash this share of the store's bytes, "
              "oldest verification first.")
@click.option("--max-bytes", metavar="SIZE", help="Rolling audit: re-hash at most about this much (e.g. 50G).")
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), help="Rolling audit: stop after this long.")
@click.option("--window-days", type=click.IntRange(min=1, max=MAX_WINDOW_DAYS),
              help="Report the share of the store verified within this many days "
                   "[default: 100/PCT with --budget, else 30].")
@click.option("--workers", type=click.IntRange(min=0), default=0, help="Hashing threads (default: one per core).")
@click.option("--history", "history_of", metavar="BAG", help="Show the audit history of BAG (path or name).")
@click.option("--retire", "retire_bag", metavar="BAG", help="Record that BAG (path or name) was deliberately "
              "deleted or moved (with --reason): no longer reported vanished; its history is kept.")
@click.option("--reason", metavar="TEXT", help="With --retire: why the bag was retired.")
@click.option("--premis", is_flag=True, help="With --history: write it as PREMIS 3 fixity-check events (XML).")
@click.option("--csv", "as_csv", is_flag=True, help="Write the report as CSV (one row per problem and per bag).")
@json_option
@quiet_option
def fixity(paths, output, db, fast, budget, max_bytes, max_seconds, window_days, workers, history_of, retire_bag,
           reason, premis, as_csv, as_json, quiet):
    """Re-hash stored bags against all their manifests and record every check.

    PATHS are bags, serialized bags (.tar, .tar.gz, .zip) or folders of bags; default: every bag
    in --output.  Every changed, missing and unexpected file is named, with the algorithm and the
    expected and actual checksums.  Nothing is ever written inside a bag.

    \b
    Exit codes: 0 every bag intact, 3 problems found, 1 could not run, 2 usage.
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv exclude each other")
    if as_json and premis:
        raise UsageError("--json and --premis exclude each other")
    if premis and not history_of:
        raise click.UsageError("--premis goes with --history BAG")
    db = db or output / "fixity.sqlite"
    budgeted = any(v is not None for v in (budget, max_bytes, max_seconds))   # '' is a value, never "none"
    if reason is not None and not retire_bag:
        raise click.UsageError("--reason goes with --retire BAG")
    if retire_bag:
        if paths or fast or budgeted or history_of or premis or as_csv or window_days:
            raise click.UsageError("--retire takes no PATH, no audit option and no --history")
        if reason is None:
            raise click.UsageError("--retire BAG needs --reason TEXT (why it was deleted or moved)")
        return _retire(db, retire_bag, reason, as_json)
    if history_of:
        if paths or fast or budgeted:
            raise click.UsageError("--history takes no PATH and no audit option")
        return _history(db, history_of, as_json, premis)
    if fast and budgeted:
        raise click.UsageError("--fast computes no checksum: a budget means nothing with it")
    if max_seconds is not None and not math.isfinite(max_seconds):
        raise UsageError(f"--max-seconds {max_seconds}: not a number of seconds")
    plan = Budget(percent=parse_percent(budget) if budget is not None else None,
                  max_bytes=parse_size(max_bytes, "--max-bytes") if max_bytes is not None else None,
                  max_seconds=max_seconds)
    try:
        return _audit(paths, output, db, fast, plan, window_days, workers, as_csv, as_json, quiet)
    except KeyboardInterrupt as exc:
        raise click.exceptions.Abort(INTERRUPTED) from exc


def _audit(paths, output, db, fast, plan, window_days, workers, as_csv, as_json, quiet) -> int:
    bar = ProgressBar(quiet or as_json or as_csv)
    try:
        report = audit(paths, output=output, db=db, fast=fast, budget=plan, window_days=window_days,
                       workers=workers, progress=bar)
    finally:
        bar.close()
    if as_json:
        echo_json(report.as_dict())
    elif as_csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(report.csv_rows())
        click.echo(buf.getvalue(), nl=False)
    else:
        for line in summary_lines(report):
            click.echo(line)
    return report.exit_code
