"""A fine-tuning run's files: those of a fit (results.json, folds.json, prediction CSVs, report) plus
curves.json; the report draws curves.png from the result alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from featx.evaluate.runs.outputs import Predictions, write_fit_outputs
from featx.results.codec import to_json
from featx.results.runs import FitResult


def write_finetune(result: FitResult, dev, cvres, test, test_proba: dict, out: Path) -> FitResult:
    """Write everything under ``out``; returns the result with its outputs recorded."""
    out.mkdir(parents=True, exist_ok=True)
    curves = out / "curves.json"
    curves.write_text(
        json.dumps(
            [
                {
                    "repeat": r.repeat,
                    "fold": r.fold,
                    "best_epoch": r.best_epoch,
                    "history": to_json(r.history),
                    "summary": to_json(r.summary),
                }
                for r in result.finetune.runs
            ],
            indent=1,
        )
    )
    name = result.feature_set
    preds = Predictions(
        dev, {name: cvres}, {name: np.ones(len(dev), bool)}, test, test_proba, {name: np.ones(len(test), bool)}
    )
    return write_fit_outputs(result, preds, out, written={"curves_json": curves})
