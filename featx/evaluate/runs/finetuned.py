"""A ``featx finetune`` run as a bench row: its out-of-fold predictions, scored on the bench's own folds."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.errors import FeatxError, FitError
from featx.evaluate.protocol.cv import mean_over_repeats
from featx.evaluate.protocol.folds import Folds
from featx.evaluate.protocol.task import Task
from featx.evaluate.statistics.comparisons import Scored
from featx.evaluate.statistics.resampling import Resampling
from featx.evaluate.statistics.scoring import evaluate, fold_scores
from featx.results.bench import CellResult
from featx.results.io import load_results
from featx.results.runs import FitResult
from featx.store.feature_set import FeatureSet


@dataclass(frozen=True)
class FinetunedRun:
    """A read fine-tuning run folder: its results and out-of-fold rows."""

    folder: Path
    result: FitResult
    rows: list


def read_finetuned(run: str | Path) -> FinetunedRun:
    """The results and out-of-fold predictions of a ``featx finetune`` output folder."""
    run = Path(run)
    try:
        result = load_results(run / "results.json")
        with open(run / "oof_predictions.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, FeatxError) as exc:
        raise FitError(f"{run}: not a 'featx finetune' output folder ({exc}).") from None
    if result.type != "finetune":
        raise FitError(f"{run}/results.json is a {result.type!r} result, not a 'featx finetune' one.")
    return FinetunedRun(run, result, rows)


def finetuned_cell(run: FinetunedRun, dev: FeatureSet, task: Task, boot: Resampling, has_test: bool) -> Scored:
    """The run's row, scored like the other cells. Its folds must be the bench's (same samples, same folds)."""
    res, classes, folds = run.result, list(task.classes), task.folds
    if list(res.classes) != classes:
        raise FitError(f"{run.folder}: classes {list(res.classes)} differ from the bench's {classes}.")
    theirs = Folds.from_dict(res.folds, dev.ids, where=f"{run.folder}/results.json")
    if theirs.fold_of.shape != folds.fold_of.shape or (theirs.fold_of != folds.fold_of).any():
        raise FitError(
            f"{run.folder} was fine-tuned on other folds than this bench's ({res.protocol.folds}); rerun "
            f"it with --folds from this bench's folds.json, or bench with --folds {run.folder}/folds.json."
        )
    index = {i: k for k, i in enumerate(dev.ids.tolist())}
    proba = np.full((folds.repeats, len(dev), len(classes)), np.nan)
    for row in run.rows:
        if row["id"] in index:
            proba[int(row["repeat"]), index[row["id"]]] = [float(row[f"p_{c}"]) for c in classes]
    if np.isnan(proba[folds.fold_of >= 0][:, 0]).any():
        raise FitError(
            f"{run.folder}/oof_predictions.csv lacks predictions of some tested samples; rerun the fine-tuning."
        )
    fold_auc = fold_scores(task, proba)
    cell = CellResult(
        feature_set=res.feature_set,
        head="fine-tuned",
        kind="finetune",
        n_features=res.n_features,
        seconds=res.finetune.seconds if res.finetune else 0.0,
        cv=evaluate(task, proba, boot),
        fold_auc=tuple(fold_auc.tolist()),
        test=res.test if has_test and res.n_test else None,
        run=str(run.folder),
    )
    return Scored(cell, mean_over_repeats(proba), fold_auc, proba)
