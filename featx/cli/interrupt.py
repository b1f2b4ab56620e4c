"""Whether this process was sent Ctrl-C, and whether it has said so: a Ctrl-C can surface as another exception
(an extension module interrupted while it initialises raises ImportError), or be ended by Typer without a word."""

from __future__ import annotations

import signal

MESSAGE = "interrupted: everything written so far is kept; rerun the command to resume."


class State:
    seen = False  # a SIGINT arrived
    reported = False  # the MESSAGE line was written


def _on_sigint(signum, frame) -> None:
    State.seen = True
    raise KeyboardInterrupt


def watch() -> None:
    """Record each Ctrl-C (then raise KeyboardInterrupt, as Python's own handler does)."""
    signal.signal(signal.SIGINT, _on_sigint)
