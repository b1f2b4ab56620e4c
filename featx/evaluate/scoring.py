"""Out-of-fold predictions -> the metrics bundle a report shows (image level, subject level, per fold, CIs)."""
from __future__ import annotations

import numpy as np

from featx.evaluate.fusion import MIXED, subject_level
from featx.evaluate.metrics import SUMMARY_KEYS, bootstrap, classification_metrics, roc_on_grid


def evaluate(y, proba, fold_of, classes, subjects=None, positive=None, n_boot: int = 1000, seed: int = 0) -> dict:
    """Score out-of-fold probabilities of one model.

    Parameters
    ----------
    y : ndarray of int, shape (n,)
    proba : ndarray, shape (repeats, n, C)
        NaN where a sample was not tested in a repeat.
    fold_of : ndarray of int, shape (repeats, n)
    classes : list of str
    subjects : array-like of str, optional
        Bootstrap unit, and the subject-level aggregation when some subject has several samples.
    n_boot : int
        Bootstrap resamples for the CIs (0: DeLong only).

    Returns
    -------
    dict
        ``pooled`` (metrics of each sample's repeat-averaged out-of-fold probability; ``ci``
        = bootstrap CIs), ``per_fold`` (mean, sd, values over every repeat x fold),
        ``per_repeat`` (pooled AUC and accuracy per repeat), ``subject`` (same at subject
        level, or None), ``roc`` (curve with bootstrap band, binary only).
    """
    y = np.asarray(y)
    proba = np.asarray(proba, float)
    tested = ~np.isnan(proba[:, :, 0]).all(axis=0)
    mean = np.nanmean(proba[:, tested], axis=0)  # each tested sample's probability averaged over its repeats
    yt = y[tested]
    subj = None if subjects is None else np.asarray(subjects).astype(str)[tested]
    out = {"n_tested": int(tested.sum())}
    out["pooled"] = metrics_with_ci(yt, mean, classes, subj, positive, n_boot, seed)
    out["roc"] = out["pooled"].pop("roc")
    out["per_fold"] = _per_fold(y, proba, fold_of, classes, positive)
    out["per_repeat"] = [
        {k: classification_metrics(y[~np.isnan(p[:, 0])], p[~np.isnan(p[:, 0])], classes, positive).get(k)
         for k in ("auc", "accuracy")} for p in proba
    ] if len(proba) > 1 else None
    out["subject"] = None
    if subj is not None and len(np.unique(subj)) < len(subj):
        names, ys, ps = subject_level(subj, yt, mean)
        ok = ys != MIXED
        m = classification_metrics(ys[ok], ps[ok], classes, positive)
        if n_boot:
            m["ci"] = bootstrap(ys[ok], ps[ok], classes, None, positive, n_boot=n_boot, seed=seed)["ci"]
        m["n_subjects"], m["mixed_label_subjects"] = int(ok.sum()), int((~ok).sum())
        out["subject"] = m
    return out


def metrics_with_ci(y, proba, classes, groups=None, positive=None, n_boot: int = 1000, seed: int = 0) -> dict:
    """Metrics of one set of predictions with their bootstrap CIs (``ci``, ``ci_unit``) and ``roc`` (with band)."""
    m = classification_metrics(y, proba, classes, positive)
    if n_boot:
        boot = bootstrap(y, proba, classes, groups, positive, n_boot=n_boot, seed=seed)
        m["ci"], m["ci_unit"], m["roc"] = boot["ci"], boot["unit"], boot.get("roc")
    else:
        m["roc"] = roc_on_grid(y, proba, classes, positive)
    return m


def fold_scores(y, proba, fold_of, classes, positive=None, key: str = "auc") -> np.ndarray:
    """``key`` in each (repeat, fold), in repeat-major order (for paired fold-wise tests)."""
    return np.array(_per_fold(y, proba, fold_of, classes, positive, keys=(key,))[key]["values"])


def _per_fold(y, proba, fold_of, classes, positive=None, keys=SUMMARY_KEYS) -> dict:
    rows = []
    for r in range(len(proba)):
        for f in np.unique(fold_of[r][fold_of[r] >= 0]):
            sel = fold_of[r] == f
            rows.append(classification_metrics(y[sel], proba[r][sel], classes, positive))
    out = {}
    for key in keys:
        vals = np.array([r.get(key, np.nan) for r in rows], dtype=float)
        if len(vals) and key in rows[0]:
            finite = vals[~np.isnan(vals)]
            out[key] = {"mean": float(finite.mean()) if len(finite) else float("nan"),
                        "sd": float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
                        "values": vals.tolist()}
    return out


def score_fused(results: dict, dev, test, proba: dict, evals: dict, units: dict, test_units: dict, test_proba: dict,
                folds, how: str, positive=None, n_boot: int = 1000, seed: int = 0) -> None:
    """Fill ``results`` for one model per sequence fused per subject (``vote``/``mean``): ``cv`` and ``test``
    at subject level, ``sequences`` (each sequence's own CV and test metrics); adds ``test_proba['fused']``.

    ``proba``: sequence -> out-of-fold probabilities (R, n_q, C) of the rows ``units[sequence]`` of ``dev``;
    ``evals``: sequence -> its :func:`evaluate`; ``test_proba``: sequence -> probabilities of its test rows.
    """
    from featx.evaluate.fusion import fuse_images, fuse_repeats

    classes = results["classes"]
    code = lambda labels: np.searchsorted(classes, labels)  # noqa: E731  (classes are sorted)
    names, ys, _ = subject_level(dev.subjects, code(dev.labels), np.zeros((len(dev), 1)))
    fused = fuse_repeats({q: (dev.subjects[units[q]], p) for q, p in proba.items()}, how, names)
    fold_s = folds.fold_of[:, np.unique(dev.subjects, return_index=True)[1]]  # a subject's fold: its rows' fold
    results["cv"] = evaluate(ys, fused, fold_s, classes, None, positive, n_boot, seed)
    results["cv"]["level"] = f"subject ({how} of {len(units)} sequence models)"
    results["sequences"] = {q: {"cv": e, "n": int(units[q].sum())} for q, e in evals.items()}
    if not len(test):
        return
    for q, m in test_units.items():
        if m.any():
            results["sequences"][q]["test"] = classification_metrics(code(test.labels[m]), test_proba[q], classes,
                                                                     positive)
    tn, tp = fuse_images({q: (test.subjects[m], test_proba[q]) for q, m in test_units.items()}, how)
    _, ty, _ = subject_level(test.subjects, code(test.labels), np.zeros((len(test), 1)))
    results["test"] = metrics_with_ci(ty[np.searchsorted(np.unique(test.subjects), tn)], tp, classes, None,
                                      positive, n_boot, seed)
    test_proba["fused"] = (tn, tp)
