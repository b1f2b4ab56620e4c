"""Out-of-fold predictions -> the typed scores a report shows (pooled, per fold, per repeat, subject level, CIs)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from featx.evaluate.protocol.fusion import MIXED, fuse_images, fuse_repeats, subject_level
from featx.evaluate.protocol.task import Task
from featx.evaluate.statistics.metrics import SUMMARY_KEYS, classification_metrics
from featx.evaluate.statistics.regression import REGRESSION_KEYS, regression_bootstrap, regression_metrics
from featx.evaluate.statistics.resampling import Resampling, bootstrap, class_rocs, roc_on_grid
from featx.evaluate.statistics.survival import SURVIVAL_KEYS, risk_groups, survival_bootstrap, survival_metrics
from featx.results.codec import from_json
from featx.results.metrics import CVScores, FoldStat, Metrics
from featx.results.runs import SequenceScores
from featx.store.feature_set import FeatureSet


def metrics_of(d: dict) -> Metrics:
    """:func:`~featx.evaluate.statistics.metrics.classification_metrics`' dict as typed Metrics."""
    return from_json(Metrics, d)


def evaluate(task: Task, proba, boot: Resampling, level: str = "image", thresholds=None) -> CVScores:
    """Score out-of-fold probabilities of one model.

    Parameters
    ----------
    task : Task
        The rows' classes, their units (``groups``: the bootstrap unit, and the subject-level aggregation when some
        subject has several rows) and the folds that predicted them.
    proba : ndarray, shape (repeats, n, C)
        NaN where a sample was not tested in a repeat.
    boot : Resampling
        Bootstrap resamples for the CIs (0: DeLong only) and their seed.
    level : str
        What a row is (``image``, or a subject-level description for fused runs).
    thresholds : ndarray, shape (repeats, n), optional
        The threshold each sample's fold chose on its training rows (binary; NaN: the most probable class);
        a sample tested in several repeats is decided by their mean threshold.
    """
    if task.kind != "classification":
        return _evaluate_values(task, proba, boot, level)
    classes, positive = list(task.classes), task.positive
    proba = np.asarray(proba, float)
    tested = ~np.isnan(proba[:, :, 0]).all(axis=0)
    mean = np.nanmean(proba[:, tested], axis=0)  # each tested sample's probability averaged over its repeats
    thr = None
    if thresholds is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: no threshold for that sample
            thr = np.nanmean(np.asarray(thresholds, float)[:, tested], axis=0)
    seen = task.rows(tested).without_folds()
    pooled = metrics_with_ci(seen, mean, boot, threshold=thr)
    per_repeat = None
    if len(proba) > 1:
        y = task.y
        per_repeat = tuple(
            {
                k: classification_metrics(y[~np.isnan(p[:, 0])], p[~np.isnan(p[:, 0])], classes, positive).get(k)
                for k in ("auc", "accuracy")
            }
            for p in proba
        )
    return CVScores(
        n_tested=int(tested.sum()),
        pooled=_without_roc(pooled),
        roc=pooled.roc,
        per_fold=per_fold(task, proba, thresholds=thresholds),
        per_repeat=per_repeat,
        subject=_subject_level(seen, mean, boot),
        level=level,
        scope=task.folds.scope,
    )


def _evaluate_values(task: Task, pred, boot: Resampling, level: str) -> CVScores:
    """:func:`evaluate` of a regression (``pred`` (repeats, n, 1): out-of-fold values) or of a survival target
    (``pred`` (repeats, n, 2 + T): risk, the fold's cut-off, survival at ``task.times``)."""
    pred = np.asarray(pred, float)
    tested = ~np.isnan(pred[:, :, 0]).all(axis=0)
    mean = np.nanmean(pred[:, tested], axis=0)
    seen = task.rows(tested).without_folds()
    keys = ("harrell_c",) if task.kind == "survival" else ("mae", "r2")
    per_repeat = None
    if len(pred) > 1:
        per_repeat = tuple(
            {k: _metrics(task.rows(~np.isnan(p[:, 0])), p[~np.isnan(p[:, 0])]).get(k) for k in keys} for p in pred
        )
    return CVScores(
        n_tested=int(tested.sum()),
        pooled=metrics_with_ci(seen, mean, boot),
        per_fold=per_fold(task, pred),
        per_repeat=per_repeat,
        subject=_subject_values(seen, mean, boot),
        level=level,
        scope=task.folds.scope,
    )


def _metrics(task: Task, pred) -> dict:
    """The metrics of a regression's or a survival target's predictions of ``task``'s rows."""
    return survival_metrics(task, pred) if task.kind == "survival" else regression_metrics(task.y, pred)


def _subject_values(task: Task, mean, boot: Resampling) -> Metrics | None:
    """A regression's or survival target's metrics on each subject's mean prediction, when some subject has several
    rows (all of one value, or one event and time: a subject whose rows differ, e.g. one value per lesion, has no
    single target to predict)."""
    subj = task.groups
    if subj is None or len(np.unique(subj)) == len(subj):
        return None
    names, first, inverse = np.unique(subj, return_index=True, return_inverse=True)
    if (task.y[first][inverse] != task.y).any():
        return None
    counts = np.bincount(inverse)
    per_subject = np.column_stack([np.bincount(inverse, col) / counts for col in np.asarray(mean, float).T])
    subjects = replace(task, y=task.y[first], groups=None, folds=None)
    m = metrics_with_ci(subjects, per_subject, boot)
    return replace(m, n_subjects=len(names))


def _without_roc(m: Metrics) -> Metrics:
    return replace(m, roc=None)


def _subject_level(task: Task, mean, boot: Resampling) -> Metrics | None:
    """The same metrics on each subject's mean probability, when some subject has several samples."""
    subj, classes = task.groups, list(task.classes)
    if subj is None or len(np.unique(subj)) == len(subj):
        return None
    _, ys, ps = subject_level(subj, task.y, mean)
    ok = ys != MIXED
    if not ok.any():  # a paired design: every subject has images of several labels
        why = "every subject has images of more than one label (a paired design): the scores are per image"
        return Metrics(
            n=0,
            classes=tuple(classes),
            n_subjects=0,
            mixed_label_subjects=int(len(ys)),
            not_computable={k: why for k in ("auc", "accuracy", "balanced_accuracy")},
        )
    m = classification_metrics(ys[ok], ps[ok], classes, task.positive)
    if boot.n_boot:
        subjects = Task(task.kind, ys[ok], task.classes, task.positive)
        m["ci"] = bootstrap(subjects, ps[ok], boot)["ci"]
    m["n_subjects"], m["mixed_label_subjects"] = int(ok.sum()), int((~ok).sum())
    return metrics_of(m)


def metrics_with_ci(task: Task, proba, boot: Resampling, threshold=None) -> Metrics:
    """Metrics of one set of predictions of ``task``'s rows with their bootstrap CIs (``ci``, ``ci_unit``: resampling
    ``task.groups``) and ``roc`` (with band); multi-class: each class's one-vs-rest ROC. ``threshold`` (binary; a
    number or one per row) decides the predicted classes, as in
    :func:`~featx.evaluate.statistics.metrics.classification_metrics`."""
    y, classes, positive = task.y, list(task.classes), task.positive
    if task.kind == "regression":
        m = regression_metrics(y, proba)
        if boot.n_boot:
            b = regression_bootstrap(task, proba, boot)
            m["ci"], m["ci_unit"] = b["ci"], b["unit"]
        return metrics_of(m)
    if task.kind == "survival":
        m = survival_metrics(task, proba)
        if boot.n_boot:
            b = survival_bootstrap(task, proba, boot)
            m["ci"], m["ci_unit"] = b["ci"], b["unit"]
        m["risk_groups"] = risk_groups(task, proba, task.risk_cut)
        return metrics_of(m)
    m = classification_metrics(y, proba, classes, positive, threshold)
    if boot.n_boot:
        b = bootstrap(task, proba, boot, threshold=threshold)
        m["ci"], m["ci_unit"], m["roc"] = b["ci"], b["unit"], b.get("roc")
    else:
        m["roc"] = roc_on_grid(y, proba, classes, positive)
    if len(classes) > 2:
        m["class_roc"] = class_rocs(y, proba, classes)
    return metrics_of(m)


def fold_scores(task: Task, proba, key: str | None = None) -> np.ndarray:
    """``key`` (default: the AUC; a regression's MAE) in each (repeat, fold) of ``task.folds``, in repeat-major order
    (for paired fold-wise tests)."""
    key = key or {"regression": "mae", "survival": "harrell_c"}.get(task.kind, "auc")
    stat = per_fold(task, proba, keys=(key,)).get(key)
    return np.array([np.nan if v is None else v for v in stat.values] if stat else [], dtype=float)


def per_fold(task: Task, proba, keys=None, thresholds=None) -> dict[str, FoldStat]:
    """Each metric in every (repeat, fold) of ``task.folds``: mean, sd and the values (decided by each fold's
    threshold)."""
    y, classes, fold_of = task.y, list(task.classes), task.folds.fold_of
    keys = keys or {"regression": REGRESSION_KEYS, "survival": SURVIVAL_KEYS}.get(task.kind, SUMMARY_KEYS)
    rows = []
    for r in range(len(proba)):
        for f in np.unique(fold_of[r][fold_of[r] >= 0]):
            sel = fold_of[r] == f
            thr = None if thresholds is None else thresholds[r][sel]
            if task.kind != "classification":
                rows.append(_metrics(task.rows(sel).without_folds(), proba[r][sel]))
            else:
                rows.append(classification_metrics(y[sel], proba[r][sel], classes, task.positive, thr))
    out = {}
    for key in keys:
        if not rows or not any(key in r for r in rows):
            continue
        vals = np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)
        finite = vals[~np.isnan(vals)]
        out[key] = FoldStat(
            float(finite.mean()) if len(finite) else None,
            float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
            tuple(None if np.isnan(v) else float(v) for v in vals),
            int(np.isnan(vals).sum()),
        )
    return out


@dataclass
class FusedScores:
    """The scores of one model per sequence fused per subject (``vote``/``mean``)."""

    cv: CVScores
    sequences: dict[str, SequenceScores]
    test: Metrics | None = None
    test_subjects: tuple | None = None  # (subject names, fused probabilities) of the test split


def score_fused(
    dev: FeatureSet,
    test: FeatureSet,
    task: Task,
    proba: dict,
    evals: dict,
    units: dict,
    test_units: dict,
    test_proba: dict,
    how: str,
    boot: Resampling,
) -> FusedScores:
    """Score one model per sequence fused per subject: CV and test at subject level, and each sequence's own.

    ``task``: the development rows' Task; ``proba``: sequence -> out-of-fold probabilities (R, n_q, C) of the rows
    ``units[sequence]`` of ``dev``; ``evals``: sequence -> its :func:`evaluate`; ``test_proba``: sequence ->
    probabilities of its test rows.
    """
    classes = list(task.classes)
    code = lambda labels: np.searchsorted(classes, labels)  # noqa: E731  (classes are sorted)
    names, ys, _ = subject_level(dev.subjects, code(dev.labels), np.zeros((len(dev), 1)))
    fused = fuse_repeats({q: (dev.subjects[units[q]], p) for q, p in proba.items()}, how, names)
    first = np.unique(dev.subjects, return_index=True)[1]  # a subject's fold: its rows' fold
    subjects = replace(task, y=ys, groups=None, folds=task.folds.subset(first))
    cv = evaluate(subjects, fused, boot, level=f"subject ({how} of {len(units)} sequence models)")
    sequences = {}
    for q, e in evals.items():
        m = test_units.get(q)
        seq_test = None
        if len(test) and m is not None and m.any():
            seq_test = metrics_of(classification_metrics(code(test.labels[m]), test_proba[q], classes, task.positive))
        sequences[q] = SequenceScores(cv=e, n=int(units[q].sum()), test=seq_test)
    if not len(test):
        return FusedScores(cv, sequences)
    tn, tp = fuse_images({q: (test.subjects[m], test_proba[q]) for q, m in test_units.items()}, how)
    _, ty, _ = subject_level(test.subjects, code(test.labels), np.zeros((len(test), 1)))
    tested = replace(task, y=ty[np.searchsorted(np.unique(test.subjects), tn)], groups=None, folds=None)
    return FusedScores(cv, sequences, metrics_with_ci(tested, tp, boot), (tn, tp))
