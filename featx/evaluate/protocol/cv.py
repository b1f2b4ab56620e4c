"""Cross-validation with out-of-fold predictions, and nested tuning that never sees the outer test fold."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import clone, is_regressor
from threadpoolctl import threadpool_limits

from featx.errors import FitError
from featx.evaluate.heads.operating import Operated, inner_splitter
from featx.evaluate.heads.survival import SurvivalHead
from featx.evaluate.protocol.checkpoint import FoldCache
from featx.evaluate.protocol.folds import Folds
from featx.evaluate.protocol.parallel import run_tasks
from featx.evaluate.protocol.task import Task


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
    thresholds : ndarray, shape (repeats, n), optional
        The threshold each sample's fold chose on its training rows (``--threshold``); None: the most probable
        class everywhere.
    """

    classes: list
    y: np.ndarray
    proba: np.ndarray
    folds: Folds
    fold_seconds: list = field(default_factory=list)
    best_params: list | None = None
    thresholds: np.ndarray | None = None

    @property
    def tested(self) -> np.ndarray:
        """Samples tested at least once (all of them in CV; the test side of a fixed split)."""
        return ~np.isnan(self.proba[:, :, 0]).all(axis=0)

    def fold_thresholds(self) -> tuple | None:
        """The threshold of every (repeat, fold), in repeat-major order (None without thresholds)."""
        if self.thresholds is None:
            return None
        out = []
        for r, _f, _, test in self.folds.split():
            out.append(float(self.thresholds[r, test[0]]) if len(test) else None)
        return tuple(out)

    def mean_proba(self) -> np.ndarray:
        """Each sample's out-of-fold probability averaged over the repeats that tested it (NaN rows if none)."""
        return mean_over_repeats(self.proba)


def mean_over_repeats(proba: np.ndarray) -> np.ndarray:
    """(repeats, n, C) out-of-fold probabilities -> (n, C): each sample's mean over the repeats that tested it
    (NaN rows for a sample no repeat tested)."""
    out = np.full(proba.shape[1:], np.nan)
    tested = ~np.isnan(proba[:, :, 0]).all(axis=0)
    out[tested] = np.nanmean(proba[:, tested], axis=0)
    return out


def encode_labels(labels, classes=None) -> tuple[list, np.ndarray]:
    """Labels -> (sorted classes, integer codes)."""
    labels = np.asarray(labels).astype(str)
    classes = sorted(set(labels)) if classes is None else list(classes)
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[v] for v in labels], dtype=np.int64)


def tuner(estimator, grid: dict, y, groups, seed: int, inner_k: int = 5):
    """``GridSearchCV`` over ``grid`` with an inner stratified (grouped) K-fold, scored by (macro OvR) AUC."""
    from sklearn.model_selection import GridSearchCV

    if _unclassed(estimator):  # no classes to stratify by: plain (grouped) K-fold, by MAE or Harrell's C (score)
        inner = inner_splitter(inner_k, seed, groups is not None, stratified=False)
        scoring = "neg_mean_absolute_error" if is_regressor(estimator) else None
        return GridSearchCV(estimator, grid, scoring=scoring, cv=inner, refit=True, n_jobs=1, error_score="raise")
    inner = inner_splitter(inner_k, seed, groups is not None)
    scoring = "roc_auc" if len(np.unique(y)) == 2 else "roc_auc_ovr"
    return GridSearchCV(estimator, grid, scoring=scoring, cv=inner, refit=True, n_jobs=1, error_score="raise")


def fit_one(estimator, X, y, groups=None, grid: dict | None = None, seed: int = 0, inner_k: int = 5):
    """Fit a clone of ``estimator`` on (X, y), tuned by an inner CV over ``grid`` when given.

    Returns ``(model, best_params or None)``; the tuner never sees anything but (X, y).
    """
    if isinstance(estimator, Operated):  # tune the head, then calibrate it and choose its threshold around it
        model, best = fit_one(estimator.estimator, X, y, groups, grid, seed, inner_k)
        return clone(estimator).around(model, X, y, groups), best
    if not grid:
        model = clone(estimator)
        return (model.fit(X, y, groups=groups) if isinstance(model, SurvivalHead) else model.fit(X, y)), None
    if _unclassed(estimator):  # no classes: every unit counts
        counts = np.array([len(np.unique(groups)) if groups is not None else len(y)])
    else:
        _, counts = np.unique(y if groups is None else _unit_labels(y, groups), return_counts=True)
    if counts.min() < inner_k:
        unit = "subjects" if groups is not None else "samples"
        raise FitError(
            f"--tune: the inner {inner_k}-fold CV needs {inner_k} {unit} per class in each training "
            f"set; one has only {int(counts.min())}. Use fewer outer folds or drop --tune."
        )
    search = tuner(estimator, grid, y, groups, seed, inner_k).fit(X, y, groups=groups)
    return search.best_estimator_, {k: _jsonable(v) for k, v in search.best_params_.items()}


def _unclassed(estimator) -> bool:
    """A head with no classes to stratify an inner CV by: a regressor or a survival head."""
    return is_regressor(estimator) or isinstance(estimator, SurvivalHead)


def _unit_labels(y, groups):
    _, first = np.unique(groups, return_index=True)
    return np.asarray(y)[first]


def _jsonable(v):
    return v.item() if hasattr(v, "item") else (list(v) if isinstance(v, tuple) else v)


def proba_of(model, X, n_classes: int | None) -> np.ndarray:
    """``model.predict_proba(X)`` over all ``n_classes`` (a class absent from its training data gets 0); ``n_classes``
    None (a regression): ``model.predict(X)`` as one column."""
    if n_classes is None:
        if hasattr(model, "predict_outputs"):  # a survival head: risk, its cut-off, survival at its times
            return model.predict_outputs(X)
        return np.asarray(model.predict(X), float).reshape(-1, 1) if len(X) else np.zeros((0, 1))
    p = np.zeros((len(X), n_classes))
    if len(X):
        p[:, model.classes_] = model.predict_proba(X)
    return p


def timed_fit(estimator, X, y, groups, grid, seed: int, inner_k: int):
    """``(model fitted on all of X, seconds)``: a refit, as a task for a worker process."""
    t = time.perf_counter()
    with threadpool_limits(1):  # see fold_fit
        model = fit_one(estimator, X, y, groups, grid, seed=seed, inner_k=inner_k)[0]
    return model, time.perf_counter() - t


def fold_fit(estimator, X, y, groups, grid, seed: int, inner_k: int, train, test, n_classes: int | None):
    """One fold: fit on ``train`` (tuned by its own inner CV with ``grid``), predict ``test``.
    Returns ``(test probabilities, seconds, chosen parameters, threshold or None)``; a plain function, so worker
    processes run it.

    Every fit runs on one thread (BLAS and OpenMP: XGBoost), whatever ``--jobs``: a multi-threaded BLAS sums
    in another order (an MLP's CV AUC moved by 1e-4 between 1 and 2 threads), and the numbers must not
    depend on how many fits run at once. The cores go to fits side by side instead."""
    t = time.perf_counter()
    with threadpool_limits(1):
        model, best = fit_one(
            estimator, X[train], y[train], None if groups is None else groups[train], grid, seed=seed, inner_k=inner_k
        )
        proba = proba_of(model, X[test], n_classes)
    return proba, time.perf_counter() - t, best, threshold_of(model)


def threshold_of(model) -> float | None:
    """The threshold a fitted model applies to its positive class (None: the most probable class)."""
    return getattr(model, "threshold_", None)


class CVPlan:
    """A cross-validation split into its fold fits: the ones a stopped run already finished come from the
    fold cache, the others are ``calls`` (arguments of :func:`fold_fit`) for whoever runs them; ``accept``
    takes each result as it arrives (and keeps it in the cache), ``result`` assembles the CVResult."""

    def __init__(self, estimator, X, task: Task, grid, inner_k: int, keep, on_fold):
        self.classes, self.y, folds, groups = list(task.classes), task.y, task.folds, task.groups
        self.folds, self.grid, self.on_fold = folds, grid, on_fold
        self.proba = np.full((folds.repeats, len(self.y), task.width), np.nan)
        self.thresholds = np.full((folds.repeats, len(self.y)), np.nan)
        self.cache = FoldCache(keep, X, self.y, folds.fold_of, estimator, grid, groups, inner_k, folds.seed)
        self.order, self.done, self.pending, self.calls = [], {}, [], []
        for r, f, train, test in folds.split():
            self.order.append((r, f))
            hit = self.cache.get(r, f)
            if hit is not None and hit[0].shape == (len(test), task.width):
                self.proba[r, test] = hit[0]
                self.thresholds[r, test] = np.nan if hit[3] is None else hit[3]
                self.done[(r, f)] = hit[1:]
                self._tick()
                continue
            self.pending.append((r, f, test))
            self.calls.append((estimator, X, self.y, groups, grid, folds.seed + r, inner_k, train, test, task.n_proba))

    def _tick(self) -> None:
        if self.on_fold is not None:
            self.on_fold()

    def tasks(self) -> list[tuple]:
        """The fold fits still to do, as :func:`~featx.evaluate.protocol.parallel.run_tasks` tasks."""
        return [(fold_fit, call, functools.partial(self.accept, i)) for i, call in enumerate(self.calls)]

    def accept(self, i: int, out) -> None:
        """The result of ``calls[i]``."""
        r, f, test = self.pending[i]
        self.proba[r, test] = out[0]
        self.thresholds[r, test] = np.nan if out[3] is None else out[3]
        self.done[(r, f)] = out[1:]
        self.cache.put(r, f, out[0], out[1], out[2], out[3])
        self._tick()

    def result(self, what: str) -> CVResult:
        self.cache.report(what)
        seconds = [self.done[k][0] for k in self.order]
        chosen = [self.done[k][1] for k in self.order]
        thresholds = self.thresholds if any(self.done[k][2] is not None for k in self.order) else None
        return CVResult(
            self.classes, self.y, self.proba, self.folds, seconds, chosen if self.grid else None, thresholds
        )


def cross_validate(
    estimator,
    X: np.ndarray,
    task: Task,
    *,
    grid: dict | None = None,
    inner_k: int = 5,
    keep: Path | None = None,
    jobs: int = 1,
    backend: str | None = None,
    on_fold=None,
) -> CVResult:
    """Fit a clone of ``estimator`` per (repeat, fold) of ``task.folds`` and collect out-of-fold probabilities.

    With ``grid``, each outer training set is tuned by its own inner CV (nested CV, grouped by ``task.groups``);
    the outer test fold is never seen by the tuner. ``on_fold()``, when given, is called after each fold (progress
    reporting). ``keep``: a folder where finished folds are kept, so a rerun after a stop takes them from there
    (:mod:`featx.evaluate.protocol.checkpoint`). ``jobs``: folds fitted at once in worker processes
    (:mod:`featx.evaluate.protocol.parallel`; the same numbers as one at a time).
    """
    plan = CVPlan(estimator, X, task, grid, inner_k, keep, on_fold)
    run_tasks(plan.tasks(), jobs, backend)
    return plan.result(f"{type(estimator).__name__} cross-validation")
