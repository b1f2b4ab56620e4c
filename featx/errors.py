"""Domain errors. Only :mod:`featx.cli.app` turns them into exit codes.

Every message says what went wrong, which file or sample, and what to do.
"""
from __future__ import annotations


class FeatxError(Exception):
    """Base class of every error a user can act on."""


class ManifestError(FeatxError):
    """A manifest (CSV or folder) is missing, malformed or inconsistent."""


class ImageReadError(FeatxError):
    """An image file cannot be read or decoded."""


class BackboneError(FeatxError):
    """Unknown backbone, bad spec, or a model that cannot be built or exported."""


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
