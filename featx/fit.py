"""Store -> feature set -> head + cross-validation (+ held-out test) -> results and report.

Protocol: samples whose ``split`` is ``test`` are held out; stratified K-fold CV
(grouped by subject when subjects are known) runs on the rest; then the head is
refit on all non-test samples and scored once on the test samples.
"""
from __future__ import annotations

import csv
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sklearn.base import clone

from featx import __version__
from featx.cv import cross_validate, encode_labels, make_folds
from featx.errors import FitError
from featx.heads import get_head
from featx.manifest import short_list
from featx.metrics import classification_metrics, per_fold
from featx.progress import progress_bar
from featx.store import FeatureSet, FeatureStore

log = logging.getLogger(__name__)


def run_fit(
    store: str | Path,
    features: str,
    head: str = "logreg",
    cv: int = 10,
    seed: int = 0,
    out: str | Path | None = None,
    positive: str | None = None,
    progress: bool = True,
    extra: dict | None = None,
) -> dict:
    """Cross-validate ``head`` on feature set ``features`` of ``store``; write results to ``out``.

    Parameters
    ----------
    store : path
        A featx HDF5 store.
    features : str
        Feature-set name in the store (``featx store``/``extract`` print them).
    head : str
        Registered head name.
    cv : int
        Number of folds.
    seed : int
        Seed of the fold shuffling and of the head.
    out : path, optional
        Folder for ``results.json``, prediction CSVs and the HTML report.
    positive : str, optional
        Positive class for sensitivity/specificity (binary); default the second sorted class.
    progress : bool
        Show a progress bar over the folds.
    extra : dict, optional
        More JSON-able entries to record in the results (e.g. the extraction summary).

    Returns
    -------
    dict
        The results (also written as ``out/results.json``).
    """
    with FeatureStore(store) as st:
        fs = st.load(features)
    fs, dropped = fs.without_nonfinite_columns()
    if dropped:
        log.warning("%s: left out %d feature(s) that are NaN/inf in some rows (%s); 'featx store export' shows "
                    "them, each row's note says why", features, len(dropped), short_list(dropped))
    if fs.X.shape[1] == 0:
        raise FitError(f"Every feature of {features!r} is NaN/inf in some row; nothing to fit. Check the rows' notes.")
    labelled = fs.labels != ""
    if not labelled.all():
        log.warning("%d sample(s) of %s have no label and are left out", int((~labelled).sum()), features)
        fs = fs.subset(labelled)
    if len(fs) == 0:
        raise FitError(f"No labelled samples in feature set {features!r}. Give the manifest a 'label' column.")
    spec = get_head(head)
    is_test = fs.splits == "test"
    dev, test = fs.subset(~is_test), fs.subset(is_test)
    if len(dev) == 0:
        raise FitError("Every sample is in the 'test' split: nothing to cross-validate on. Mark some as train/val.")
    classes = sorted(set(dev.labels))
    if positive is not None and positive not in classes:
        raise FitError(f"--positive {positive!r} is not a label (labels: {', '.join(classes)}).")
    unseen = sorted(set(test.labels) - set(classes))
    if unseen:
        raise FitError(f"Test labels {unseen} never occur outside the test split; the head cannot learn them.")
    has_subjects = bool((dev.subjects != "").all())
    if not has_subjects:
        log.warning("no subject ids: each sample is its own group, so slices of one patient may leak across folds")
    folds = make_folds(dev.labels, dev.subjects if has_subjects else None, k=cv, seed=seed)
    estimator = spec.factory(seed)
    with progress_bar(f"{cv}-fold CV {features} + {head}", total=cv, enabled=progress) as bar:
        result = cross_validate(estimator, dev.X, dev.labels, folds, on_fold=bar.update)

    results = {
        "featx_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "store": str(Path(store).resolve()),
        "feature_set": features,
        "provenance": fs.provenance,
        "head": {"name": head, "description": spec.description, "estimator": repr(estimator)},
        "protocol": {
            "cv": cv, "seed": seed, "splitter": folds.splitter, "grouped_by_subject": folds.grouped,
            "held_out_test": bool(len(test)), "decision": "most probable class",
        },
        "classes": classes,
        "n_features": int(dev.X.shape[1]),
        "dropped_features": dropped,
        "n_dev": len(dev),
        "n_test": len(test),
        "cv": {
            "pooled": classification_metrics(result.y, result.proba, classes, positive),
            "per_fold": per_fold(result.y, result.proba, folds.fold_of, classes, positive),
            "fold_seconds": result.fold_seconds,
        },
        "test": None,
        "folds": folds.to_dict(dev.ids),
        **(extra or {}),
    }
    test_proba = None
    if len(test):
        model = clone(estimator).fit(dev.X, encode_labels(dev.labels, classes)[1])
        test_proba = np.zeros((len(test), len(classes)))
        test_proba[:, model.classes_] = model.predict_proba(test.X)
        results["test"] = classification_metrics(encode_labels(test.labels, classes)[1], test_proba, classes, positive)
    if out is not None:
        write_outputs(results, dev, result.proba, folds.fold_of, test, test_proba, Path(out))
    return results


def write_outputs(results: dict, dev: FeatureSet, oof, fold_of, test: FeatureSet, test_proba, out: Path) -> dict:
    """results.json, predictions CSVs and the report under ``out``; returns their paths."""
    from featx.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "results.json", "oof": out / "oof_predictions.csv"}
    _predictions_csv(paths["oof"], dev, oof, results["classes"], fold_of)
    if test_proba is not None:
        paths["test_predictions"] = out / "test_predictions.csv"
        _predictions_csv(paths["test_predictions"], test, test_proba, results["classes"], None)
    curves = {"cross-validation (out-of-fold)": (dev.labels, oof)}
    if test_proba is not None:
        curves["held-out test"] = (test.labels, test_proba)
    paths.update(write_report(results, curves, out))
    results["outputs"] = {k: str(v) for k, v in paths.items()}
    paths["results"].write_text(json.dumps(results, indent=2))
    return paths


def _predictions_csv(path: Path, fs: FeatureSet, proba, classes, fold_of) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "label", "subject", "fold", "predicted"] + [f"p_{c}" for c in classes])
        pred = np.asarray(classes)[np.asarray(proba).argmax(axis=1)]
        for i in range(len(fs)):
            fold = "" if fold_of is None else int(fold_of[i])
            w.writerow([fs.ids[i], fs.labels[i], fs.subjects[i], fold, pred[i]] + [f"{p:.6f}" for p in proba[i]])
