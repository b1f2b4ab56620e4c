"""Head registry: name -> unfitted scikit-learn estimator (+ default tuning grid).

Heads follow the scikit-learn contract (no work in ``__init__``); each factory
returns a fresh ``Pipeline`` with scaling where the model needs it.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

from featx.errors import FitError


@dataclass(frozen=True)
class HeadSpec:
    """A registered head.

    Attributes
    ----------
    name : str
    description : str
    factory : Callable[[int], estimator]
        ``factory(seed)`` returns a new unfitted estimator.
    grid : dict
        Default tuning grid in ``Pipeline`` parameter names.
    """

    name: str
    description: str
    factory: Callable
    grid: dict = field(default_factory=dict)


_HEADS: dict[str, HeadSpec] = {}


def register_head(name: str, description: str, grid: dict | None = None):
    """Decorator registering ``factory(seed) -> estimator`` under ``name``."""

    def deco(factory):
        if name in _HEADS:
            raise ValueError(f"head {name!r} registered twice")
        _HEADS[name] = HeadSpec(name, description, factory, grid or {})
        return factory

    return deco


def get_head(name: str) -> HeadSpec:
    """The head registered as ``name``; a FitError lists the known ones."""
    if name not in _HEADS:
        close = difflib.get_close_matches(name, list(_HEADS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise FitError(f"Unknown head {name!r}.{hint} Known heads: {', '.join(sorted(_HEADS))}.")
    return _HEADS[name]


def list_heads() -> list[HeadSpec]:
    """All registered heads, sorted by name."""
    return [_HEADS[k] for k in sorted(_HEADS)]


@register_head(
    "logreg",
    "standardise, then L2 logistic regression (C=1e-2: strong shrinkage suits 500-4000-d embeddings)",
    grid={"clf__C": [1e-4, 1e-3, 1e-2, 1e-1, 1.0]},
)
def _logreg(seed: int = 0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [("scale", StandardScaler()), ("clf", LogisticRegression(C=1e-2, max_iter=5000, random_state=seed))]
    )
