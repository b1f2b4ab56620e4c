"""Pure scorers: AUC with DeLong CI, accuracy, sensitivity/specificity, F1, confusion matrices.

Everything scikit-learn/scipy already computes is taken from them; DeLong's
variance (DeLong et al. 1988, fast form of Sun & Xu 2014) is written out here.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score


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


def predicted_classes(proba, classes, positive: str | None = None, threshold=None) -> np.ndarray:
    """The predicted class of each row: the positive class where its probability reaches ``threshold`` (a number,
    or one per row; binary problems), else the most probable class."""
    proba = np.asarray(proba, dtype=np.float64)
    if threshold is None or len(classes) != 2:
        return proba.argmax(axis=1)
    pos = classes.index(positive) if positive is not None else 1
    thr = np.broadcast_to(np.asarray(threshold, float), (len(proba),))
    at = np.where(np.isnan(thr), 0.5, thr)  # a row without a threshold: the most probable class
    return np.where(proba[:, pos] >= at, pos, 1 - pos) if len(proba) else proba.argmax(axis=1)


def calibration(t, p, bins: int = 10) -> dict:
    """Brier score, calibration slope and intercept (calibration-in-the-large), and a reliability table.

    ``t``: 1 for the positive class, ``p``: its predicted probability. The slope is ``b`` of the logistic
    recalibration ``logit P(y) = a + b logit(p)``; the intercept is ``a`` with the slope fixed at 1 (the
    logit as offset), as reporting guidelines (TRIPOD) ask. 1 and 0 are perfect; a slope below 1 says the
    predictions are too extreme. Either is None when the data separate perfectly (no finite fit).
    """
    t, p = np.asarray(t, float), np.asarray(p, float)
    out: dict = {"brier": float(np.mean((p - t) ** 2)) if len(t) else None}
    lp = np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1 - 1e-6))
    out["calibration_slope"] = _logistic(t, np.column_stack([np.ones_like(lp), lp]), np.zeros_like(lp), 1)
    out["calibration_intercept"] = _logistic(t, np.ones((len(lp), 1)), lp, 0)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rel = [(float(p[m].mean()), float(t[m].mean()), int(m.sum())) for m in (which == b for b in range(bins)) if m.any()]
    out["reliability"] = {"predicted": [r[0] for r in rel], "observed": [r[1] for r in rel], "n": [r[2] for r in rel]}
    return out


def _logistic(t, Z, offset, coef: int) -> float | None:
    """Coefficient ``coef`` of the logistic regression of ``t`` on ``Z`` with ``offset`` (Newton's method), or None
    when it does not converge to a finite value (separation, one class)."""
    if len(t) < 2 or t.min() == t.max():
        return None
    beta = np.zeros(Z.shape[1])
    for _ in range(50):
        eta = np.clip(offset + Z @ beta, -30, 30)
        mu = 1 / (1 + np.exp(-eta))
        w = mu * (1 - mu)
        H = Z.T @ (Z * w[:, None])
        try:
            step = np.linalg.solve(H + 1e-12 * np.eye(len(beta)), Z.T @ (t - mu))
        except np.linalg.LinAlgError:
            return None
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    else:
        return None
    return float(beta[coef]) if np.isfinite(beta[coef]) and abs(beta[coef]) < 1e3 else None


def classification_metrics(y, proba, classes, positive: str | None = None, threshold=None) -> dict:
    """Metrics of predicted probabilities; the predicted class is the most probable one, or (binary, with
    ``threshold``: one number, or one per row) the positive class where its probability reaches the threshold.

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
        predicted, in ``classes`` order), ``threshold``, and :func:`calibration`'s figures.
        Multi-class: macro and prevalence-weighted one-vs-rest ``auc`` (and each class's), macro
        ``f1``/``precision``/``sensitivity``, ``confusion_matrix``, ``brier`` (summed over classes).
        Both: ``per_class`` precision, recall, F1 and support.
    """
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    pred = predicted_classes(proba, classes, positive, threshold)
    labels = list(range(len(classes)))
    cm = confusion_matrix(y, pred, labels=labels)
    # one pass gives every per-class value; the summaries are scikit-learn's definitions of them
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    out: dict = {
        "n": int(len(y)),
        "accuracy": float(np.trace(cm) / cm.sum()) if cm.sum() else float("nan"),
        "balanced_accuracy": float(rec[support > 0].mean())
        if support.any()
        else float("nan"),  # = balanced_accuracy_score
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
        "per_class": {
            c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, c in enumerate(classes)
        },
    }
    missing = out["not_computable"] = {}
    absent = [c for i, c in enumerate(classes) if support[i] == 0]
    if not len(y):
        missing.update(dict.fromkeys(("auc", "accuracy", "balanced_accuracy"), "no samples"))
        out["accuracy"] = out["balanced_accuracy"] = None
    if len(classes) == 2:
        pos = classes.index(positive) if positive is not None else 1
        t = (y == pos).astype(int)
        out["positive"] = classes[pos]
        if 0 < t.sum() < len(t):
            auc, lo, hi = auc_ci(t, proba[:, pos])
            out["auc"], out["auc_ci"] = auc, [lo, hi]
        else:
            out["auc"] = None
            missing.setdefault(
                "auc", f"needs both classes, and none of the {len(y)} is {' or '.join(map(repr, absent))}"
            )
        out["sensitivity"] = float(rec[pos]) if support[pos] else None
        out["specificity"] = float(rec[1 - pos]) if support[1 - pos] else None
        if not support[pos]:
            missing["sensitivity"] = f"no {classes[pos]} (positive) sample"
        if not support[1 - pos]:
            missing["specificity"] = f"no {classes[1 - pos]} (negative) sample"
        out["precision"] = float(prec[pos])
        out["f1"] = float(f1[pos])
        if threshold is not None:
            thr = np.asarray(threshold, float)
            out["threshold"] = float(np.nanmean(thr)) if np.isfinite(thr).any() else None
        if len(y):
            out.update(calibration(t, proba[:, pos]))
    else:
        if not absent:
            out["auc"] = float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels))
            out["weighted_auc"] = float(roc_auc_score(y, proba, multi_class="ovr", average="weighted", labels=labels))
            out["class_auc"] = {c: float(roc_auc_score(y == i, proba[:, i])) for i, c in enumerate(classes)}
        else:
            out["auc"] = None
            missing.setdefault(
                "auc", f"needs every class, and none of the {len(y)} is {' or '.join(map(repr, absent))}"
            )
        out["sensitivity"] = float(rec.mean())  # macro over all classes, as average="macro" with labels=
        out["precision"] = float(prec.mean())
        out["f1"] = float(f1.mean())
        if len(y):
            out["brier"] = float(np.mean(((proba - (y[:, None] == np.arange(len(classes)))) ** 2).sum(axis=1)))
        grades = ordinal_grades(classes)
        if grades is not None and len(y):
            from sklearn.metrics import cohen_kappa_score

            out["qwk"] = float(cohen_kappa_score(grades[y], grades[pred], weights="quadratic", labels=sorted(grades)))
    return out


def ordinal_grades(classes) -> np.ndarray | None:
    """Each class's grade when every class is an integer (ordinal labels such as 0-4), else None."""
    try:
        return np.array([int(c) for c in classes])
    except ValueError:
        return None


SUMMARY_KEYS = ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "precision", "f1", "brier")


def delong_paired(y_true, score_a, score_b) -> dict:
    """DeLong's test for two correlated AUCs (same samples, two scores).

    Returns
    -------
    dict
        ``auc_a``, ``auc_b``, ``diff`` (a - b), ``z``, ``p`` (two-sided).
    """
    y_true = np.asarray(y_true).astype(bool)
    a, b = np.asarray(score_a, float), np.asarray(score_b, float)
    comps = [_placements(s[y_true], s[~y_true]) for s in (a, b)]
    (auc_a, v10a, v01a), (auc_b, v10b, v01b) = comps
    m, n = len(v10a), len(v01a)
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    cov = s10 / m + s01 / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = auc_a - auc_b
    if var <= 0:
        z, p = (0.0, 1.0) if diff == 0 else (float("inf") * np.sign(diff), 0.0)
    else:
        z = diff / np.sqrt(var)
        p = 2 * norm.sf(abs(z))
    return {"auc_a": float(auc_a), "auc_b": float(auc_b), "diff": float(diff), "z": float(z), "p": float(p)}


def _placements(pos, neg):
    """AUC and DeLong's structural components (placements) of positives and negatives."""
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        raise ValueError("DeLong's test needs at least 2 positive and 2 negative samples")
    tz = rankdata(np.concatenate([pos, neg]))
    tx, ty = rankdata(pos), rankdata(neg)
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    return auc, (tz[:m] - tx) / n, 1.0 - (tz[m:] - ty) / m


def corrected_ttest(diffs, n_train: float, n_test: float) -> dict:
    """Corrected resampled t-test (Nadeau & Bengio 2003) of per-fold score differences.

    Folds share training data, so fold scores are correlated and the plain paired
    t-test is far too liberal; the variance is inflated by ``1/J + n_test/n_train``.

    Parameters
    ----------
    diffs : array-like
        Score difference (a - b) in each of the J = K x R folds, both scored on the same folds.
    n_train, n_test : float
        Mean training and test set sizes of a fold.
    """
    from scipy.stats import t as t_dist

    d = np.asarray(diffs, float)
    j = len(d)
    mean, var = float(d.mean()), float(d.var(ddof=1)) if j > 1 else 0.0
    se = np.sqrt((1.0 / j + n_test / n_train) * var)
    if se == 0:
        return {
            "mean_diff": mean,
            "t": 0.0 if mean == 0 else float("inf") * np.sign(mean),
            "df": j - 1,
            "p": 1.0 if mean == 0 else 0.0,
        }
    t = mean / se
    return {"mean_diff": mean, "t": float(t), "df": j - 1, "p": float(2 * t_dist.sf(abs(t), j - 1))}
