"""Cross-validation with out-of-fold predictions, and nested tuning that never sees the outer test fold."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import clone

from featx.errors import FitError
from featx.evaluate.checkpoint import FoldCache
from featx.evaluate.folds import Folds


@dataclass
class CVResult:
    """Out-of-fold predictions of one head on one feature set.

    Attributes
    ----------
    classes : list of str
    y : ndarray of int, shape (n,)
        Class index of each sample.
    proba : ndarray, shape (repeats, n, C)
        Out-of-fold class probabilities; NaN where a sample was not tested in that repeat.
    folds : Folds
    fold_seconds : list of float
        Fit + predict wall time per (repeat, fold).
    best_params : list of dict, optional
        With tuning: the inner loop's choice per (repeat, fold).
    """

    classes: list
    y: np.ndarray
    proba: np.ndarray
    folds: Folds
    fold_seconds: list = field(default_factory=list)
    best_params: list | None = None

    @property
    def tested(self) -> np.ndarray:
        """Samples tested at least once (all of them in CV; the test side of a fixed split)."""
        return ~np.isnan(self.proba[:, :, 0]).all(axis=0)

    def mean_proba(self) -> np.ndarray:
        """Each sample's out-of-fold probability averaged over the repeats that tested it (NaN rows if none)."""
        out = np.full(self.proba.shape[1:], np.nan)
        out[self.tested] = np.nanmean(self.proba[:, self.tested], axis=0)
        return out


def encode_labels(labels, classes=None) -> tuple[list, np.ndarray]:
    """Labels -> (sorted classes, integer codes)."""
    labels = np.asarray(labels).astype(str)
    classes = sorted(set(labels)) if classes is None else list(classes)
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[v] for v in labels], dtype=np.int64)


def tuner(estimator, grid: dict, y, groups, seed: int, inner_k: int = 5):
    """``GridSearchCV`` over ``grid`` with an inner stratified (grouped) K-fold, scored by (macro OvR) AUC."""
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold

    inner = (
        StratifiedGroupKFold(inner_k, shuffle=True, random_state=seed)
        if groups is not None
        else StratifiedKFold(inner_k, shuffle=True, random_state=seed)
    )
    scoring = "roc_auc" if len(np.unique(y)) == 2 else "roc_auc_ovr"
    return GridSearchCV(estimator, grid, scoring=scoring, cv=inner, refit=True, n_jobs=1, error_score="raise")


def fit_one(estimator, X, y, groups=None, grid: dict | None = None, seed: int = 0, inner_k: int = 5):
    """Fit a clone of ``estimator`` on (X, y), tuned by an inner CV over ``grid`` when given.

    Returns ``(model, best_params or None)``; the tuner never sees anything but (X, y).
    """
    if not grid:
        return clone(estimator).fit(X, y), None
    _, counts = np.unique(y if groups is None else _unit_labels(y, groups), return_counts=True)
    if counts.min() < inner_k:
        unit = "subjects" if groups is not None else "samples"
        raise FitError(
            f"--tune: the inner {inner_k}-fold CV needs {inner_k} {unit} per class in each training "
            f"set; one has only {int(counts.min())}. Use fewer outer folds or drop --tune."
        )
    search = tuner(estimator, grid, y, groups, seed, inner_k).fit(X, y, groups=groups)
    return search.best_estimator_, {k: _jsonable(v) for k, v in search.best_params_.items()}


def _unit_labels(y, groups):
    _, first = np.unique(groups, return_index=True)
    return np.asarray(y)[first]


def _jsonable(v):
    return v.item() if hasattr(v, "item") else (list(v) if isinstance(v, tuple) else v)


def proba_of(model, X, n_classes: int) -> np.ndarray:
    """``model.predict_proba(X)`` over all ``n_classes`` (a class absent from its training data gets 0)."""
    p = np.zeros((len(X), n_classes))
    if len(X):
        p[:, model.classes_] = model.predict_proba(X)
    return p


def cross_validate(
    estimator,
    X: np.ndarray,
    labels,
    folds: Folds,
    on_fold=None,
    classes=None,
    grid: dict | None = None,
    groups=None,
    inner_k: int = 5,
    keep: Path | None = None,
) -> CVResult:
    """Fit a clone of ``estimator`` per (repeat, fold) and collect out-of-fold probabilities.

    With ``grid``, each outer training set is tuned by its own inner CV (nested CV,
    grouped by ``groups``); the outer test fold is never seen by the tuner.
    ``on_fold()``, when given, is called after each fold (progress reporting).
    ``keep``: a folder where finished folds are kept, so a rerun after a stop takes them from
    there (:mod:`featx.evaluate.checkpoint`).
    """
    classes, y = encode_labels(labels, classes)
    proba = np.full((folds.repeats, len(y), len(classes)), np.nan)
    seconds, chosen = [], []
    groups = None if groups is None else np.asarray(groups)
    cache = FoldCache(keep, X, y, folds.fold_of, estimator, grid, groups, inner_k, folds.seed)
    for r, f, train, test in folds.split():
        done = cache.get(r, f)
        if done is not None and done[0].shape == (len(test), len(classes)):
            proba[r, test], s, best = done
            seconds.append(s)
            chosen.append(best)
            if on_fold is not None:
                on_fold()
            continue
        t = time.perf_counter()
        model, best = fit_one(
            estimator,
            X[train],
            y[train],
            None if groups is None else groups[train],
            grid,
            seed=folds.seed + r,
            inner_k=inner_k,
        )
        proba[r, test] = proba_of(model, X[test], len(classes))
        seconds.append(time.perf_counter() - t)
        chosen.append(best)
        cache.put(r, f, proba[r, test], seconds[-1], best)
        if on_fold is not None:
            on_fold()
    cache.report(f"{type(estimator).__name__} cross-validation")
    return CVResult(classes, y, proba, folds, seconds, chosen if grid else None)
