"""`pipeline verify` -- not built yet (see its issue)."""
from __future__ import annotations

import click

from . import cli, fail, EXIT_INVALID


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def verify(args):
    """Not built yet."""
    fail("'pipeline verify' is not built yet", EXIT_INVALID)
