"""`pipeline validate [COLLECTION...]`"""
from __future__ import annotations


import click

from ..errors import RejectedError, errors_in, shown
from ..executor import validate_collection
from ..stage import Settings
from . import (EXIT_INVALID, EXIT_OK, WARNINGS_SHOWN, ProgressBar, cli, echo_json, echo_problems, json_option,
               problems_of, quiet_option)
from .options import collections_in, ingest_option, pixel_limit_option, workers_option


@cli.command()
@click.argument("collections", nargs=-1)
@ingest_option
@pixel_limit_option
@workers_option
@json_option
@quiet_option
def validate(collections, ingest, pixel_limit, workers, as_json, quiet):
    """Check records against the schemas and images by their content; write nothing.

    COLLECTIONS are folders (or names inside --ingest); default: every collection in ingest/.
    Every error is reported, one line each: path:field: reason [code]; of each kind of warning
    the first 10, then how many more (--json lists every one).
    """
    settings = Settings(pixel_limit=pixel_limit, workers=workers)
    bar = ProgressBar(quiet or as_json)
    reports, worst = [], EXIT_OK
    for folder in collections_in(ingest, tuple(collections)):
        name = shown(folder.resolve().name)     # `.` names no collection
        try:
            package = validate_collection(folder, settings, progress=bar)
        except RejectedError as exc:        # a folder that cannot be a collection: the others go on
            bar.close()
            worst = EXIT_INVALID
            reports.append({"collection": name, "items": 0, "valid": False, "errors": 1, "warnings": 0,
                            "error": str(exc), "problems": [p.as_dict() for p in problems_of(exc)]})
            if not as_json:
                click.echo(f"pipeline: error: {exc}", err=True)
            continue
        bar.close()
        problems = package.all_problems
        errors = errors_in(problems)
        if errors:
            worst = EXIT_INVALID
        reports.append({"collection": name, "items": len(package.items),
                        "valid": not errors, "errors": len(errors),
                        "warnings": len(problems) - len(errors),
                        "problems": [p.as_dict() for p in problems]})
        if not as_json:
            echo_problems(problems, shown=WARNINGS_SHOWN)
            verdict = "valid" if not errors else "INVALID"
            click.echo(f"{name}: {verdict}: {len(package.items)} items, "
                       f"{len(errors)} errors, {len(problems) - len(errors)} warnings")
    if as_json:
        echo_json({"command": "validate", "valid": worst == EXIT_OK, "exit_code": worst, "collections": reports})
    return worst
