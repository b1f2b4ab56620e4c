"""The metrics of a time-to-event target (``--target survival``), their bootstrap intervals, the risk groups with
their log-rank test and Kaplan-Meier curves, and the paired bootstrap of two cells' C-index difference.

Every metric is scikit-survival's own function (``concordance_index_censored``, ``concordance_index_ipcw``,
``cumulative_dynamic_auc``, ``integrated_brier_score``, ``compare_survival``, ``kaplan_meier_estimator``); featx only
chooses the rows, resamples whole subjects and says why a metric cannot be computed.

Uno's C, the time-dependent AUC and the integrated Brier score weight by the censoring distribution, estimated
(by scikit-survival) from ``task.reference``: the development rows of the run, for out-of-fold and test rows alike.
A prediction row holds the risk score, the fold's risk-group cut-off, then the survival probability at each of
``task.times`` (:meth:`~featx.evaluate.heads.survival.SurvivalHead.predict_outputs`).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from featx.evaluate.protocol.task import Task
from featx.evaluate.statistics.resampling import Resampling, paired_result, percentile_cis, resample_rows

#: the summary metrics of a survival target, in table order
SURVIVAL_KEYS = ("harrell_c", "uno_c", "td_auc_mean", "ibs")


def survival_metrics(task: Task, pred) -> dict:
    """Harrell's and Uno's C of the risk scores, the time-dependent AUC at ``task.horizons`` (and their mean) and the
    integrated Brier score over ``task.times``, on the rows of ``task``; a metric these rows cannot give is left out
    with the reason in ``not_computable``."""
    from sksurv.metrics import (
        concordance_index_censored,
        concordance_index_ipcw,
        cumulative_dynamic_auc,
        integrated_brier_score,
    )

    y, pred = task.y, np.asarray(pred, float)
    risk = pred[:, 0]
    out: dict = {"n": int(len(y)), "classes": (), "n_events": int(y["event"].sum()), "not_computable": {}}
    why = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out["harrell_c"] = float(concordance_index_censored(y["event"], y["time"], risk)[0])
        except (ValueError, ZeroDivisionError) as exc:
            why["harrell_c"] = str(exc)
        reference = task.reference if task.reference is not None else y
        tau = float(reference["time"][reference["event"]].max()) if reference["event"].any() else None
        try:
            out["uno_c"] = float(concordance_index_ipcw(reference, y, risk, tau=tau)[0])
        except (ValueError, ZeroDivisionError) as exc:
            why["uno_c"] = str(exc)
        horizons = _inside(task.horizons, y)
        if horizons:
            try:
                aucs, mean = cumulative_dynamic_auc(reference, y, risk, np.asarray(horizons))
                out["td_auc"] = {f"{h:g}": float(a) for h, a in zip(horizons, aucs)}
                out["td_auc_mean"] = float(mean)
            except (ValueError, ZeroDivisionError) as exc:
                why["td_auc_mean"] = str(exc)
        elif task.horizons:
            why["td_auc_mean"] = (
                f"no horizon ({', '.join(f'{h:g}' for h in task.horizons)}) inside these rows' follow-up"
            )
        times = _inside(task.times, y)
        if len(times) >= 2 and pred.shape[1] > 2:
            keep = [task.times.index(t) for t in times]
            try:
                out["ibs"] = float(integrated_brier_score(reference, y, pred[:, 2:][:, keep], np.asarray(times)))
            except (ValueError, ZeroDivisionError) as exc:
                why["ibs"] = str(exc)
        elif pred.shape[1] > 2:
            why["ibs"] = "fewer than 2 of the evaluation times inside these rows' follow-up"
    out["not_computable"] = {k: v for k, v in why.items() if v}
    if not out["not_computable"]:
        del out["not_computable"]
    return out


def _inside(times, y) -> list[float]:
    """The ``times`` strictly inside the follow-up of the rows ``y`` (where scikit-survival can weight them)."""
    if not len(y):
        return []
    lo, hi = float(y["time"].min()), float(y["time"].max())
    return [float(t) for t in times if lo <= t < hi]


def survival_bootstrap(task: Task, pred, boot: Resampling, level: float = 0.95) -> dict:
    """Percentile-bootstrap intervals of :data:`SURVIVAL_KEYS`, resampling whole units (``task.groups``)."""
    pred = np.asarray(pred, float)
    draws, unit = resample_rows(task, boot)
    stats = []
    for idx in draws:
        m = survival_metrics(replace(task, y=task.y[idx], groups=None, folds=None), pred[idx])
        stats.append([m.get(k, np.nan) for k in SURVIVAL_KEYS])
    ci = percentile_cis(stats, SURVIVAL_KEYS, level, needed=max(10, boot.n_boot // 10))
    return {"n_boot": boot.n_boot, "unit": unit, "level": level, "ci": ci}


def risk_groups(task: Task, pred, cut: float) -> dict:
    """Low and high risk by each row's own fold cut-off (``pred[:, 1]``, a quantile of that fold's training risk
    scores), the log-rank test between them and each group's Kaplan-Meier curve with its 95% band."""
    from sksurv.compare import compare_survival
    from sksurv.nonparametric import kaplan_meier_estimator

    y, pred = task.y, np.asarray(pred, float)
    high = pred[:, 0] > pred[:, 1]
    out: dict = {
        "quantile": cut,
        "rule": "risk above the cut-off its own training rows set",
        "n": {"low": int((~high).sum()), "high": int(high.sum())},
        "events": {"low": int(y["event"][~high].sum()), "high": int(y["event"][high].sum())},
        "curves": {},
    }
    for name, sel in (("low", ~high), ("high", high)):
        if sel.sum() >= 1:
            t, s, (lo, hi) = kaplan_meier_estimator(y["event"][sel], y["time"][sel], conf_type="log-log")
            out["curves"][name] = {
                "time": [float(v) for v in t],
                "survival": [float(v) for v in s],
                "lo": [float(v) for v in np.nan_to_num(lo, nan=0.0)],
                "hi": [float(v) for v in np.nan_to_num(hi, nan=1.0)],
            }
    if min(high.sum(), (~high).sum()) < 2 or not y["event"].any():
        out["logrank"] = None
        out["why"] = "a group has fewer than 2 rows, or no row has an event"
        return out
    chi2, p = compare_survival(y, high.astype(int))
    out["logrank"] = {"chi2": float(chi2), "p": float(p)}
    return out


def paired_c_bootstrap(task: Task, pa, pb, boot: Resampling):
    """(PairedBootstrap, "") of Harrell's C(a) - C(b) on ``task``'s rows, both on the same resamples of units, or
    (None, why not). ``pa``/``pb``: predictions, or lists of them (draws of one cell, ``bench --train-sizes``): a
    cell's C is then the mean of its draws'. The two-sided p is twice the smaller tail of the differences around 0."""
    from sksurv.metrics import concordance_index_censored

    y = task.y
    ra, rb = ([np.asarray(q, float)[:, 0] for q in (p if isinstance(p, list) else [p])] for p in (pa, pb))

    def c(idx, draws):
        try:
            return float(
                np.mean([concordance_index_censored(y["event"][idx], y["time"][idx], r[idx])[0] for r in draws])
            )
        except (ValueError, ZeroDivisionError):
            return np.nan

    resamples, unit = resample_rows(task, boot)
    d = [c(idx, ra) - c(idx, rb) for idx in resamples]
    everything = np.arange(len(y))
    full = c(everything, ra) - c(everything, rb)
    return paired_result(d, full, unit, boot.n_boot, "harrell_c", "with a comparable pair")
