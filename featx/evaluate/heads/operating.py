"""Operating points and calibration, chosen on the training rows only.

``--threshold 0.5|T|youden|sens:X|spec:X`` and ``--calibrate none|sigmoid|isotonic`` wrap a head in
:class:`Operated`. Its ``fit`` runs one inner stratified (grouped by subject) K-fold CV on the rows it is
given, the training folds of an outer fold or, for the test split and the saved model, the development
rows. The inner CV's out-of-fold probabilities fit the calibrator (as scikit-learn's
``CalibratedClassifierCV(ensemble=False)`` does: the head itself is refit on all the rows) and, calibrated,
choose the threshold. The rows being scored never enter either: that is what makes the sensitivity and
specificity at the chosen threshold honest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from featx.config import Choice
from featx.errors import ConfigError, FitError

CALIBRATIONS = Choice("calibration", ("none", "sigmoid", "isotonic"))


@dataclass(frozen=True)
class ThresholdRule:
    """How a binary head's threshold on the positive class's probability is chosen.

    ``kind``: ``fixed`` (``value`` is the threshold), ``youden`` (maximise sensitivity + specificity - 1),
    ``sens`` (the highest threshold with sensitivity >= ``value``: the most specific such one) or ``spec``
    (the lowest threshold with specificity >= ``value``: the most sensitive such one).
    """

    kind: str
    value: float | None = None

    @property
    def default(self) -> bool:
        """0.5: the most probable class, what a plain head predicts."""
        return self.kind == "fixed" and self.value == 0.5

    @property
    def learned(self) -> bool:
        return self.kind != "fixed"

    def __str__(self) -> str:
        if self.kind == "youden":
            return "youden"
        return f"{self.value:g}" if self.kind == "fixed" else f"{self.kind}:{self.value:g}"

    def choose(self, positive: np.ndarray, score: np.ndarray) -> float:
        """The threshold (predict positive where ``score >= threshold``) for truths ``positive`` (bool) and ``score``."""
        if self.kind == "fixed":
            return float(self.value)
        from sklearn.metrics import roc_curve

        positive = np.asarray(positive, bool)
        if positive.all() or not positive.any():
            raise FitError(f"--threshold {self}: the rows it is chosen on hold one class only; use more rows per fold.")
        fpr, tpr, thr = roc_curve(positive, score, drop_intermediate=False)
        thr = np.minimum(thr, 1.0)  # roc_curve's first threshold is +inf: predict nothing positive
        if self.kind == "youden":
            i = int(np.argmax(tpr - fpr))
        elif self.kind == "sens":
            i = int(np.flatnonzero(tpr >= self.value - 1e-12)[0])
        else:
            i = int(np.flatnonzero(fpr <= 1 - self.value + 1e-12)[-1])
        return float(thr[i])


def parse_threshold(text) -> ThresholdRule:
    """``0.5``, a number in (0, 1), ``youden``, ``sens:0.9`` or ``spec:0.9`` -> :class:`ThresholdRule`."""
    if isinstance(text, ThresholdRule):
        return text
    s = str(text).strip().lower()
    if s == "youden":
        return ThresholdRule("youden")
    kind, _, value = s.partition(":") if ":" in s else ("fixed", "", s)
    try:
        v = float(value)
    except ValueError:
        v = None
    if kind not in ("fixed", "sens", "spec") or v is None or not 0 < v < 1:
        raise ConfigError(
            f"must be 0.5, a probability between 0 and 1 (e.g. 0.3), youden, sens:X or spec:X (e.g. sens:0.9); "
            f"got {text!r}.",
            "threshold",
        )
    return ThresholdRule(kind, v)


def check_threshold(text: str) -> str:
    """The setting's check: ``text`` parses (the normalised spelling is kept)."""
    return str(parse_threshold(text))


def inner_splits(y, groups, k: int, seed: int) -> list:
    """The (train, test) index pairs of a stratified K-fold over ``y`` (grouped by ``groups`` when given), with
    K lowered to the smallest class's count of units when that is fewer (FitError below 2)."""
    y = np.asarray(y)
    units = y if groups is None else y[np.unique(groups, return_index=True)[1]]
    smallest = int(np.unique(units, return_counts=True)[1].min())
    k = min(k, smallest)
    if k < 2:
        raise FitError(
            "--threshold/--calibrate: the inner CV that chooses them needs 2 "
            f"{'subjects' if groups is not None else 'samples'} of each class in every training set; one has "
            f"{smallest}. Use fewer outer folds, or the default --threshold 0.5 --calibrate none."
        )
    return list(inner_splitter(k, seed, groups is not None).split(np.zeros((len(y), 1)), y, groups))


def inner_splitter(k: int, seed: int, grouped: bool, stratified: bool = True):
    """The splitter of every inner CV (tuning, thresholds, calibration, selection): stratified K-fold, shuffled
    with ``seed``, grouped by subject when ``grouped`` (``stratified`` False, for a regression: plain K-fold)."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    if not stratified:
        return (GroupKFold if grouped else KFold)(k, shuffle=True, random_state=seed)
    return (StratifiedGroupKFold if grouped else StratifiedKFold)(k, shuffle=True, random_state=seed)


class Operated(ClassifierMixin, BaseEstimator):
    """A head with a calibration and an operating point learned by an inner CV of its training rows.

    Parameters
    ----------
    estimator : classifier
        The head (unfitted).
    calibrate : {"none", "sigmoid", "isotonic"}
    threshold : str
        A :func:`parse_threshold` rule, applied to the (calibrated) probability of class ``positive``.
    positive : int
        Index (in ``classes_``) of the positive class of a binary problem.
    inner_k : int
        Folds of the inner CV.
    random_state : int
        Seed of the inner folds.

    Attributes
    ----------
    model_ : the head fitted on all the rows
    calibrators_ : list or None
        One per class column calibrated (the positive column of a binary problem, as scikit-learn).
    threshold_ : float or None
        The threshold of a binary problem (None: the most probable class).
    """

    def __init__(self, estimator=None, calibrate="none", threshold="0.5", positive=1, inner_k=5, random_state=0):
        self.estimator = estimator
        self.calibrate = calibrate
        self.threshold = threshold
        self.positive = positive
        self.inner_k = inner_k
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        """Fit the head on (X, y), and the calibration and threshold on its inner out-of-fold predictions."""
        return self.around(clone(self.estimator).fit(X, y), X, y, groups)

    def around(self, model, X, y, groups=None):
        """Like :meth:`fit` with the head already fitted on (X, y) (``model``: e.g. the tuned one); the inner CV
        refits clones of it, with its parameters."""
        rule, how = parse_threshold(self.threshold), CALIBRATIONS.check(self.calibrate)
        y = np.asarray(y)
        self.model_, self.classes_ = model, model.classes_
        self.calibrators_, self.threshold_ = None, None
        binary = len(self.classes_) == 2
        if not binary and not rule.default:
            raise FitError(
                f"--threshold {rule} applies to a binary problem; this one has {len(self.classes_)} classes."
            )
        if how == "none" and not rule.learned:
            self.threshold_ = None if rule.default else float(rule.value)
            return self
        oof = self._out_of_fold(model, X, y, groups)
        if how != "none":
            self.calibrators_ = self._fit_calibrators(oof, y, how)
            oof = self._calibrated(oof)
        if binary and not rule.default:
            self.threshold_ = rule.choose(y == self.classes_[self.positive], oof[:, self.positive])
        return self

    def _out_of_fold(self, model, X, y, groups) -> np.ndarray:
        oof = np.zeros((len(y), len(self.classes_)))
        for train, test in inner_splits(y, groups, self.inner_k, self.random_state):
            m = clone(model).fit(X[train], y[train])
            oof[np.ix_(test, np.searchsorted(self.classes_, m.classes_))] = m.predict_proba(X[test])
        return oof

    def _fit_calibrators(self, oof, y, how: str) -> list:
        from sklearn.calibration import _SigmoidCalibration  # the calibrator CalibratedClassifierCV fits
        from sklearn.isotonic import IsotonicRegression

        cols = [1] if len(self.classes_) == 2 else range(len(self.classes_))
        out = []
        for c in cols:
            cal = _SigmoidCalibration() if how == "sigmoid" else IsotonicRegression(out_of_bounds="clip")
            out.append(cal.fit(oof[:, c], (y == self.classes_[c]).astype(float)))
        return out

    def _calibrated(self, proba: np.ndarray) -> np.ndarray:
        """``proba`` through the calibrators, as ``CalibratedClassifierCV`` combines them (binary: p0 = 1 - p1;
        multi-class: normalised, uniform where every calibrated value is 0)."""
        if len(self.classes_) == 2:
            p1 = np.clip(self.calibrators_[0].predict(proba[:, 1]), 0, 1)
            return np.column_stack([1 - p1, p1])
        p = np.column_stack([cal.predict(proba[:, c]) for c, cal in enumerate(self.calibrators_)])
        total = p.sum(axis=1, keepdims=True)
        uniform = np.full_like(p, 1.0 / p.shape[1])
        return np.divide(p, total, out=uniform, where=total > 0)

    def predict_proba(self, X):
        """Class probabilities (calibrated when ``calibrate`` is not none)."""
        check_is_fitted(self)
        p = self.model_.predict_proba(X)
        return p if self.calibrators_ is None else self._calibrated(p)

    def predict(self, X):
        """The positive class where its probability reaches ``threshold_``; else the most probable class."""
        p = self.predict_proba(X)
        if self.threshold_ is None:
            return self.classes_[p.argmax(axis=1)]
        return np.where(
            p[:, self.positive] >= self.threshold_, self.classes_[self.positive], self.classes_[1 - self.positive]
        )


def operated(estimator, cfg, classes: list):
    """``estimator`` wrapped in :class:`Operated` when the settings ``cfg`` (``threshold``, ``calibrate``,
    ``positive``, ``inner_k``, ``seed``) ask for more than the default (0.5, none); FitError, before any fitting,
    for a threshold on a multi-class problem."""
    rule = parse_threshold(cfg.threshold)
    if CALIBRATIONS.check(cfg.calibrate) == "none" and rule.default:
        return estimator
    if len(classes) != 2 and not rule.default:
        raise FitError(
            f"--threshold {rule} chooses an operating point of a binary problem; these labels have "
            f"{len(classes)} classes ({', '.join(classes)}). Drop --threshold (the most probable class is predicted)."
        )
    positive = classes.index(cfg.positive) if cfg.positive is not None else 1
    return Operated(estimator, cfg.calibrate, str(rule), positive, cfg.inner_k, cfg.seed)


def describe_decision(cfg) -> str:
    """How the predicted class is decided under settings ``cfg``, for the results' protocol."""
    if getattr(cfg, "target", "classification") != "classification":
        return "the predicted value (no classes to decide)"
    rule = parse_threshold(getattr(cfg, "threshold", "0.5"))
    if rule.default:
        return "most probable class"
    if not rule.learned:
        return f"threshold {rule} on the positive class's probability"
    return (
        f"threshold by {rule}, chosen by a {cfg.inner_k}-fold inner CV of each training set "
        "(for the test split: of the development rows)"
    )
