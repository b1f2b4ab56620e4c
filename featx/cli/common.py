"""What every featx command shares: consoles, one-line logging, and errors -> exit codes."""
from __future__ import annotations

import functools
import logging
import os

import typer
from rich.console import Console

from featx.errors import FeatxError

out_console = Console(soft_wrap=True)  # never hard-wrap: output stays grep-able when piped
err_console = Console(stderr=True, soft_wrap=True)

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


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


def handle_errors(fn):
    """Domain errors -> one red line and exit 1; Ctrl-C -> exit 130; other errors -> one line too."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FeatxError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted:[/] everything written so far is kept; rerun the command to resume.")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if os.environ.get("FEATX_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {exc}. This is a featx bug; rerun with "
                "FEATX_DEBUG=1 for the traceback and report it.", highlight=False, soft_wrap=True,
            )
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper


