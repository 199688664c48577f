"""`pipeline run [COLLECTION...]`"""
from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import PipelineError
from ..executor import STAGE_NAMES, run as run_collection
from ..stage import Settings
from . import EXIT_INVALID, EXIT_OK, ProgressBar, cli, echo_json, echo_problems, json_option, quiet_option
from .options import collections_in, ingest_option, parse_size, pixel_limit_option, workers_option


@cli.command()
@click.argument("collections", nargs=-1)
@ingest_option
@click.option("--output", type=click.Path(path_type=Path), default=Path("output"), show_default=True,
              help="Folder the sealed bags are published to.")
@click.option("--until", type=click.Choice(STAGE_NAMES), help="Stop after this stage.")
@click.option("--compression", type=click.Choice(["none", "deflate"]), default="none", show_default=True,
              help="TIFF master compression (deflate = Deflate with horizontal predictor).")
@click.option("--algorithm", "algorithms", multiple=True, type=click.Choice(["sha256", "sha512", "sha1", "md5"]),
              help="Manifest algorithm (repeat; default sha256 and sha512).")
@click.option("--schemas", type=click.Path(path_type=Path, file_okay=False), envvar="PIPELINE_SCHEMAS",
              help="Folder of the official XSDs; the METS is validated against them before sealing.")
@click.option("--max-bag-size", default="", help="Split into several bags of at most this size (e.g. 50G).")
@click.option("--serialize", type=click.Choice(["tar", "tar.gz", "zip"]), help="Also write the bag as one file.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", default="", help="Dask scheduler address, with --executor dask.")
@pixel_limit_option
@workers_option
@json_option
@quiet_option
def run(collections, ingest, output, until, compression, algorithms, schemas, max_bag_size, serialize,
        executor, scheduler, pixel_limit, workers, as_json, quiet):
    """Validate, convert, describe and package each collection into a bag in --output.

    COLLECTIONS are folders (or names inside --ingest); default: every collection in ingest/.
    """
    if executor == "dask" and not scheduler:
        raise click.UsageError("--executor dask needs --scheduler ADDRESS")
    settings = Settings(pixel_limit=pixel_limit, compression=compression,
                        algorithms=tuple(algorithms) or ("sha256", "sha512"), workers=workers,
                        executor=executor, scheduler=scheduler, schemas_dir=schemas,
                        max_bag_size=parse_size(max_bag_size) if max_bag_size else 0,
                        serialize=serialize or "")
    bar = ProgressBar(quiet or as_json)
    reports, worst = [], EXIT_OK
    for folder in collections_in(ingest, tuple(collections)):
        try:
            result = run_collection(folder, output, settings, until=until, progress=bar)
        except PipelineError as exc:
            bar.close()
            if not as_json:
                raise
            worst = max(worst, exc.exit_code)
            reports.append({"collection": folder.name, "ok": False, "error": str(exc),
                            "problems": [p.as_dict() for p in exc.problems]})
            continue
        bar.close()
        problems = result.package.all_problems
        reports.append({"collection": folder.name, "ok": True, "items": len(result.package.items),
                        "stages_run": result.stages_run, "stages_missing": result.stages_missing,
                        "published": [str(p) for p in result.published],
                        "problems": [p.as_dict() for p in problems]})
        if not as_json:
            echo_problems(problems)
            click.echo(f"{folder.name}: {len(result.package.items)} items; stages run: "
                       f"{', '.join(result.stages_run)}")
            if result.stages_missing:
                click.echo(f"{folder.name}: not built yet, skipped: {', '.join(result.stages_missing)}")
            for p in result.published:
                click.echo(f"{folder.name}: published {p}")
    if as_json:
        echo_json({"command": "run", "ok": worst == EXIT_OK, "collections": reports})
    return worst
