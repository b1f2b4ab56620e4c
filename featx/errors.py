"""Domain errors, and the helpers that write their messages. Only :mod:`featx.cli` turns them into exit codes.

Every message says what went wrong, which file or sample, and what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

MAX_LISTED = 10


class FeatxError(Exception):
    """Base class of every error a user can act on."""


class ConfigError(FeatxError):
    """A setting is missing, unknown, of the wrong type, outside its choices, or contradicts another.

    ``field`` names the setting (a config field, e.g. ``batch_size``) and ``source`` where its value came
    from (``argument``, ``command line``, a ``featx.toml`` path, ``default``), so the command line can say
    which flag or which file and key. ``message`` does not repeat the setting's name; ``str()`` puts it first.
    """

    def __init__(self, message: str, field: str | None = None, source: str | None = None):
        super().__init__(message)
        self.message, self.field, self.source = message, field, source

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ManifestError(FeatxError):
    """A manifest (CSV or folder) is missing, malformed or inconsistent."""


class ImageReadError(FeatxError):
    """An image file cannot be read or decoded."""


class BackboneError(FeatxError):
    """Unknown backbone, bad spec, or a model that cannot be built or exported."""


class UnknownBackboneError(ConfigError, BackboneError):
    """A backbone name no source knows: a usage error (exit 2), like any bad option value."""

    def __init__(self, message: str):
        super().__init__(message, "backbone")

    def __str__(self) -> str:
        return self.message


class WeightsError(BackboneError):
    """Weights are missing (offline), unreadable or do not fit the architecture."""


class RuntimeUnavailableError(BackboneError):
    """A requested inference runtime or provider is not usable here."""


class StoreError(FeatxError):
    """The feature store is missing, locked, or lacks what was asked for."""


class FitError(FeatxError):
    """Features or labels cannot be cross-validated as asked."""


class ExtractionAborted(FeatxError):
    """Too many samples failed; what was written is kept."""


def short_list(items: Sequence, n: int = MAX_LISTED) -> str:
    """The first ``n`` items joined by ``; ``, then how many more there are."""
    shown = "; ".join(str(i) for i in items[:n])
    return shown + (f"; ... and {len(items) - n} more" if len(items) > n else "")


def did_you_mean(value: str, options: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` (or ``'x' or 'y'``) for the options closest to ``value``; ``""`` when none is close."""
    close = [repr(c) for c in difflib.get_close_matches(str(value), [str(o) for o in options], n=3, cutoff=0.6)]
    if not close:
        return ""
    return f" Did you mean {close[0] if len(close) == 1 else ', '.join(close[:-1]) + ' or ' + close[-1]}?"
