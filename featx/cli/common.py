"""What every featx command shares: consoles, one-line logging, options built from the config fields, the
settings resolution (command line > featx.toml > defaults), and errors -> exit codes.

Exit codes: 0 done; 1 the settings are valid but the data, files or environment do not allow the run;
2 a usage error (an unknown option, a value outside its choices, a missing or contradictory setting,
a bad featx.toml); 130 interrupted.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from featx.cli import interrupt
from featx.config import ARGUMENT, DEFAULT, field_of, load_project, settings_of
from featx.errors import ConfigError, FeatxError

# never hard-wrap, so output stays grep-able when piped; no markup on stdout: names and paths print as they are
out_console = Console(soft_wrap=True, markup=False, highlight=False)
err_console = Console(stderr=True, soft_wrap=True)

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
#: the featx.toml sections, one per command that has a config
SECTIONS = ("extract", "radiomics", "fit", "bench", "finetune")
COMMAND_LINE = "command line"


class _LineFormatter(logging.Formatter):
    """``warning: message``, one line per record, as the errors are printed."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler()  # stderr
    handler.setFormatter(_LineFormatter())
    root = logging.getLogger("featx")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


# ----------------------------------------------------------------------------------------- options
def opt(config_cls, name: str, *decls: str, **kw) -> Any:
    """A typer option for the config field ``name``: its default, help and (``--help``) choices come from the field.

    ``decls`` default to ``--name-with-dashes``; a choice is validated as the option is parsed, with the
    did-you-mean message, and is a usage error (exit 2) naming the flag.
    """
    f = field_of(config_cls, name)
    choice = f.metadata.get("choice")
    decls = decls or (f"--{name.replace('_', '-')}",)
    if f.type in ("bool", bool) and len(decls) == 1 and "/" not in decls[0]:
        decls = (f"{decls[0]}/--no-{decls[0][2:]}",)
    if choice is not None:
        kw.setdefault("metavar", choice.metavar)
        kw.setdefault("parser", _parser(choice, f.type))
    default = None if isinstance(f.default, tuple) else f.default
    return typer.Option(default, *decls, help=f.metadata.get("help", ""), **kw)


def choice_option(choice, *decls: str, **kw) -> Any:
    """A typer option (``Annotated`` form) whose value must be one of ``choice``, shown in ``--help``."""
    return typer.Option(*decls, metavar=choice.metavar, parser=_parser(choice, "str"), **kw)


def _parser(choice, type_name):
    many = str(type_name).startswith("tuple")

    def parse(value: str):
        try:
            if many:
                return ",".join(choice.check(v.strip()) for v in str(value).split(",") if v.strip())
            return choice.check(value)
        except ConfigError as exc:
            raise typer.BadParameter(exc.message) from None

    return parse


ConfigOption = typer.Option(
    None,
    "--config",
    help="Project config file with defaults per command (default: ./featx.toml when present).",
    exists=False,
    dir_okay=False,
)


def settings(ctx: typer.Context, config_cls, config: Path | None):
    """The command's config: the options given on the command line, then ``featx.toml``'s section (or
    ``--config``'s), then the defaults. An option left at its default counts as not given."""
    project = load_project(config, SECTIONS)
    names = {f.name for f in settings_of(config_cls)}
    given = {k: v for k, v in ctx.params.items() if k in names and _given(ctx, k)}
    return config_cls.resolve((COMMAND_LINE, given), project.layer(config_cls.section))


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


def flag_of(ctx: typer.Context | None, field: str) -> str:
    """The command-line flag of a config field (``--batch-size``), as the command declares it."""
    if ctx is not None:
        for p in ctx.command.params:
            if p.name == field and getattr(p, "opts", None):
                return max(p.opts, key=len) if not p.opts[0].startswith("--") else p.opts[0]
    return f"--{field.replace('_', '-')}"


def _usage_line(exc: ConfigError, ctx: typer.Context | None) -> str:
    """A ConfigError in the command line's terms: the flag, or the file, section and key it came from."""
    if exc.field is None:
        return exc.message
    if exc.source not in (None, COMMAND_LINE, DEFAULT, ARGUMENT):  # a featx.toml section
        return f"{exc.source} {exc.field}: {exc.message}"
    return f"{flag_of(ctx, exc.field)}: {exc.message}"


# ----------------------------------------------------------------------------------------- errors
def handle_errors(fn):
    """Usage errors -> one line and exit 2; domain errors -> one red line and exit 1; Ctrl-C -> exit 130;
    anything else -> one line naming it a featx bug (FEATX_DEBUG=1 shows the traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = kwargs.get("ctx")
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            err_console.print(f"[bold red]error:[/] {escape(_usage_line(exc, ctx))}", highlight=False, soft_wrap=True)
            if ctx is not None:
                err_console.print(f"Try '{ctx.command_path} --help' for help.", highlight=False)
            raise typer.Exit(EXIT_USAGE) from None
        except FeatxError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            return _interrupted()
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if interrupt.State.seen:  # Ctrl-C, surfacing as another exception (an import interrupted mid-way)
                return _interrupted()
            if os.environ.get("FEATX_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}. This is a featx bug; rerun with "
                "FEATX_DEBUG=1 for the traceback and report it.",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper


def _interrupted():
    interrupt.State.reported = True
    err_console.print(f"[yellow]interrupted:[/]{escape(interrupt.MESSAGE.removeprefix('interrupted:'))}")
    raise typer.Exit(EXIT_INTERRUPTED) from None


def register(app: typer.Typer, *commands, **named) -> None:
    """Register every command the one way: its function (named after it, or ``named``), errors handled."""
    for fn in commands:
        app.command(fn.__name__.replace("_", "-"))(handle_errors(fn))
    for name, fn in named.items():
        app.command(name)(handle_errors(fn))


def print_problems(items: list[tuple[str, str]], what: str, column: str, n: int = 20) -> None:
    """Per-sample failures or notes, the first ``n`` of them."""
    for sid, why in items[:n]:
        out_console.print(f"  {what} {sid}: {why}", highlight=False)
    if len(items) > n:
        where = f" (all are in the store's {column})" if column else ""
        out_console.print(f"  ... and {len(items) - n} more{where}")
