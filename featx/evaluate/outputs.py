"""A fit's files: results.json, folds.json, out-of-fold and test prediction CSVs, and the report."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from featx.store.feature_set import FeatureSet


def versions() -> dict:
    """Versions of what computes the numbers, for the provenance block."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("numpy", "scipy", "scikit-learn", "xgboost-cpu", "xgboost", "skops"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def write_outputs(results: dict, dev: FeatureSet, cvres: dict, units: dict, test: FeatureSet, test_proba: dict,
                  test_units: dict, out: Path) -> dict:
    """Write everything under ``out``; records the paths in ``results['outputs']`` and returns them."""
    from featx.report.html import write_report

    out.mkdir(parents=True, exist_ok=True)
    classes = results["classes"]
    paths = {"results": out / "results.json", "folds": out / "folds.json", "oof": out / "oof_predictions.csv"}
    paths["folds"].write_text(json.dumps(results["folds"]))
    with _csv(paths["oof"], ["id", "label", "subject", "sequence", "repeat", "fold", "predicted"], classes) as w:
        for name, res in cvres.items():
            sel = np.flatnonzero(units[name])
            for r in range(res.proba.shape[0]):
                for j, i in enumerate(sel):
                    p = res.proba[r, j]
                    if not np.isnan(p[0]):
                        w.writerow([dev.ids[i], dev.labels[i], dev.subjects[i], dev.sequences[i], r,
                                    int(res.folds.fold_of[r, j]), classes[int(p.argmax())]] + [f"{v:.6f}" for v in p])
    if len(test):
        paths["test_predictions"] = out / "test_predictions.csv"
        with _csv(paths["test_predictions"], ["id", "label", "subject", "sequence", "predicted"], classes) as w:
            for name, m in test_units.items():
                for j, i in enumerate(np.flatnonzero(m)):
                    p = test_proba[name][j]
                    w.writerow([test.ids[i], test.labels[i], test.subjects[i], test.sequences[i],
                                classes[int(p.argmax())]] + [f"{v:.6f}" for v in p])
        if "fused" in test_proba:
            paths["test_fused"] = out / "test_predictions_fused.csv"
            names, proba = test_proba["fused"]
            with _csv(paths["test_fused"], ["subject", "predicted"], classes) as w:
                for s, p in zip(names, proba):
                    w.writerow([s, classes[int(p.argmax())]] + [f"{v:.6f}" for v in p])
    results["outputs"] = {k: str(v) for k, v in paths.items()}
    results["outputs"].update({k: str(v) for k, v in write_report(results, out).items()})
    paths["results"].write_text(json.dumps(results, indent=2))
    return paths


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
