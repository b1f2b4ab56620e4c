"""Resampling: percentile-bootstrap intervals of the summary metrics (whole subjects resampled), ROC curves on a
fixed grid with their bands, and the weighted forms of the metrics that score many resamples at once.

A resample is a weight per sample (how often it was drawn); the weighted metrics equal those of the
resample's duplicated samples (tested against scikit-learn), from one sort of the scores.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from featx.evaluate.protocol.task import Task
from featx.evaluate.statistics.metrics import SUMMARY_KEYS, predicted_classes
from featx.results.bench import PairedBootstrap

BOOT_KEYS = SUMMARY_KEYS
BOOT_CHUNK = 100
ROC_GRID = np.linspace(0, 1, 101)


@dataclass(frozen=True)
class Resampling:
    """How uncertainty is resampled: ``n_boot`` bootstrap draws (0: none) from ``seed``."""

    n_boot: int = 1000
    seed: int = 0

    @classmethod
    def of(cls, settings) -> Resampling:
        """The resampling a run's settings ask for (``--bootstrap``, ``--seed``)."""
        return cls(settings.bootstrap, settings.seed)


def weighted_binary(W: np.ndarray, t: np.ndarray, score: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, list]:
    """BOOT_KEYS and ROC-on-grid of a binary problem for many resamples at once.

    A resample is a weight per sample (how often it was drawn), row ``b`` of ``W``; the
    metrics equal those of the resample's duplicated samples (AUC: Mann-Whitney with ties
    counted half, as ``rankdata`` averaging gives), from one sort of the scores.
    """
    tf, pf = t.astype(float), pred.astype(float)
    brier = (W @ (score - tf) ** 2) / W.sum(axis=1)
    tp, fn = W @ (tf * pf), W @ (tf * (1 - pf))
    fp, tn = W @ ((1 - tf) * pf), W @ ((1 - tf) * (1 - pf))
    m, n = tp + fn, tn + fp
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]  # blocks of tied scores, ascending
    Ws = W[:, order]
    P = np.add.reduceat(Ws * tf[order], starts, axis=1)
    N = np.add.reduceat(Ws * (1 - tf[order]), starts, axis=1)
    below = np.cumsum(N, axis=1) - N
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (P * (below + 0.5 * N)).sum(axis=1) / (m * n)
        sens, spec = tp / m, tn / n
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # both undefined: NaN, as a skipped resample
            bal = np.nanmean(np.stack([sens, spec]), axis=0)
        prec = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        acc = (tp + tn) / W.sum(axis=1)
        tps = np.cumsum(P[:, ::-1], axis=1) / m[:, None]  # thresholds descending: the ROC's points
        fps = np.cumsum(N[:, ::-1], axis=1) / n[:, None]
    curves = [
        np.interp(ROC_GRID, np.r_[0.0, f], np.r_[0.0, r]) for f, r, a, b in zip(fps, tps, m, n) if a > 0 and b > 0
    ]
    return np.stack([auc, acc, bal, sens, spec, prec, f1, brier], axis=1), curves


def resample_weights(groups, n_boot: int, seed: int = 0):
    """``(W, unit)``: the weights of ``n_boot`` resamples of whole units (``groups``; default each sample its own),
    ``BOOT_CHUNK`` rows at a time (row b: how often each sample was drawn), and ``subject``/``sample``."""
    groups = np.arange(groups) if isinstance(groups, int) else np.asarray(groups)
    _, unit_of = np.unique(groups, return_inverse=True)
    n_units = int(unit_of.max()) + 1 if len(unit_of) else 0
    rng = np.random.default_rng(seed)

    def chunks():
        for start in range(0, n_boot, BOOT_CHUNK):  # bounded memory
            draws = rng.integers(0, n_units, (min(BOOT_CHUNK, n_boot - start), n_units))
            yield np.stack([np.bincount(d, minlength=n_units) for d in draws]).astype(float)[:, unit_of]

    return chunks(), "subject" if n_units < len(groups) else "sample"


def weighted_auc(W: np.ndarray, y: np.ndarray, proba: np.ndarray, pos: int | None) -> np.ndarray:
    """The AUC of every resample (row of ``W``): of class ``pos``, or (``pos`` None) the macro one-vs-rest AUC,
    NaN where a resample lacks a class. With one row of ones: the AUC of the predictions themselves."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if pos is not None:
            return weighted_binary(W, y == pos, proba[:, pos], proba.argmax(1) == pos)[0][:, 0]
        pred = proba.argmax(1)
        return np.mean(
            [weighted_binary(W, y == c, proba[:, c], pred == c)[0][:, 0] for c in range(proba.shape[1])], axis=0
        )


def weighted_multiclass(W: np.ndarray, y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """BOOT_KEYS of a multi-class problem for many resamples at once (rows of weights ``W``).

    The same definitions as :func:`classification_metrics` (macro one-vs-rest AUC, NaN when a resample
    lacks a class; macro sensitivity, precision and F1 with 0 for an empty class; balanced accuracy over
    the classes present; no specificity; Brier summed over the classes), computed from weighted confusion
    counts; after BOOT_KEYS, the prevalence-weighted one-vs-rest AUC.
    """
    n_classes = proba.shape[1]
    pred = proba.argmax(1)
    Y = (y[:, None] == np.arange(n_classes)).astype(float)
    P = (pred[:, None] == np.arange(n_classes)).astype(float)
    tp, support, predicted = W @ (Y * P), W @ Y, W @ P
    with np.errstate(invalid="ignore", divide="ignore"):
        rec = np.where(support > 0, tp / support, 0.0)
        prec = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
        present = support > 0
        bal = (rec * present).sum(1) / present.sum(1)
        acc = tp.sum(1) / W.sum(1)
        per_class = np.stack(
            [weighted_binary(W, y == c, proba[:, c], pred == c)[0][:, 0] for c in range(n_classes)], axis=1
        )
        auc = per_class.mean(axis=1)  # NaN where a resample lacks a class
        weighted = (per_class * support).sum(1) / support.sum(1)
    nan = np.full(len(W), np.nan)
    brier = (W @ ((proba - Y) ** 2).sum(axis=1)) / W.sum(1)
    return np.stack([auc, acc, bal, rec.mean(1), nan, prec.mean(1), f1.mean(1), brier, weighted], axis=1)


def _roc_on_grid(t: np.ndarray, score: np.ndarray) -> np.ndarray:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(t, score)
    return np.interp(ROC_GRID, fpr, tpr)


def roc_on_grid(y, proba, classes, positive: str | None = None) -> dict | None:
    """The ROC curve (TPR on a 101-point FPR grid) of a binary problem; None otherwise."""
    if len(classes) != 2:
        return None
    pos = classes.index(positive) if positive is not None else 1
    t = np.asarray(y) == pos
    if t.all() or not t.any():
        return None
    return {"fpr": ROC_GRID.tolist(), "tpr": _roc_on_grid(t, np.asarray(proba)[:, pos]).tolist()}


def class_rocs(y, proba, classes) -> dict:
    """Each class's one-vs-rest ROC curve (TPR on the FPR grid), for the classes present with others."""
    y = np.asarray(y)
    return {
        c: {"fpr": ROC_GRID.tolist(), "tpr": _roc_on_grid(y == i, np.asarray(proba)[:, i]).tolist()}
        for i, c in enumerate(classes)
        if 0 < (y == i).sum() < len(y)
    }


def bootstrap(task: Task, proba, boot: Resampling, level: float = 0.95, threshold=None) -> dict:
    """Percentile bootstrap CIs of the summary metrics, resampling whole subjects.

    Resampling subjects (not images) keeps a patient's slices together, as they were
    in the folds; a resample that lost a class is skipped for the metrics it leaves
    undefined. Binary problems also get a pointwise ROC band on a 101-point FPR grid.

    Parameters
    ----------
    task : Task
        The rows' classes and units (``task.groups``: the subject of each row; None: each row its own).
    proba : ndarray, shape (n, C)
    boot : Resampling
        Number of resamples and their seed.
    threshold : float or array, optional
        The threshold (binary) each prediction was decided by, as in :func:`classification_metrics`.

    Returns
    -------
    dict
        ``ci``: metric -> [lo, hi]; ``n_boot``; ``unit`` ('subject' or 'sample'); binary: ``roc``
        with ``fpr``, ``tpr``, ``lo``, ``hi``.
    """
    y, classes, positive, groups = task.y, list(task.classes), task.positive, task.groups
    n_boot, seed = boot.n_boot, boot.seed
    proba = np.asarray(proba, float)
    binary, pos = len(classes) == 2, task.pos
    stats, curves = [], []
    pred = predicted_classes(proba, classes, positive, threshold) == pos
    t, score = (y == pos, proba[:, pos]) if binary else (None, None)
    weights, unit = resample_weights(len(y) if groups is None else groups, n_boot, seed)
    for W in weights:
        if binary:
            chunk, c = weighted_binary(W, t, score, pred)
            curves.extend(c)
        else:
            chunk = weighted_multiclass(W, y, proba)
        stats.extend(chunk)
    stats = np.array(stats)
    lo_q, hi_q = 50 * (1 - level), 50 * (1 + level)
    out = {"n_boot": n_boot, "unit": unit, "level": level, "ci": {}}
    with np.errstate(invalid="ignore"):
        for i, key in enumerate(BOOT_KEYS if binary else (*BOOT_KEYS, "weighted_auc")):
            col = stats[:, i][~np.isnan(stats[:, i])]
            if len(col):
                out["ci"][key] = [float(np.percentile(col, lo_q)), float(np.percentile(col, hi_q))]
    if binary and curves:
        t = y == pos
        c = np.array(curves)
        out["roc"] = {
            "fpr": ROC_GRID.tolist(),
            "tpr": _roc_on_grid(t, proba[:, pos]).tolist(),
            "lo": np.percentile(c, lo_q, axis=0).tolist(),
            "hi": np.percentile(c, hi_q, axis=0).tolist(),
        }
    return out


def resample_rows(task: Task, boot: Resampling):
    """``(index arrays, unit)``: the rows of every resample of ``task``'s units (a unit drawn twice: its rows twice),
    for metrics that take rows rather than weights; the same draws as :func:`resample_weights`."""
    chunks, unit = resample_weights(len(task.y) if task.groups is None else task.groups, boot.n_boot, boot.seed)
    rows = np.arange(len(task.y))
    return (np.repeat(rows, w.astype(int)) for W in chunks for w in W), unit


def percentile_cis(stats, keys, level: float = 0.95, needed: int = 1) -> dict:
    """``key -> [lo, hi]``: the percentile interval of each column of ``stats`` (a row per resample, NaN where a
    resample could not give the metric), for the columns with at least ``needed`` finite values."""
    stats = np.asarray(stats, float).reshape(-1, len(keys))
    lo_q, hi_q = 50 * (1 - level), 50 * (1 + level)
    out = {}
    for i, key in enumerate(keys):
        col = stats[:, i][np.isfinite(stats[:, i])]
        if len(col) >= max(needed, 1):
            out[key] = [float(np.percentile(col, lo_q)), float(np.percentile(col, hi_q))]
    return out


def paired_result(diffs, full: float, unit: str, n_boot: int, metric: str = "auc", why: str = ""):
    """``(PairedBootstrap, "")`` from the finite differences a - b of a paired bootstrap (``full``: on the predictions
    themselves): the 95% percentile interval and the two-sided p, twice the smaller tail around 0; ``(None, why)``
    when fewer than max(20, n_boot / 10) resamples gave one (``why`` names what they lacked)."""
    d = np.asarray(diffs, float)
    d = d[np.isfinite(d)]
    if len(d) < max(20, n_boot // 10):
        return None, f"too few resamples {why or 'to compare'} ({len(d)} of {n_boot})"
    p = min(1.0, 2 * min((np.sum(d <= 0) + 1) / (len(d) + 1), (np.sum(d >= 0) + 1) / (len(d) + 1)))
    lo, hi = np.percentile(d, [2.5, 97.5])
    return PairedBootstrap(float(full), float(lo), float(hi), float(p), int(len(d)), unit, metric=metric), ""
