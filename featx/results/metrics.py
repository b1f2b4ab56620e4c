"""Metrics with their intervals, ROC curves, per-fold statistics and the scores of one cross-validation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The summary metrics, in the order every table shows them, with their labels
METRIC_LABELS = {
    "auc": "AUC",
    "accuracy": "Accuracy",
    "balanced_accuracy": "Bal. accuracy",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "precision": "Precision",
    "f1": "F1",
    "brier": "Brier",
    "mae": "MAE",
    "rmse": "RMSE",
    "r2": "R²",
    "pearson": "Pearson r",
    "spearman": "Spearman ρ",
    "harrell_c": "Harrell's C",
    "uno_c": "Uno's C",
    "td_auc_mean": "mean td-AUC",
    "ibs": "IBS",
}

#: metrics where lower is better (every other one: higher is better)
LOWER_IS_BETTER = frozenset({"brier", "mae", "rmse", "ibs"})


def finite(v) -> bool:
    """A number that is neither None nor NaN/inf."""
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall (sensitivity), F1 and support of one class."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Roc:
    """An ROC curve on a fixed FPR grid, with its bootstrap band (``lo``/``hi``) when resampled."""

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    lo: tuple[float, ...] | None = None
    hi: tuple[float, ...] | None = None

    @property
    def has_band(self) -> bool:
        return self.lo is not None and self.hi is not None


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram: per bin of predicted probability (ten of width 0.1, the empty ones left out), the
    mean predicted probability of the positive class, the fraction observed positive, and the count."""

    predicted: tuple[float, ...]
    observed: tuple[float, ...]
    n: tuple[int, ...]


@dataclass(frozen=True)
class Metrics:
    """The metrics of one set of predictions (pooled out-of-fold, a test split, subject level ...).

    Binary problems have ``positive``, ``auc`` with its DeLong interval ``auc_ci``, ``sensitivity`` and
    ``specificity``; multi-class ones a macro one-vs-rest ``auc`` and macro ``sensitivity``/``precision``/
    ``f1``. ``ci`` holds the percentile-bootstrap intervals (metric -> (lo, hi)), resampled by ``ci_unit``.

    ``threshold`` is the one the predicted classes were decided by (binary; chosen on training rows with
    ``--threshold``; None: the most probable class). ``brier`` (binary: of the positive class; multi-class:
    summed over the classes), ``calibration_slope`` and ``calibration_intercept`` (binary) and ``reliability``
    say how calibrated the probabilities are. Multi-class problems also have the prevalence-``weighted_auc``,
    each class's one-vs-rest ``class_auc`` and ``class_roc``, and, when every label is an integer (grades),
    the quadratic-weighted kappa ``qwk``.

    A regression (``classes`` empty) has ``mae``, ``rmse``, ``r2``, ``pearson`` and ``spearman``, with the
    Bland-Altman ``bias`` (mean predicted - true) and its 95% limits of agreement ``loa``.

    A survival target has ``n_events``, ``harrell_c`` and ``uno_c``, the time-dependent AUC at each horizon
    (``td_auc``: horizon -> AUC) and their ``td_auc_mean``, the integrated Brier score ``ibs``, and ``risk_groups``:
    each row's group by its fold's cut-off, the log-rank test and the groups' Kaplan-Meier curves.
    """

    n: int
    classes: tuple[str, ...]
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    confusion_matrix: tuple[tuple[int, ...], ...] = ()
    per_class: Mapping[str, ClassMetrics] = field(default_factory=dict)
    positive: str | None = None
    auc: float | None = None
    auc_ci: tuple[float, float] | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    precision: float | None = None
    f1: float | None = None
    ci: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    ci_unit: str | None = None
    roc: Roc | None = None
    n_subjects: int | None = None
    mixed_label_subjects: int | None = None
    #: metric -> why it cannot be computed on these predictions (e.g. AUC on a split with one class)
    not_computable: Mapping[str, str] = field(default_factory=dict)
    threshold: float | None = None
    brier: float | None = None
    calibration_slope: float | None = None
    calibration_intercept: float | None = None
    reliability: Reliability | None = None
    weighted_auc: float | None = None
    class_auc: Mapping[str, float] = field(default_factory=dict)
    class_roc: Mapping[str, Roc] = field(default_factory=dict)
    qwk: float | None = None
    mae: float | None = None
    rmse: float | None = None
    r2: float | None = None
    pearson: float | None = None
    spearman: float | None = None
    bias: float | None = None
    loa: tuple[float, float] | None = None
    n_events: int | None = None
    harrell_c: float | None = None
    uno_c: float | None = None
    td_auc: Mapping[str, float] = field(default_factory=dict)
    td_auc_mean: float | None = None
    ibs: float | None = None
    risk_groups: Mapping[str, Any] | None = None

    @property
    def primary(self) -> str:
        """The metric a bench ranks by and tests pairwise: the AUC, a regression's MAE (lower is better), or a
        survival target's Harrell's C."""
        if self.classes:
            return "auc"
        return "harrell_c" if self.n_events is not None else "mae"

    def ranking(self) -> float:
        """:attr:`primary` as a score where higher is better (-inf when not computed)."""
        v = self.value(self.primary)
        if not finite(v):
            return -math.inf
        return -v if self.primary in LOWER_IS_BETTER else v

    def value(self, key: str) -> float | None:
        """The metric ``key`` (one of :data:`METRIC_LABELS`), None when this problem has none."""
        if key not in METRIC_LABELS:
            raise KeyError(f"unknown metric {key!r}")
        return getattr(self, key)

    def interval(self, key: str) -> tuple[float, float] | None:
        """The bootstrap interval of ``key``, None without one."""
        return self.ci.get(key)

    def shown(self) -> list[str]:
        """The metrics this problem has (computed, or not computable with a reason), in table order."""
        return [k for k in METRIC_LABELS if self.value(k) is not None or k in self.not_computable]


@dataclass(frozen=True)
class FoldStat:
    """One metric over every (repeat, fold): mean, sd and the values in repeat-major order.

    Folds where the metric is not computable (e.g. AUC of a fold with one class) hold None and are
    left out of the mean and sd (``n_missing`` of them); mean is None when no fold had it.
    """

    mean: float | None
    sd: float
    values: tuple[float | None, ...]
    n_missing: int = 0


@dataclass(frozen=True)
class CVScores:
    """What one cross-validation (or fixed split) scored.

    Attributes
    ----------
    n_tested : int
        Samples (or subjects) with an out-of-fold prediction.
    pooled : Metrics
        Of each sample's out-of-fold probability, averaged over the repeats that tested it.
    roc : Roc or None
        The pooled ROC with its bootstrap band (binary problems).
    per_fold : mapping of metric -> FoldStat
    per_repeat : tuple of mapping, or None
        Pooled AUC and accuracy of each repeat (with several repeats).
    subject : Metrics or None
        The same at subject level (mean probability over a subject's images), when subjects have several.
    level : str
        What a row is: ``image``, or ``subject (...)`` for fused or concatenated sequences.
    scope : str
        Which predictions: ``out-of-fold predictions of cross-validation``, or with ``--split fixed``
        ``the test side of the fixed split`` (the field keeps the name ``cv`` in results.json).
    fold_seconds : tuple of float
        Fit + predict wall time of every fold.
    best_params : any
        With nested tuning: the inner loop's choice per fold (per sequence model for fused runs).
    thresholds : tuple of float, or None
        With ``--threshold``: the threshold each (repeat, fold) chose on its training rows.
    """

    n_tested: int
    pooled: Metrics
    roc: Roc | None = None
    per_fold: Mapping[str, FoldStat] = field(default_factory=dict)
    per_repeat: tuple[Mapping[str, float | None], ...] | None = None
    subject: Metrics | None = None
    level: str = "image"
    fold_seconds: tuple[float, ...] = ()
    best_params: Any = None
    #: what these predictions are: the out-of-fold ones of a CV, or the test side of a fixed split
    scope: str = "out-of-fold predictions of cross-validation"
    thresholds: tuple[float | None, ...] | None = None

    def fold_values(self, key: str) -> tuple[float, ...]:
        """``key`` in every fold (empty when not computed)."""
        stat = self.per_fold.get(key)
        return stat.values if stat else ()


def degenerate_decisions(m: Metrics | None, share: float = 0.95, minority: float = 0.20) -> str:
    """ "" or a sentence when a model's decisions are degenerate: one class predicted for >= ``share`` of the rows
    while another class makes up >= ``minority`` of them (a head that learned little: its AUC may still rank)."""
    cm = np.asarray(m.confusion_matrix if m is not None else (), dtype=float)
    if cm.ndim != 2 or cm.size == 0 or cm.sum() == 0:
        return ""
    n = cm.sum()
    predicted, true = cm.sum(axis=0) / n, cm.sum(axis=1) / n
    top = int(np.argmax(predicted))
    others = [i for i in range(len(true)) if i != top and true[i] >= minority]
    if predicted[top] < share or not others:
        return ""
    c = m.classes
    return (
        f"degenerate decisions: {predicted[top]:.0%} of the {int(n)} rows are called {c[top]!r}, though "
        f"{true[others[0]]:.0%} are {c[others[0]]!r}; the head learned little at this threshold (try another head, "
        "--tune, or --threshold youden)"
    )
