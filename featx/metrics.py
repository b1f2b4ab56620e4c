"""Pure scorers: AUC with DeLong CI, accuracy, sensitivity/specificity, F1, confusion matrices.

Everything scikit-learn/scipy already computes is taken from them; DeLong's
variance (DeLong et al. 1988, fast form of Sun & Xu 2014) is written out here.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             precision_score, recall_score, roc_auc_score)


def delong_auc(y_true, score) -> tuple[float, float]:
    """AUC and its DeLong variance.

    Parameters
    ----------
    y_true : array-like of {0, 1}
    score : array-like of float
        Higher means more likely positive.

    Returns
    -------
    auc, variance : float
    """
    y_true = np.asarray(y_true).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    pos, neg = score[y_true], score[~y_true]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        raise ValueError("AUC needs both positive and negative samples")
    tz = rankdata(np.concatenate([pos, neg]))
    tx, ty = rankdata(pos), rankdata(neg)
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:m] - tx) / n  # structural components of the positives
    v01 = 1.0 - (tz[m:] - ty) / m  # ... and of the negatives
    var = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    return float(auc), float(var)


def auc_ci(y_true, score, level: float = 0.95) -> tuple[float, float, float]:
    """AUC with a DeLong confidence interval, clipped to [0, 1]."""
    auc, var = delong_auc(y_true, score)
    half = norm.ppf(0.5 + level / 2.0) * np.sqrt(var)
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def classification_metrics(y, proba, classes, positive: str | None = None) -> dict:
    """Metrics of predicted probabilities; the predicted class is the most probable one.

    Parameters
    ----------
    y : array-like of int
        True class indices into ``classes``.
    proba : ndarray, shape (n, C)
    classes : list of str
    positive : str, optional
        Positive class of a binary problem (default: the second of the sorted classes).

    Returns
    -------
    dict
        Binary: ``auc`` (+ ``auc_ci``), ``accuracy``, ``balanced_accuracy``, ``sensitivity``,
        ``specificity``, ``precision``, ``f1``, ``confusion_matrix`` (rows true, columns
        predicted, in ``classes`` order). Multi-class: macro one-vs-rest ``auc``, macro
        ``f1``/``precision``/``sensitivity``, per-class recall, ``confusion_matrix``.
    """
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    pred = proba.argmax(axis=1)
    labels = list(range(len(classes)))
    out: dict = {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "classes": list(classes),
    }
    if len(classes) == 2:
        pos = classes.index(positive) if positive is not None else 1
        t, p = (y == pos).astype(int), (pred == pos).astype(int)
        out["positive"] = classes[pos]
        if 0 < t.sum() < len(t):
            auc, lo, hi = auc_ci(t, proba[:, pos])
            out["auc"], out["auc_ci"] = auc, [lo, hi]
        else:
            out["auc"], out["auc_ci"] = float("nan"), [float("nan"), float("nan")]
        out["sensitivity"] = float(recall_score(t, p, zero_division=0))
        out["specificity"] = float(recall_score(1 - t, 1 - p, zero_division=0))
        out["precision"] = float(precision_score(t, p, zero_division=0))
        out["f1"] = float(f1_score(t, p, zero_division=0))
    else:
        present = np.unique(y)
        if len(present) == len(classes):
            out["auc"] = float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels))
        else:
            out["auc"] = float("nan")
        out["sensitivity"] = float(recall_score(y, pred, labels=labels, average="macro", zero_division=0))
        out["precision"] = float(precision_score(y, pred, labels=labels, average="macro", zero_division=0))
        out["f1"] = float(f1_score(y, pred, labels=labels, average="macro", zero_division=0))
        out["recall_per_class"] = dict(
            zip(classes, recall_score(y, pred, labels=labels, average=None, zero_division=0).tolist())
        )
    return out


SUMMARY_KEYS = ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "precision", "f1")


def per_fold(y, proba, fold_of, classes, positive=None) -> dict:
    """Mean and standard deviation over folds of each summary metric."""
    rows = [classification_metrics(y[fold_of == f], proba[fold_of == f], classes, positive)
            for f in np.unique(fold_of)]
    out = {}
    for key in SUMMARY_KEYS:
        vals = np.array([r[key] for r in rows if key in r], dtype=float)
        if len(vals):
            out[key] = {"mean": float(np.nanmean(vals)), "sd": float(np.nanstd(vals, ddof=1)) if len(vals) > 1 else 0.0,
                        "values": vals.tolist()}
    return out
