"""A run's folder: results.json, folds.json, out-of-fold and test prediction CSVs, and the report.

``fit`` and ``finetune`` write the same files (:func:`write_fit_outputs`), ``bench`` its own table
(:mod:`featx.evaluate.runs.bench`). The outputs' paths are recorded in the result before it is written.
"""

from __future__ import annotations

import csv
import json
import platform
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from featx.evaluate.statistics.metrics import predicted_classes
from featx.evaluate.statistics.regression import REGRESSION_KEYS
from featx.evaluate.statistics.survival import SURVIVAL_KEYS
from featx.report.write import write_report
from featx.results.bench import BenchResult
from featx.results.io import write_results
from featx.results.runs import FitResult
from featx.store.feature_set import FeatureSet


def versions() -> dict:
    """Versions of what computes the numbers, for the provenance block."""
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "scipy", "scikit-learn", "xgboost-cpu", "xgboost", "skops"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


@dataclass
class Predictions:
    """What the prediction CSVs are written from: out-of-fold results per unit (sequence model) and test rows."""

    dev: FeatureSet
    cvres: dict  # unit -> CVResult
    units: dict  # unit -> boolean mask over dev
    test: FeatureSet
    test_proba: dict  # unit -> (n_unit_test, C)
    test_units: dict  # unit -> boolean mask over test
    fused: tuple | None = None  # (subjects, probabilities) of a fused test split
    thresholds: dict | None = None  # unit -> the threshold its refit chose on the development rows (or None)


def write_fit_outputs(result: FitResult, preds: Predictions, out: Path, written: dict | None = None) -> FitResult:
    """Write everything under ``out``; returns the result with ``outputs`` (the paths) filled in.

    ``written``: files the caller already wrote under ``out`` (name -> path), recorded with the others.
    """
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "results.json", "folds": out / "folds.json", "oof": out / "oof_predictions.csv"}
    paths["folds"].write_text(json.dumps(result.folds))
    classes = list(result.classes)
    positive = result.cv.pooled.positive
    if result.target.kind != "classification":
        _write_values(paths["oof"], preds, result.target)
    else:
        _write_oof(paths["oof"], preds, classes, positive)
    if len(preds.test):
        paths["test_predictions"] = out / "test_predictions.csv"
        if result.target.kind != "classification":
            _write_values(paths["test_predictions"], preds, result.target, test=True)
        else:
            _write_test(paths["test_predictions"], preds, classes, positive)
        if preds.fused is not None:
            paths["test_fused"] = out / "test_predictions_fused.csv"
            with _csv(paths["test_fused"], ["subject", "predicted"], classes) as w:
                for s, p in zip(*preds.fused):
                    w.writerow([s, classes[int(p.argmax())]] + [f"{v:.6f}" for v in p])
    return _report_and_results(result, out, {**paths, **(written or {})})


def _report_and_results(result, out: Path, paths: dict):
    """The result with ``paths`` and the report's files as its outputs; the report, then results.json, written."""
    result = replace(result, outputs={k: str(v) for k, v in paths.items()})
    report = write_report(result, out)
    result = replace(result, outputs={**result.outputs, **{k: str(v) for k, v in report.items()}})
    write_results(result, paths["results"])
    return result


def _write_oof(path: Path, preds: Predictions, classes: list, positive) -> None:
    dev = preds.dev
    with _csv(path, ["id", "label", "subject", "sequence", "repeat", "fold", "predicted"], classes) as w:
        for name, res in preds.cvres.items():
            sel = np.flatnonzero(preds.units[name])
            for r in range(res.proba.shape[0]):
                thr = None if res.thresholds is None else res.thresholds[r]
                decided = predicted_classes(res.proba[r], classes, positive, thr)
                for j, i in enumerate(sel):
                    p = res.proba[r, j]
                    if not np.isnan(p[0]):
                        w.writerow(
                            [
                                dev.ids[i],
                                dev.labels[i],
                                dev.subjects[i],
                                dev.sequences[i],
                                r,
                                int(res.folds.fold_of[r, j]),
                                classes[int(decided[j])],
                            ]
                            + [f"{v:.6f}" for v in p]
                        )


def _write_values(path: Path, preds: Predictions, target, test: bool = False) -> None:
    """A regression's or a survival target's predictions beside each row's truth (out-of-fold: per repeat and fold;
    ``test``: of the held-out test rows). A regression: the true value and the predicted one; survival: the time
    and event, the risk score, the fold's cut-off, the risk group and the survival probability at each evaluated
    time."""
    fs = preds.test if test else preds.dev
    survival = target.kind == "survival"
    truth = [target.time, target.event] if survival else [target.value]
    truth_cols = [fs.outcomes[c] for c in truth]
    outputs = ["risk", "cutoff", "risk_group", *(f"S({t:g})" for t in target.times)] if survival else ["predicted"]

    def cells(p) -> list:
        if not survival:
            return [f"{p[0]:.6f}"]
        return [f"{p[0]:.6f}", f"{p[1]:.6f}", "high" if p[0] > p[1] else "low", *(f"{v:.6f}" for v in p[2:])]

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        keys = ["id", *truth, "subject", "sequence"]
        if test:
            w.writerow(keys + outputs)
            for name, m in preds.test_units.items():
                for j, i in enumerate(np.flatnonzero(m)):
                    row = [fs.ids[i], *(c[i] for c in truth_cols), fs.subjects[i], fs.sequences[i]]
                    w.writerow(row + cells(preds.test_proba[name][j]))
            return
        w.writerow(keys + ["repeat", "fold"] + outputs)
        for name, res in preds.cvres.items():
            sel = np.flatnonzero(preds.units[name])
            for r in range(res.proba.shape[0]):
                for j, i in enumerate(sel):
                    p = res.proba[r, j]
                    if not np.isnan(p[0]):
                        row = [fs.ids[i], *(c[i] for c in truth_cols), fs.subjects[i], fs.sequences[i], r]
                        w.writerow(row + [int(res.folds.fold_of[r, j])] + cells(p))


def _write_test(path: Path, preds: Predictions, classes: list, positive) -> None:
    test = preds.test
    with _csv(path, ["id", "label", "subject", "sequence", "predicted"], classes) as w:
        for name, m in preds.test_units.items():
            thr = (preds.thresholds or {}).get(name)
            decided = predicted_classes(preds.test_proba[name], classes, positive, thr)
            for j, i in enumerate(np.flatnonzero(m)):
                p = preds.test_proba[name][j]
                w.writerow(
                    [test.ids[i], test.labels[i], test.subjects[i], test.sequences[i], classes[int(decided[j])]]
                    + [f"{v:.6f}" for v in p]
                )


class _csv:
    """``with _csv(path, columns, classes) as writer``: a CSV with one probability column per class."""

    def __init__(self, path: Path, columns: list, classes: list):
        self.path, self.header = path, columns + [f"p_{c}" for c in classes]

    def __enter__(self):
        self.fh = open(self.path, "w", newline="", encoding="utf-8")
        w = csv.writer(self.fh)
        w.writerow(self.header)
        return w

    def __exit__(self, *exc):
        self.fh.close()


BENCH_KEYS = ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "brier")


def write_bench_outputs(result: BenchResult, out: Path, dev: FeatureSet, oof: dict) -> BenchResult:
    """results.json, folds.json, bench.csv (one row per cell, ranked), oof_predictions.csv and the report."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out / "results.json",
        "folds": out / "folds.json",
        "table": out / "bench.csv",
        "oof": out / "oof_predictions.csv",
    }
    paths["folds"].write_text(json.dumps(result.folds))
    if result.target.kind != "classification":
        _write_unclassed_table(paths["table"], result)
    else:
        _write_bench_table(paths["table"], result)
    _write_bench_oof(paths["oof"], result, dev, oof)
    return _report_and_results(result, out, paths)


def _write_unclassed_table(path: Path, result: BenchResult) -> None:
    """bench.csv of a regression or a survival target: each cell's metrics with their bootstrap intervals, its
    primary metric per fold (MAE; Harrell's C), the test split's metrics."""
    survival = result.target.kind == "survival"
    keys, main = (SURVIVAL_KEYS, "harrell_c") if survival else (REGRESSION_KEYS, "mae")
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["rank", "feature_set", "head", "kind", "n_features"]
            + [f"cv_{k}{end}" for k in keys for end in ("", "_lo", "_hi")]
            + ["cv_logrank_p" if survival else "cv_bias", f"fold_{main}_mean", f"fold_{main}_sd"]
            + [f"test_{k}" for k in keys]
            + ["seconds", "not_computable"]
        )
        for c in result.cells:
            p, fold = c.cv.pooled, c.cv.per_fold.get(main)
            side = ((p.risk_groups or {}).get("logrank") or {}).get("p") if survival else p.bias
            w.writerow(
                [c.rank, c.feature_set, c.head, c.kind, c.n_features]
                + [_r(v) for k in keys for v in (p.value(k), *(p.interval(k) or (None, None)))]
                + [_r(side), _r(fold.mean if fold else None), _r(fold.sd if fold else None)]
                + [_r(c.test.value(k) if c.test else None) for k in keys]
                + [f"{c.seconds:.2f}", "; ".join(f"{k}: {why}" for k, why in p.not_computable.items())]
            )


def _write_bench_table(path: Path, result: BenchResult) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["rank", "feature_set", "head", "kind", "n_features"]
            + [f"cv_{k}" for k in BENCH_KEYS]
            + [
                "cv_auc_delong_lo",
                "cv_auc_delong_hi",
                "cv_auc_boot_lo",
                "cv_auc_boot_hi",
                "fold_auc_mean",
                "fold_auc_sd",
                "cv_calibration_slope",
                "cv_calibration_intercept",
                "cv_threshold",
                "test_auc",
                "test_accuracy",
                "test_brier",
                "test_calibration_slope",
                "test_threshold",
                "seconds",
                "not_computable",
            ]
        )
        for c in result.cells:
            p, fold = c.cv.pooled, c.cv.per_fold.get("auc")
            lo, hi = p.auc_ci or (None, None)
            blo, bhi = p.interval("auc") or (None, None)
            w.writerow(
                [c.rank, c.feature_set, c.head, c.kind, c.n_features]
                + [_r(p.value(k)) for k in BENCH_KEYS]
                + [
                    _r(lo),
                    _r(hi),
                    _r(blo),
                    _r(bhi),
                    _r(fold.mean if fold else None),
                    _r(fold.sd if fold else None),
                    _r(p.calibration_slope),
                    _r(p.calibration_intercept),
                    _r(p.threshold),
                    _r(c.test.auc if c.test else None),
                    _r(c.test.accuracy if c.test else None),
                    _r(c.test.brier if c.test else None),
                    _r(c.test.calibration_slope if c.test else None),
                    _r(c.test.threshold if c.test else None),
                    f"{c.seconds:.2f}",
                    "; ".join(f"{k}: {why}" for k, why in p.not_computable.items()),
                ]
            )


def _write_bench_oof(path: Path, result: BenchResult, dev: FeatureSet, oof: dict) -> None:
    """One row per (sample, repeat): its truth and fold, then each cell's out-of-fold probability (of the positive
    class when binary, of every class otherwise; a regression: its predicted value, ``cell:p_predicted``; a survival
    target: its risk score, ``cell:p_risk``)."""
    classes = list(result.classes)
    shown = [classes.index(result.positive)] if len(classes) == 2 else list(range(len(classes)))
    truth = {"label": dev.labels}
    if result.target.kind == "regression":  # one predicted value per cell, beside the true one
        classes, shown = ["predicted"], [0]
        truth = {result.target.value: dev.outcomes[result.target.value]}
    elif result.target.kind == "survival":  # each cell's risk score, beside the time and the event
        classes, shown = ["risk"], [0]
        truth = {c: dev.outcomes[c] for c in (result.target.time, result.target.event)}
    fold_of = np.array([result.folds["fold_of"][str(i)] for i in dev.ids]).T
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["id", *truth, "subject", "repeat", "fold"] + [f"{cell}:p_{classes[k]}" for cell in oof for k in shown]
        )
        for r in range(fold_of.shape[0]):
            for i in np.flatnonzero(fold_of[r] >= 0):
                w.writerow(
                    [dev.ids[i], *(v[i] for v in truth.values()), dev.subjects[i], r, int(fold_of[r, i])]
                    + [f"{p[r, i, k]:.6f}" for p in oof.values() for k in shown]
                )


def _r(v) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.4f}"
