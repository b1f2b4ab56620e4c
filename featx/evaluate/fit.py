"""Store -> feature set -> head + cross-validation (+ held-out test) -> results, report, saved model.

Protocol (``split='cv'``, the default): samples whose ``split`` is ``test`` are held
out; stratified K-fold CV (x repeats; grouped by subject when subjects are known)
runs on the rest; then the head is refit on all non-test samples, scored once on
the test samples, and that refit is what ``save`` writes. ``split='fixed'``: one
train/test split, the manifest's split column or ``test_size`` of the subjects.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from featx import __version__
from featx.evaluate.cv import (Folds, cross_validate, encode_labels, fit_one, load_folds, make_folds, make_holdout,
                      manifest_split, proba_of)
from featx.errors import FitError
from featx.store.feature_set import FeatureSet
from featx.evaluate.fusion import FUSE_CHOICES, concat_by_subject, sequences_of
from featx.evaluate.heads import build_head, check_pca, get_head
from featx.dataset.manifest import short_list
from featx.progress import progress_bar
from featx.evaluate.outputs import versions
from featx.evaluate.scoring import evaluate, metrics_with_ci, score_fused
from featx.store.store import FeatureStore

log = logging.getLogger(__name__)

SPLIT_CHOICES = ("cv", "fixed")
SPLIT_BY_CHOICES = ("subject", "image")


def load_for_fit(store, features: str) -> tuple[FeatureSet, list[str]]:
    """The labelled rows of ``features``, without NaN/inf columns (named in the returned list)."""
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
    tuned = fs.provenance.get("finetune")
    if tuned:
        log.warning("%s comes from a backbone fine-tuned on %s labelled samples (%s; run %s): scores on samples it was "
                    "trained on are optimistic. Score these features on rows the fine-tuning never saw (its held-out "
                    "test rows), and compare fine-tuning itself with 'featx bench --finetuned RUN'.", features,
                    (tuned.get("trained_on") or {}).get("n", "?"), (tuned.get("trained_on") or {}).get("what", "?"),
                    tuned.get("run"))
    return fs, dropped


def plan_split(fs: FeatureSet, split: str = "cv", cv: int = 10, repeats: int = 1, seed: int = 0,
               test_size: float | None = None, folds_path: str | Path | None = None,
               split_by: str = "subject") -> tuple[FeatureSet, FeatureSet, Folds]:
    """(development rows, held-out test rows, folds over the development rows).

    ``split_by='image'`` deliberately ignores the subjects when drawing folds (each image is
    its own group): what a slice-level random split reports, for showing the leak side by side
    with the grouped split. Never use it for a result you report as is.
    """
    if split not in SPLIT_CHOICES:
        raise FitError(f"Unknown --split {split!r}; choose cv (K-fold) or fixed (one train/test split).")
    if split_by not in SPLIT_BY_CHOICES:
        raise FitError(f"Unknown --split-by {split_by!r}; choose subject (the honest default) or image (slice-level, "
                       "leaky: only to show what such a split would report).")
    if test_size is not None and split != "fixed":
        raise FitError("--test-size draws a fixed train/test split; use it with --split fixed.")
    has_subjects = bool((fs.subjects != "").all())
    if not has_subjects:
        log.warning("no subject ids: each sample is its own group, so slices of one patient may leak across folds")
    elif split_by == "image":
        log.warning("--split-by image: folds ignore the subjects, so one patient's slices sit on both sides of a "
                    "split and every metric is optimistic (a slice-level leak, kept only for comparison)")
    if split == "fixed":
        dev, test = fs, fs.subset(np.zeros(len(fs), bool))
        if test_size is not None and (fs.splits == "test").any():
            raise FitError("The manifest already marks 'test' rows; --test-size would draw another test set. Drop "
                           "--test-size to use the manifest's split, or clear its 'split' column.")
    else:
        is_test = fs.splits == "test"
        dev, test = fs.subset(~is_test), fs.subset(is_test)
        if len(dev) == 0:
            raise FitError("Every sample is in the 'test' split: nothing to cross-validate on. Mark some as train/val.")
        both = sorted(set(dev.subjects.tolist()) & set(test.subjects.tolist())) if has_subjects else []
        if both:
            raise FitError(f"Subject {both[0]!r}" + (f" (and {len(both) - 1} more)" if len(both) > 1 else "")
                           + " has rows in the 'test' split and outside it: refusing a split that puts one patient "
                           "on both sides (its slices would leak into the test side and inflate every metric). "
                           "Give all of a subject's rows the same split.")
    subjects = dev.subjects if has_subjects and split_by == "subject" else None
    if folds_path is not None:
        folds = load_folds(folds_path, dev.ids, subjects)
    elif split == "fixed":
        folds = (make_holdout(dev.labels, subjects, test_size, seed, repeats) if test_size is not None
                 else manifest_split(dev.splits, subjects))
    else:
        folds = make_folds(dev.labels, subjects, k=cv, seed=seed, repeats=repeats)
    return dev, test, folds


def split_classes(dev: FeatureSet, test: FeatureSet, positive: str | None) -> list[str]:
    """The classes (sorted labels of the development rows), refusing an unknown positive class or test-only labels."""
    classes = sorted(set(dev.labels))
    if positive is not None and positive not in classes:
        raise FitError(f"--positive {positive!r} is not a label (labels: {', '.join(classes)}).")
    unseen = sorted(set(test.labels) - set(classes))
    if unseen:
        raise FitError(f"Test labels {unseen} never occur outside the test split; no model can learn them.")
    return classes


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
    *,
    repeats: int = 1,
    split: str = "cv",
    test_size: float | None = None,
    tune: bool = False,
    pca: int | None = None,
    fuse: str | None = None,
    folds: str | Path | None = None,
    save: str | Path | None = None,
    n_boot: int = 1000,
    inner_k: int = 5,
    split_by: str = "subject",
) -> dict:
    """Cross-validate ``head`` on feature set ``features`` of ``store``; write results to ``out``.

    Parameters
    ----------
    store : path
        A featx HDF5 store.
    features : str
        Feature-set name in the store (``featx store info`` lists them).
    head : str
        Registered head name (``featx.evaluate.heads``).
    cv, repeats : int
        Folds per repeat, and repeats (re-shuffles).
    seed : int
        Seed of the folds, the head and the bootstrap.
    out : path, optional
        Folder for ``results.json``, ``folds.json``, prediction CSVs and the HTML report.
    positive : str, optional
        Positive class for sensitivity/specificity (binary); default the second sorted class.
    split : {'cv', 'fixed'}
        K-fold CV (plus the manifest's test rows held out), or one fixed train/test split.
    test_size : float, optional
        With ``split='fixed'``: draw this fraction of subjects as test instead of the manifest's split.
    tune : bool
        Nested CV: each training set tunes the head's grid by an inner ``inner_k``-fold CV.
    pca : int, optional
        PCA components before the classifier (fit inside each training fold).
    fuse : {'vote', 'mean', 'concat'}, optional
        Multi-sequence fusion per subject (needs 'sequence' and 'subject' columns).
    folds : path, optional
        Reuse the folds of an earlier run (its folds.json or results.json).
    split_by : {'subject', 'image'}
        ``image`` ignores the subjects when drawing folds: a deliberately leaky slice-level
        split, only to show what it would report (see :func:`plan_split`).
    save : path, optional
        Write the refit model (``.skops``) for ``featx predict``.
    n_boot : int
        Bootstrap resamples (by subject) for the CIs; 0 for DeLong only.
    progress : bool
    extra : dict, optional
        More JSON-able entries for the results (e.g. the extraction summary).

    Returns
    -------
    dict
        The results (also written as ``out/results.json``).
    """
    fs, dropped = load_for_fit(store, features)
    spec = get_head(head)
    estimator, grid = build_head(head, seed, pca)
    if tune and not grid:
        raise FitError(f"Head {head!r} has no tuning grid; drop --tune.")
    sequences, feature_names = None, fs.feature_names
    if fuse is not None:
        if fuse not in FUSE_CHOICES:
            raise FitError(f"Unknown --fuse {fuse!r}; choose vote, mean or concat.")
        sequences = sequences_of(fs)
        if fuse == "concat":
            fs = concat_by_subject(fs, sequences)
    t_start = time.perf_counter()
    dev, test, folds_ = plan_split(fs, split, cv, repeats, seed, test_size, folds, split_by)
    check_pca(pca, folds_, dev.X.shape[1], inner_k if tune else None)
    classes = split_classes(dev, test, positive)
    grouped = folds_.grouped
    units = {q: dev.sequences == q for q in sequences} if fuse in ("vote", "mean") else {fs.name: np.ones(len(dev), bool)}
    total = len(units) * folds_.repeats * folds_.k
    cvres = {}
    with progress_bar(f"{folds_.describe()}: {fs.name} + {head}", total=total, enabled=progress) as bar:
        for name, sel in units.items():
            sub = Folds(folds_.fold_of[:, sel], folds_.k, folds_.seed, folds_.splitter, grouped, folds_.kind, folds_.test_size)
            cvres[name] = cross_validate(estimator, dev.X[sel], dev.labels[sel], sub, bar.update, classes,
                                         grid if tune else None, dev.subjects[sel] if grouped else None, inner_k)
    subjects = lambda fs_, sel: fs_.subjects[sel] if grouped else None  # noqa: E731
    evals = {q: evaluate(r.y, r.proba, r.folds.fold_of, classes, subjects(dev, units[q]), positive, n_boot, seed)
             for q, r in cvres.items()}
    refit = {}
    if len(test) or save is not None:
        for name, sel in units.items():
            y = encode_labels(dev.labels[sel], classes)[1]
            refit[name] = fit_one(estimator, dev.X[sel], y, subjects(dev, sel), grid if tune else None, seed, inner_k)[0]
    test_units = {q: test.sequences == q for q in units} if fuse in ("vote", "mean") else {fs.name: np.ones(len(test), bool)}
    test_proba = {q: proba_of(refit[q], test.X[m], len(classes)) for q, m in test_units.items()} if len(test) else {}

    results = {
        "type": "fit",
        "featx_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "store": str(Path(store).resolve()),
        "feature_set": features,
        "provenance": fs.provenance,
        "versions": versions(),
        "head": {"name": head, "description": spec.description, "estimator": repr(estimator), "pca": pca,
                 "tuned": {"grid": {k: [_plain(v) for v in vs] for k, vs in grid.items()}, "inner_k": inner_k} if tune else None},
        "protocol": {
            "split": split, "cv": folds_.k, "repeats": folds_.repeats, "seed": seed, "splitter": folds_.splitter,
            "grouped_by_subject": grouped, "test_size": folds_.test_size, "folds": folds_.describe(),
            "held_out_test": bool(len(test)), "decision": "most probable class", "fuse": fuse, "n_boot": n_boot,
            "folds_from": str(folds) if folds is not None else None, "split_by": split_by,
        },
        "classes": classes,
        "n_features": int(dev.X.shape[1]),
        "dropped_features": dropped,
        "n_dev": len(dev),
        "n_test": len(test),
        "test": None,
        "folds": folds_.to_dict(dev.ids),
        **(extra or {}),
    }
    first = next(iter(cvres.values()))
    if fuse in ("vote", "mean"):
        score_fused(results, dev, test, {q: r.proba for q, r in cvres.items()}, evals, units, test_units, test_proba,
                    folds_, fuse, positive, n_boot, seed)
    else:
        results["cv"] = evals[fs.name]
        results["cv"]["level"] = "subject (concatenated sequences)" if fuse == "concat" else "image"
        if len(test):
            results["test"] = metrics_with_ci(encode_labels(test.labels, classes)[1], test_proba[fs.name], classes,
                                            test.subjects if grouped else None, positive, n_boot, seed)
    results["cv"]["fold_seconds"] = [s for r in cvres.values() for s in r.fold_seconds]
    results["cv"]["best_params"] = first.best_params if len(cvres) == 1 else {q: r.best_params for q, r in cvres.items()}
    results["seconds"] = time.perf_counter() - t_start
    if save is not None:
        from featx.evaluate.saved_model import save_model

        results["saved_model"] = str(save_model(save, refit, results, fs, sequences, fuse, feature_names))
    if out is not None:
        from featx.evaluate.outputs import write_outputs

        write_outputs(results, dev, cvres, units, test, test_proba, test_units, Path(out))
    return results


def _plain(v):
    return list(v) if isinstance(v, tuple) else v
