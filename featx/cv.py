"""Splitters and cross-validation with out-of-fold predictions.

Folds are a first-class object (saved with every result) so that every feature
set and head is scored on exactly the same split. Whenever subjects are known the
split is grouped by subject (``StratifiedGroupKFold``): no patient is ever on both
sides, and :func:`make_folds` checks it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone

from featx.errors import FitError


@dataclass
class Folds:
    """K test folds over ``n`` samples (each sample in exactly one test fold).

    Attributes
    ----------
    fold_of : ndarray of int, shape (n,)
        Test fold index of each sample.
    k : int
    seed : int
    splitter : str
        Name of the scikit-learn splitter used.
    grouped : bool
        True when split by subject.
    """

    fold_of: np.ndarray
    k: int
    seed: int
    splitter: str
    grouped: bool

    def split(self):
        """Yield ``(train_idx, test_idx)`` per fold."""
        for f in range(self.k):
            yield np.flatnonzero(self.fold_of != f), np.flatnonzero(self.fold_of == f)

    def to_dict(self, ids) -> dict:
        """JSON-able, keyed by sample id."""
        return {"k": self.k, "seed": self.seed, "splitter": self.splitter, "grouped": self.grouped,
                "fold_of": {str(i): int(f) for i, f in zip(ids, self.fold_of)}}


def make_folds(labels, subjects=None, k: int = 10, seed: int = 0) -> Folds:
    """Stratified K folds, grouped by subject when ``subjects`` is given.

    Parameters
    ----------
    labels : array-like of str
    subjects : array-like of str, optional
        Group of each sample; empty strings count as missing (then every sample is its own group).
    k : int
        Number of folds (>= 2).
    seed : int
        Shuffling seed, recorded in the result.

    Raises
    ------
    FitError
        Fewer than 2 classes, a class (or its subjects) smaller than ``k``, or a
        split that would put a subject on both sides.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    labels = np.asarray(labels).astype(str)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise FitError(
            f"Only one class ({str(classes[0]) if len(classes) else 'none'!r}) among the labels: a classifier needs at "
            "least two. Check the manifest's 'label' column."
        )
    if k < 2:
        raise FitError(f"--cv must be at least 2, got {k}.")
    grouped = subjects is not None and all(str(s) != "" for s in subjects)
    if grouped:
        subjects = np.asarray(subjects).astype(str)
        per_class = {c: len(np.unique(subjects[labels == c])) for c in classes}
        unit = "subjects"
    else:
        per_class = dict(zip(classes, counts))
        unit = "samples"
    small = {str(c): int(n) for c, n in per_class.items() if n < k}
    if small:
        raise FitError(
            f"{k}-fold CV needs at least {k} {unit} per class; too few for {small}. Use a smaller --cv "
            "or add data."
        )
    fold_of = np.full(len(labels), -1, dtype=np.int64)
    if grouped:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels, groups=subjects)
    else:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels)
    for f, (_, test) in enumerate(splits):
        fold_of[test] = f
    folds = Folds(fold_of, k, seed, type(splitter).__name__, grouped)
    if grouped:
        check_no_subject_leak(folds, subjects)
    return folds


def check_no_subject_leak(folds: Folds, subjects) -> None:
    """Raise FitError if any subject has samples in two different folds."""
    seen: dict[str, int] = {}
    for s, f in zip(map(str, subjects), folds.fold_of):
        if seen.setdefault(s, int(f)) != f:
            raise FitError(f"Subject {s!r} would be in folds {seen[s]} and {f}: refusing a split that leaks patients.")


@dataclass
class CVResult:
    """Out-of-fold predictions of one head on one feature set.

    Attributes
    ----------
    classes : list of str
    y : ndarray of int, shape (n,)
        Class index of each sample.
    proba : ndarray, shape (n, C)
        Out-of-fold class probabilities.
    folds : Folds
    fold_seconds : list of float
        Fit + predict wall time per fold.
    """

    classes: list
    y: np.ndarray
    proba: np.ndarray
    folds: Folds
    fold_seconds: list = field(default_factory=list)


def encode_labels(labels, classes=None) -> tuple[list, np.ndarray]:
    """Labels -> (sorted classes, integer codes)."""
    labels = np.asarray(labels).astype(str)
    classes = sorted(set(labels)) if classes is None else list(classes)
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[v] for v in labels], dtype=np.int64)


def cross_validate(estimator, X: np.ndarray, labels, folds: Folds, on_fold=None) -> CVResult:
    """Fit a clone of ``estimator`` per fold and collect out-of-fold probabilities.

    ``on_fold()``, when given, is called after each fold (progress reporting).
    """
    classes, y = encode_labels(labels)
    proba = np.full((len(y), len(classes)), np.nan)
    seconds = []
    for train, test in folds.split():
        t = time.perf_counter()
        model = clone(estimator).fit(X[train], y[train])
        p = model.predict_proba(X[test])
        proba[np.ix_(test, model.classes_)] = p
        seconds.append(time.perf_counter() - t)
        if on_fold is not None:
            on_fold()
    proba = np.nan_to_num(proba, nan=0.0)  # a class absent from a training fold gets probability 0
    return CVResult(classes, y, proba, folds, seconds)
