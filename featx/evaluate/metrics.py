"""Pure scorers: AUC with DeLong CI, accuracy, sensitivity/specificity, F1, confusion matrices.

Everything scikit-learn/scipy already computes is taken from them; DeLong's
variance (DeLong et al. 1988, fast form of Sun & Xu 2014) is written out here.
"""

from __future__ import annotations

import warnings

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


BOOT_KEYS = SUMMARY_KEYS
BOOT_CHUNK = 100
ROC_GRID = np.linspace(0, 1, 101)


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


def bootstrap(
    y,
    proba,
    classes,
    groups=None,
    positive: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    threshold=None,
) -> dict:
    """Percentile bootstrap CIs of the summary metrics, resampling whole subjects.

    Resampling subjects (not images) keeps a patient's slices together, as they were
    in the folds; a resample that lost a class is skipped for the metrics it leaves
    undefined. Binary problems also get a pointwise ROC band on a 101-point FPR grid.

    Parameters
    ----------
    y : array-like of int
    proba : ndarray, shape (n, C)
    classes : list of str
    groups : array-like, optional
        Subject of each sample (default: each sample its own).
    n_boot : int
        Number of resamples.
    threshold : float or array, optional
        The threshold (binary) each prediction was decided by, as in :func:`classification_metrics`.

    Returns
    -------
    dict
        ``ci``: metric -> [lo, hi]; ``n_boot``; ``unit`` ('subject' or 'sample'); binary: ``roc``
        with ``fpr``, ``tpr``, ``lo``, ``hi``.
    """
    y = np.asarray(y)
    proba = np.asarray(proba, float)
    binary = len(classes) == 2
    pos = (classes.index(positive) if positive is not None else 1) if binary else None
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
