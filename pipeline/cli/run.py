"""`pipeline run [COLLECTION...]`"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import click

from ..errors import ClusterError, PipelineError, UsageError, shown
from ..executor import STAGE_NAMES, RunResult, run as run_collection
from ..report import StageReport
from ..stage import Settings
from . import (EXIT_OK, WARNINGS_SHOWN, ProgressBar, cli, echo_error, echo_json, echo_problems, json_option,
               problems_of, quiet_option)
from .options import Size, collections_in, ingest_option, pixel_limit_option, workers_option


@cli.command()
@click.argument("collections", nargs=-1)
@ingest_option
@click.option("--output", type=click.Path(path_type=Path), default=Path("output"), show_default=True,
              help="Folder the sealed bags are published to.")
@click.option("--until", type=click.Choice(STAGE_NAMES),
              help="Stop after this stage. (discover pairs files by name only: the records' contents "
                   "are read and checked by validate.)")
@click.option("--compression", type=click.Choice(["none", "deflate"]), default="none", show_default=True,
              help="TIFF master compression (deflate = Deflate with horizontal predictor).")
@click.option("--algorithm", "algorithms", multiple=True, type=click.Choice(["sha256", "sha512", "sha1", "md5"]),
              help="Manifest algorithm (repeat; default sha256 and sha512).")
@click.option("--schemas", type=click.Path(path_type=Path, file_okay=False), envvar="PIPELINE_SCHEMAS",
              help="Folder of the official XSDs; the METS is validated against them before sealing.")
@click.option("--max-bag-size", type=Size(), help="Split into several bags of at most this size (e.g. 50G).")
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
    if executor == "dask":
        quiet_cluster_logs()
    settings = Settings(pixel_limit=pixel_limit, compression=compression,
                        algorithms=tuple(algorithms) or ("sha256", "sha512"), workers=workers,
                        executor=executor, scheduler=scheduler, schemas_dir=schemas,
                        max_bag_size=max_bag_size or 0,
                        serialize=serialize or "")
    bar = ProgressBar(quiet or as_json)
    reports, worst = [], EXIT_OK
    for folder in collections_in(ingest, tuple(collections)):
        folder = folder.resolve()     # `.` names no collection
        name = shown(folder.name)
        stages: list[StageReport] = []
        started = time.monotonic()
        try:
            try:
                result = run_collection(folder, output, settings, until=until, progress=bar,
                                        on_stage=stages.append)
            finally:
                bar.close()  # end the bar's line before any message
        except PipelineError as exc:
            worst = max(worst, exc.exit_code)
            reports.append(collection_report(name, stages, started, error=exc))
            echo_error(exc, problems=not as_json)
            if isinstance(exc, (ClusterError, UsageError)):
                break  # the same for every collection: stop here
            continue
        reports.append(collection_report(name, stages, started, result=result))
        if not as_json:
            echo_human(name, result, stages)
    if as_json:
        echo_json({"command": "run", "ok": worst == EXIT_OK, "exit_code": worst, "collections": reports})
    return worst


def quiet_cluster_logs() -> None:
    """The cluster's own log lines would only repeat our one-line ClusterError as noise.  Dask's
    logging configuration, applied when distributed is imported, gives some of its loggers
    (distributed.client among them) levels of their own: each is raised, not only the parent."""
    try:
        import distributed  # noqa: F401 -- its logging configuration first, then ours over it
    except ImportError:
        pass                # the run says how to install it
    names = [n for n in logging.root.manager.loggerDict if n == "distributed" or n.startswith("distributed.")]
    for name in {"distributed", *names}:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def collection_report(name: str, stages: list[StageReport], started: float,
                      result: Optional[RunResult] = None, error: Optional[PipelineError] = None) -> dict:
    """One collection's part of the JSON run report."""
    problems = problems_of(error) if error is not None else result.package.all_problems
    out = {"collection": name, "ok": error is None,
           "seconds": round(time.monotonic() - started, 3),
           "items": stages[-1].items if stages else 0,
           "stages": [s.as_dict() for s in stages]}
    if error is not None:
        out["error"] = str(error)
    else:
        out.update(stages_run=result.stages_run, stages_missing=result.stages_missing,
                   published=[str(p) for p in result.published])
    out["problems"] = [p.as_dict() for p in problems]
    return out


def echo_human(name: str, result: RunResult, stages: list[StageReport]) -> None:
    echo_problems(result.package.all_problems, shown=WARNINGS_SHOWN)
    for s in stages:
        rate = f", {s.items / s.seconds:.1f} items/s" if s.seconds > 0 and s.items else ""
        click.echo(f"{name}: {s.stage}: {s.items} items in {s.seconds:.1f} s{rate}, "
                   f"{s.bytes_added / 1e6:.1f} MB written, {s.problems} problem(s)")
    if result.stages_missing:
        click.echo(f"{name}: not built yet, skipped: {', '.join(result.stages_missing)}")
    for p in result.published:
        click.echo(f"{name}: published {p}")
