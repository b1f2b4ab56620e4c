"""What producers of store rows share: the failure budget (``--max-failures``), run counts, why a sample failed.

A sample that fails is recorded with its reason and the run goes on, up to a limit the user sets;
above it the run stops with :class:`~featx.errors.ExtractionAborted`, keeping every row written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from featx.errors import ConfigError, ExtractionAborted, FeatxError

DEFAULT_MAX_FAILURES = "10%"


def check_max_failures(value) -> str:
    """A ``max_failures`` setting (``N`` or ``P%``) as text; ConfigError otherwise."""
    text = str(value).strip()
    try:
        number = float(text[:-1]) if text.endswith("%") else int(text)
    except ValueError:
        raise ConfigError(f"expected a count like 5 or a share like 2%, got {value!r}.", "max_failures") from None
    if number < 0:
        raise ConfigError(f"must not be negative, got {value!r}.", "max_failures")
    return text


def max_failures(value: str | int | None, total: int) -> int:
    """``N`` or ``P%`` (of ``total``) -> the largest tolerated number of failures."""
    text = check_max_failures(DEFAULT_MAX_FAILURES if value is None else value)
    return int(float(text[:-1]) / 100.0 * total) if text.endswith("%") else int(text)


@dataclass
class RunStats:
    """Counts a producer keeps while it runs."""

    done: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (sample id, what to know) of computed rows
    compute_s: float = 0.0  # time in the model
    wait_s: float = 0.0  # time the model waited for decoded images


def aborted(stats: RunStats, limit: int, where: str) -> ExtractionAborted:
    """The error that stops a run with too many failed samples."""
    return ExtractionAborted(
        f"{len(stats.failures)} sample(s) failed, more than --max-failures allows ({limit}); first: "
        f"{stats.failures[0][1]}. The {stats.done} rows computed are kept in {where}: "
        "fix or drop the bad files and rerun to resume."
    )


def failure_reason(exc: BaseException, sample) -> str:
    """Why a sample failed: a featx error says it all; anything else is named with the file."""
    return str(exc) if isinstance(exc, FeatxError) else f"{sample.path}: {type(exc).__name__}: {exc}"
