"""A fine-tuning run's files: those of a fit (results.json, folds.json, prediction CSVs, report) plus
curves.json and curves.png."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from featx.evaluate.outputs import write_outputs


def write_finetune(results: dict, dev, cvres: dict, test, test_proba: dict, out: Path) -> dict:
    """Write everything under ``out``; the report draws the curves from ``results`` alone."""
    out.mkdir(parents=True, exist_ok=True)
    curves = out / "curves.json"
    curves.write_text(json.dumps([{k: r[k] for k in ("repeat", "fold", "best_epoch", "history", "summary")}
                                  for r in results["finetune"]["runs"]], indent=1))
    units = {name: np.ones(len(dev), bool) for name in cvres}
    test_units = {name: np.ones(len(test), bool) for name in cvres}
    paths = write_outputs(results, dev, cvres, units, test, test_proba, test_units, out)
    results["outputs"]["curves_json"] = str(curves)
    paths["results"].write_text(json.dumps(results, indent=2))
    return paths
