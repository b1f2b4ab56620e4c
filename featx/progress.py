"""One progress-bar helper (rich) for every loop a user waits for; a no-op when disabled."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class _Bar:
    def __init__(self, progress=None, task=None):
        self._progress, self._task = progress, task

    def update(self, advance: int = 1, rate: float | None = None) -> None:
        if self._progress is not None:
            fields = {"rate": f"{rate:,.1f}/s"} if rate is not None else {}
            self._progress.update(self._task, advance=advance, **fields)


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[_Bar]:
    """A rich progress bar (count, rate, elapsed, ETA) on stderr, or a silent stand-in."""
    if not enabled:
        yield _Bar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=total, rate="")
        yield _Bar(progress, task)


@contextmanager
def spinner(description: str, enabled: bool = True) -> Iterator[None]:
    """A rich spinner with elapsed time for a step of unknown length (e.g. a one-off export)."""
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=Console(stderr=True)
    ) as progress:
        progress.add_task(description, total=None)
        yield
