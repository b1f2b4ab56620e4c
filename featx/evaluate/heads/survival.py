"""The heads of a time-to-event target (``--target survival``): scikit-survival's models behind the heads' shared steps.

:class:`SurvivalHead` is standardisation -> optional PCA -> a scikit-survival estimator (``Steps``). Beside
the risk score (``predict``: higher, sooner) it keeps what the evaluation needs from its own training rows only:

* ``cutoff_``: the ``risk_cut`` quantile of its training rows' risk scores, the risk-group cut-off, so a fold's
  groups never depend on the rows it predicts;
* with ``times``, :meth:`predict_outputs` also gives each row's survival probability at those times (for the
  integrated Brier score), from the model's own survival function.

:class:`CoxnetCV` is scikit-survival's elastic-net Cox model with its penalty chosen by an inner K-fold CV of the
training rows over the model's own regularisation path (grouped by subject when the caller passes ``groups``), as in
scikit-survival's documentation; nothing about the path or the fit is re-implemented. scikit-survival is imported
when a survival head is built (``featx[survival]``).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from featx.evaluate.heads.estimators import Steps


def structured(y) -> np.ndarray:
    """``y`` as scikit-survival's structured array (``event`` bool, ``time`` float)."""
    from sksurv.util import Surv

    y = np.asarray(y)
    if y.dtype.names is None:
        raise ValueError("a survival head needs y as a structured array of (event, time): sksurv.util.Surv")
    event, time = y.dtype.names[:2]
    return Surv.from_arrays(y[event].astype(bool), y[time].astype(float), name_event="event", name_time="time")


def harrell(y, risk) -> float:
    """Harrell's C of ``risk`` (higher: sooner) on the survival array ``y`` (scikit-survival's)."""
    from sksurv.metrics import concordance_index_censored

    y = structured(y)
    return float(concordance_index_censored(y["event"], y["time"], np.asarray(risk, float))[0])


class SurvivalHead(Steps):
    """Optional standardisation -> optional PCA -> a scikit-survival estimator (``clf``), as one estimator.

    Parameters are :class:`~featx.evaluate.heads.estimators.Steps`', and ``risk_cut`` (the quantile of the training
    rows' risk scores that splits low from high risk) and ``times`` (where :meth:`predict_outputs` evaluates each
    row's survival function).
    ``score`` is Harrell's C, which inner CVs (``--tune``) maximise.
    """

    _estimator_type = "survival"

    def __init__(self, clf=None, scale=True, pca=None, random_state=0, blocks=None, risk_cut=0.5, times=None):
        super().__init__(clf, scale, pca, random_state, blocks)
        self.risk_cut = risk_cut
        self.times = times

    def fit(self, X, y, groups=None):
        """Fit on features ``X`` (n, d) and the survival array ``y``; ``groups``: subjects, for a head's own inner CV."""
        from sksurv.linear_model import CoxPHSurvivalAnalysis

        X = validate_data(self, X)
        y = structured(y)
        if not y["event"].any():
            raise ValueError("a survival head needs at least one event among its training rows")
        self.pipeline_ = self._pipeline(X, CoxPHSurvivalAnalysis(alpha=1.0))
        params = {"clf__groups": groups} if groups is not None and _takes_groups(self.pipeline_.steps[-1][1]) else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a Cox fit near separation: its own warnings
            self.pipeline_.fit(X, y, **params)
        self.cutoff_ = float(np.quantile(self.pipeline_.predict(X), self.risk_cut))
        return self

    def predict(self, X):
        """Each row's risk score (higher: the event sooner)."""
        check_is_fitted(self)
        return self.pipeline_.predict(validate_data(self, X, reset=False))

    def predict_survival_function(self, X):
        """Each row's survival function (scikit-survival's step functions)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.pipeline_.predict_survival_function(X)

    def predict_outputs(self, X) -> np.ndarray:
        """(n, 2 + len(times)): the risk score, this model's risk-group cut-off, then the survival probability at each
        of ``times`` (a time beyond the model's follow-up takes its last estimate)."""
        risk = self.predict(X)
        out = np.column_stack([risk, np.full(len(risk), self.cutoff_)])
        if not self.times:
            return out
        times = np.asarray(self.times, float)
        surv = np.ones((len(risk), len(times)))
        for i, fn in enumerate(self.predict_survival_function(X)):
            surv[i] = fn(np.clip(times, fn.x[0], fn.x[-1]))
        return np.column_stack([out, surv])

    def score(self, X, y):
        """Harrell's C of the risk scores."""
        return harrell(y, self.predict(X))


def _takes_groups(est) -> bool:
    import inspect

    return "groups" in inspect.signature(est.fit).parameters


class CoxnetCV(BaseEstimator):
    """scikit-survival's ``CoxnetSurvivalAnalysis`` (elastic net) with the penalty chosen by an inner CV.

        The path of ``n_alphas`` penalties is fitted on all training rows; an inner ``inner_k``-fold CV (grouped by
        ``groups`` when given) scores each penalty by Harrell's C on its held-out rows, and the final model is the
    XX
        diverge (many more features than rows), the path stops at ten times stronger ones (``alpha_min_ratio_``).
    """

    def __init__(self, l1_ratio=0.5, n_alphas=30, alpha_min_ratio=0.01, inner_k=5, random_state=0):
        self.l1_ratio = l1_ratio
        self.n_alphas = n_alphas
        self.alpha_min_ratio = alpha_min_ratio
        self.inner_k = inner_k
        self.random_state = random_state

    def _coxnet(self, ratio=None, **kw):
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        ratio = self.alpha_min_ratio if ratio is None else ratio
        return CoxnetSurvivalAnalysis(l1_ratio=self.l1_ratio, alpha_min_ratio=ratio, **kw)

    def fit(self, X, y, groups=None):
        from sklearn.model_selection import GroupKFold, KFold

        X, y = np.asarray(X, float), structured(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the path's convergence notes at its weakest penalties
            ratio = self.alpha_min_ratio
            while True:
                try:
                    path = self._coxnet(n_alphas=self.n_alphas, ratio=ratio, fit_baseline_model=True).fit(X, y)
                    break
                except ArithmeticError:  # the weakest penalties let the weights grow without bound
                    if ratio >= 0.5:
                        raise
                    ratio = min(0.5, ratio * 10)
            self.alpha_min_ratio_ = ratio
            alphas = path.alphas_
            units = len(np.unique(groups)) if groups is not None else len(X)
            k = min(self.inner_k, units)
            scores = np.full((k, len(alphas)), np.nan)
            if k >= 2:
                splitter = (GroupKFold if groups is not None else KFold)(
                    k, shuffle=True, random_state=self.random_state
                )
                for f, (train, test) in enumerate(splitter.split(X, groups=groups)):
                    if not y["event"][train].any() or not y["event"][test].any():
                        continue
                    try:
                        model = self._coxnet(alphas=alphas).fit(X[train], y[train])
                    except ArithmeticError:  # this inner fold diverges on the path: it scores nothing
                        continue
                    for j, a in enumerate(model.alphas_):
                        try:
                            scores[f, j] = harrell(y[test], model.predict(X[test], alpha=a))
                        except ValueError:  # no comparable pair in this inner fold
                            pass
            mean = np.nanmean(scores, axis=0) if np.isfinite(scores).any() else np.zeros(len(alphas))
            best = int(np.nanargmax(np.where(np.isfinite(mean), mean, -np.inf)))
            self.alpha_ = float(alphas[best])
            self.inner_c_ = float(mean[best]) if np.isfinite(mean[best]) else None
            self.model_ = path  # the whole path, with its baseline models: read at alpha_
        return self

    def predict(self, X):
        check_is_fitted(self)
        return self.model_.predict(np.asarray(X, float), alpha=self.alpha_)

    def predict_survival_function(self, X):
        check_is_fitted(self)
        return self.model_.predict_survival_function(np.asarray(X, float), alpha=self.alpha_)
