"""The `pipeline` command: arguments, progress, report rendering, exit codes -- nothing else.

One module per subcommand (run, validate, convert, verify, fixity) so that each stays small;
this module holds the group, the shared options and the renderers.  Only this package catches
exceptions, and only `PipelineError`: anything else is a bug and keeps its traceback.

Exit codes: 0 success, 1 rejected or failed, 2 usage, 3 fixity problems found, 130 interrupted.
"""
from __future__ import annotations

import importlib
import json
import signal
import sys
import time
from collections import Counter
from typing import Any, Iterable, Optional

import click

from .. import __version__
from ..errors import PipelineError, Problem

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_FIXITY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


SUBCOMMAND_MODULES = ("run", "validate", "convert", "verify", "fixity")


class LazyGroup(click.Group):
    """Imports a subcommand's module (which registers it on `cli`) only when that subcommand is
    used, so that e.g. `pipeline fixity` run by cron does not pay for numpy and the imaging stack."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMAND_MODULES))

    def get_command(self, ctx, name):
        if name in SUBCOMMAND_MODULES and name not in self.commands:
            importlib.import_module(f"{__name__}.{name}")
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="pipeline")
def cli() -> None:
    """Turn folders of photographs and captions into sealed preservation packages.

    \b
    Exit codes: 0 success, 1 rejected or failed, 2 usage, 3 fixity problems found.
    """


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """Keep what the parser made of --json in the shared context object (see error_json)."""
    if isinstance(ctx.obj, dict):
        ctx.obj["json"] = value
    return value


json_option = click.option("--json", "as_json", is_flag=True, callback=_remember_json,
                           help="Write a machine-readable JSON report to stdout.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress display.")


class ProgressBar:
    """A one-line progress bar with throughput and ETA on stderr, only on a terminal."""

    def __init__(self, quiet: bool = False, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = not quiet and self.stream.isatty()
        self.stage = None
        self.started = 0.0
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if stage != self.stage:
            if self.stage is not None:
                self.stream.write("\n")
            self.stage, self.started, self.last = stage, now, 0.0
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        width = 30
        filled = int(width * done / total) if total else width
        eta = (total - done) / rate if rate > 0 else 0
        eta_s = f"ETA {int(eta // 60)}:{int(eta % 60):02d}" if done < total else f"{elapsed:.1f}s"
        self.stream.write(f"\r{stage:<9} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{done}/{total} {rate:.1f}/s {eta_s}  ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.stage is not None:
            self.stream.write("\n")
            self.stream.flush()
            self.stage = None


WARNINGS_SHOWN = 10     # of each code, in the human report of a collection; --json lists all


def echo_problems(problems: Iterable[Problem], err: bool = False, shown: Optional[int] = None) -> None:
    """One line per problem.  With `shown`, warnings of one code after the first `shown` are
    counted, not printed (a warning on every one of 100,000 photographs would bury the rest):
    one line says how many more there are.  Errors are always listed, every one."""
    seen: Counter[str] = Counter()
    for p in problems:
        if not p.is_error and shown is not None:
            seen[p.code] += 1
            if seen[p.code] > shown:
                continue
        prefix = "warning: " if not p.is_error else ""
        click.echo(f"{prefix}{p.render()}", err=err)
    for code, count in seen.items():
        if count > shown:
            click.echo(f"warning: {count - shown} more: not shown, like the {shown} above "
                       f"(--json lists every one) [{code}]", err=err)


def echo_error(exc: PipelineError, problems: bool = True) -> None:
    """An error on stderr: its problems (with `problems`), then one line saying it.  A usage error's
    message says it all: that one line."""
    if problems and exc.exit_code != EXIT_USAGE:
        echo_problems(exc.problems, err=True, shown=WARNINGS_SHOWN)
    click.echo(f"pipeline: error: {exc}", err=True)


def echo_json(data: Any) -> None:
    """Write the command's one JSON document on stdout (and mark it written: see error_json)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.obj, dict):
        ctx.obj["reported"] = True
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False))


# Each command's --json report when an error stopped it before it wrote one: its outcome false,
# its list of results empty (the rest of the report is the same for every command: see error_json).
NOTHING_DONE = {"run": {"ok": False, "collections": []}, "validate": {"valid": False, "collections": []},
                "convert": {"source": None, "proven": False, "masters": []},
                "verify": {"ok": False, "bags": []}, "fixity": {"ok": False, "bags": []},
                "fixity history": {"ok": False, "audits": [], "retirements": []}, "fixity retire": {"ok": False}}
FIXITY_MODES = {"--history": "fixity history", "--retire": "fixity retire"}   # fixity's reports of their own


def message_of(exc: PipelineError | click.ClickException) -> str:
    return exc.format_message() if isinstance(exc, click.ClickException) else str(exc)


def problems_of(exc: PipelineError | click.ClickException) -> tuple[Problem, ...]:
    """The problems an error carries; for one that carries none, one problem saying its message,
    coded `usage.option` for a usage error, `command.interrupted` for a Ctrl-C, else `command.failed`."""
    code = {EXIT_USAGE: "usage.option", EXIT_INTERRUPTED: "command.interrupted"}.get(exc.exit_code, "command.failed")
    return tuple(getattr(exc, "problems", ())) or (Problem(code, "", message_of(exc)),)


def _options_part(args: list[str]) -> list[str]:
    """The command line before a `--` (after it, every word is an argument)."""
    return args[:args.index("--")] if "--" in args else args


def command_of(args: list[str]) -> Optional[str]:
    """The subcommand named on the command line: the first word that is no option (the group
    has only flags), None when there is none or it is unknown."""
    words = _options_part(args)
    command = next((w for w in words if not w.startswith("-")), None)
    if command == "fixity":
        command = next((FIXITY_MODES[w.split("=")[0]] for w in words if w.split("=")[0] in FIXITY_MODES), command)
    return command if command in NOTHING_DONE else None


def error_json(args: list[str], state: dict, exc: PipelineError | click.ClickException) -> None:
    """With --json anywhere on the command line (before a `--`), an error that ends the command is
    also a JSON report on stdout, shaped as the command's other reports, so that a script can always
    parse stdout -- unless the command wrote its report already (`state`, see echo_json): one
    document, never two.  Whether --json was given is what the parser made of it (`state`) once
    it got that far; before, the word on the command line (before a `--`) decides."""
    if not state.get("json", "--json" in _options_part(args)) or state.get("reported"):
        return
    command = command_of(args)
    echo_json({"command": command, **NOTHING_DONE.get(command, {"ok": False}), "exit_code": exc.exit_code,
               "error": message_of(exc), "problems": [p.as_dict() for p in problems_of(exc)]})


# What an interruption leaves, said on its error line, for the commands whose rerun resumes
RERUN = {"run": "a rerun of pipeline run reuses the work already in staging"}


class Interrupted(PipelineError):
    """A Ctrl-C (SIGINT) that ended the command, as main reports it."""

    exit_code = EXIT_INTERRUPTED


def main(argv: Optional[list[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    state: dict = {}    # the commands' shared context object: echo_json marks it "reported"
    try:
        rv = cli.main(args=args, prog_name="pipeline", standalone_mode=False, obj=state)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:  # an Abort may say what the interruption left
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # a second Ctrl-C cannot cut this line short
        why = exc.args[0] if exc.args else RERUN.get(command_of(args), "")
        interrupted = Interrupted(f"interrupted ({why})" if why else "interrupted")
        click.echo(f"pipeline: {interrupted}", err=True)
        error_json(args, state, interrupted)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:     # click's own usage errors (unknown option, bad value...) among them
        exc.show()
        error_json(args, state, exc)
        sys.exit(exc.exit_code)
    except PipelineError as exc:
        error_json(args, state, exc)
        echo_error(exc)
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)


# Subcommands register themselves on `cli` when imported: see LazyGroup.
