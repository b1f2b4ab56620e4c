"""The metrics of a continuous target (``--target regression``), their bootstrap intervals, and the paired bootstrap of
two cells' MAE difference.

Every metric is scikit-learn's or SciPy's own (``mean_absolute_error``, ``r2_score``, ``pearsonr``, ``spearmanr``),
computed on each resample of whole subjects (:func:`~featx.evaluate.statistics.resampling.resample_weights`: a
resample is how often each row was drawn, so its rows are repeated that often), never re-implemented.
"""

from __future__ import annotations

import warnings

import numpy as np

from featx.evaluate.protocol.task import Task
from featx.evaluate.statistics.resampling import Resampling, paired_result, percentile_cis, resample_rows

#: the summary metrics of a regression, in table order
REGRESSION_KEYS = ("mae", "rmse", "r2", "pearson", "spearman")


def regression_metrics(y, pred) -> dict:
    """MAE, RMSE, R², Pearson's r and Spearman's rho of ``pred`` against the true values ``y``, with the Bland-Altman
    ``bias`` (mean of predicted - true) and its 95% limits of agreement ``loa`` (bias ± 1.96 sd). A metric a constant
    column leaves undefined (a correlation, R² of one value) is None with the reason in ``not_computable``."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y, pred = np.asarray(y, float), np.asarray(pred, float).reshape(-1)
    out: dict = {"n": int(len(y)), "classes": (), "not_computable": {}}
    if not len(y):
        return out
    diff = pred - y
    out["mae"] = float(mean_absolute_error(y, pred))
    out["rmse"] = float(np.sqrt(mean_squared_error(y, pred)))
    out["bias"] = float(diff.mean())
    sd = float(diff.std(ddof=1)) if len(y) > 1 else 0.0
    out["loa"] = [out["bias"] - 1.96 * sd, out["bias"] + 1.96 * sd]
    if np.ptp(y) == 0:
        out["not_computable"]["r2"] = "every true value is the same"
    else:
        out["r2"] = float(r2_score(y, pred))
    if np.ptp(y) == 0 or np.ptp(pred) == 0 or len(y) < 3:
        why = "a constant column (every prediction or every true value the same)" if len(y) >= 3 else "< 3 rows"
        out["not_computable"].update(pearson=why, spearman=why)
    else:
        out["pearson"] = float(pearsonr(y, pred).statistic)
        out["spearman"] = float(spearmanr(y, pred).statistic)
    if not out["not_computable"]:
        del out["not_computable"]
    return out


def regression_bootstrap(task: Task, pred, boot: Resampling, level: float = 0.95) -> dict:
    """Percentile-bootstrap intervals of :data:`REGRESSION_KEYS`, resampling whole units (``task.groups``)."""
    pred = np.asarray(pred, float).reshape(-1)
    draws, unit = resample_rows(task, boot)
    stats = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a resample of constant values: that metric is left out of it
        for idx in draws:
            m = regression_metrics(task.y[idx], pred[idx])
            stats.append([m.get(k, np.nan) if m.get(k) is not None else np.nan for k in REGRESSION_KEYS])
    ci = percentile_cis(stats, REGRESSION_KEYS, level)
    return {"n_boot": boot.n_boot, "unit": unit, "level": level, "ci": ci}


def paired_mae_bootstrap(task: Task, pa, pb, boot: Resampling):
    """(PairedBootstrap, "") of MAE(a) - MAE(b) on ``task``'s rows, both scored on the same resamples of units, or
    (None, why not). ``pa``/``pb``: predictions, or lists of them (draws of one cell): a cell's MAE is then the mean
    of its draws' MAEs. Negative: a has the smaller error. The two-sided p is twice the smaller tail around 0."""
    draws_a, draws_b = (
        [np.asarray(q, float).reshape(-1) for q in (p if isinstance(p, list) else [p])] for p in (pa, pb)
    )
    y = task.y

    def mae(idx, draws):
        return float(np.mean([np.abs(d[idx] - y[idx]).mean() for d in draws]))

    resamples, unit = resample_rows(task, boot)
    d = [mae(idx, draws_a) - mae(idx, draws_b) for idx in resamples]
    everything = np.arange(len(y))
    return paired_result(d, mae(everything, draws_a) - mae(everything, draws_b), unit, boot.n_boot, "mae")
