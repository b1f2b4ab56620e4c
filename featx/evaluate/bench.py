"""``featx bench``: feature sets x heads, every cell scored on identical folds, ranked, compared pairwise.

Only samples present (and finite) in every feature set take part, so a deep and a
radiomics row are scored on the same images and the same folds. Pairwise
comparisons use the two tests that account for shared samples: DeLong's paired
test on the out-of-fold scores (binary problems), and the corrected resampled
t-test on the per-fold AUCs (Nadeau & Bengio), which accounts for folds sharing
training data.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from featx import __version__
from featx.evaluate.cv import Folds, cross_validate, encode_labels, fit_one, proba_of
from featx.errors import FitError
from featx.store.feature_set import FeatureSet
from featx.evaluate.fit import load_for_fit, plan_split
from featx.evaluate.heads import build_head, check_pca, get_head
from featx.dataset.manifest import short_list
from featx.evaluate.metrics import corrected_ttest, delong_paired
from featx.progress import progress_bar
from featx.evaluate.outputs import versions
from featx.evaluate.scoring import evaluate, fold_scores, metrics_with_ci

log = logging.getLogger(__name__)


def common_rows(sets: list[FeatureSet]) -> list[FeatureSet]:
    """Each set restricted to the samples every set has, in the first set's order."""
    common = set(sets[0].ids.tolist())
    for fs in sets[1:]:
        common &= set(fs.ids.tolist())
    if not common:
        raise FitError(f"The feature sets {[fs.name for fs in sets]} share no labelled sample; bench compares "
                       "feature sets computed on the same manifest.")
    out = []
    order = [i for i in sets[0].ids.tolist() if i in common]
    for fs in sets:
        left = len(fs) - len(common)
        if left:
            log.warning("%s: %d sample(s) not in every feature set are left out of the bench (%s)", fs.name, left,
                        short_list(sorted(set(fs.ids.tolist()) - common)))
        pos = {v: i for i, v in enumerate(fs.ids.tolist())}
        out.append(fs.subset(np.array([pos[i] for i in order], dtype=np.int64)))
    return out


def run_bench(store: str | Path, features: list[str], heads: list[str], *, cv: int = 10, repeats: int = 1,
              seed: int = 0, out: str | Path | None = None, positive: str | None = None, split: str = "cv",
              test_size: float | None = None, tune: bool = False, pca: int | None = None,
              folds: str | Path | None = None, n_boot: int = 1000, inner_k: int = 5, progress: bool = True,
              finetuned: list | None = None, split_by: str = "subject") -> dict:
    """Cross-validate every head on every feature set on one set of folds; rank them and compare the best.

    Parameters are those of :func:`featx.fit.run_fit`; ``features`` and ``heads`` are lists.
    ``finetuned``: output folders of ``featx finetune`` runs made on the same folds; each adds a row.
    Returns the results dict (also ``out/results.json``, ``out/bench.csv`` and ``out/report.html``).
    """
    if not features or not heads:
        raise FitError("bench needs at least one feature set (--features) and one head (--heads).")
    for h in heads:
        get_head(h)  # unknown head -> one clear error before any work
    tuned = [read_finetuned(run) for run in finetuned or []]
    loaded = [load_for_fit(store, f) for f in features]
    sets = common_rows([fs for fs, _ in loaded])
    dev0, test0, folds_ = plan_split(sets[0], split, cv, repeats, seed, test_size, folds, split_by)
    is_test = np.isin(sets[0].ids, test0.ids)
    devs = [fs.subset(~is_test) for fs in sets]
    tests = [fs.subset(is_test) for fs in sets]
    for dev in devs:
        check_pca(pca, folds_, dev.X.shape[1], inner_k if tune else None)
    classes = sorted(set(dev0.labels))
    if positive is not None and positive not in classes:
        raise FitError(f"--positive {positive!r} is not a label (labels: {', '.join(classes)}).")
    y = encode_labels(dev0.labels, classes)[1]
    groups = dev0.subjects if folds_.grouped else None
    cells, oof = [], {}
    total = len(sets) * len(heads) * folds_.repeats * folds_.k
    with progress_bar(f"bench {len(sets)} feature set(s) x {len(heads)} head(s), {folds_.describe()}", total=total,
                      enabled=progress) as bar:
        for dev, test in zip(devs, tests):
            for h in heads:
                est, grid = build_head(h, seed, pca)
                t0 = time.perf_counter()
                res = cross_validate(est, dev.X, dev.labels, folds_, bar.update, classes, grid if tune else None,
                                     groups, inner_k)
                cell = {"feature_set": dev.name, "head": h, "kind": dev.provenance.get("kind", "?"),
                        "n_features": int(dev.X.shape[1]), "seconds": time.perf_counter() - t0,
                        "cv": evaluate(y, res.proba, folds_.fold_of, classes, groups, positive, n_boot, seed),
                        "best_params": res.best_params, "test": None}
                if len(test):
                    model = fit_one(est, dev.X, y, groups, grid if tune else None, seed, inner_k)[0]
                    cell["test"] = metrics_with_ci(encode_labels(test.labels, classes)[1],
                                              proba_of(model, test.X, len(classes)), classes,
                                              test.subjects if folds_.grouped else None, positive, n_boot, seed)
                cell["_proba"] = res.mean_proba()
                oof[f"{dev.name}+{h}"] = res.proba
                cell["_fold_auc"] = fold_scores(y, res.proba, folds_.fold_of, classes, positive)
                cells.append(cell)
    for run in tuned:
        cell, proba = finetuned_cell(run, dev0, folds_, classes, y, groups, positive, n_boot, seed, bool(is_test.any()))
        oof[f"{cell['feature_set']}+{cell['head']}"] = proba
        cells.append(cell)
    cells.sort(key=lambda c: -_auc(c))
    for rank, c in enumerate(cells, 1):
        c["rank"] = rank
    comparisons = [compare(a, b, why, y, classes, positive, folds_) for a, b, why in pairs_to_compare(cells)]
    for c in cells:
        c["fold_auc"] = c.pop("_fold_auc").tolist()
        c.pop("_proba")
    results = {
        "type": "bench",
        "featx_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "store": str(Path(store).resolve()),
        "feature_sets": [fs.name for fs in sets],
        "heads": heads,
        "finetuned": [str(r) for r in finetuned or []],
        "provenance": {fs.name: fs.provenance for fs in sets},
        "versions": versions(),
        "dropped_features": {fs.name: d for (fs, d) in loaded},
        "protocol": {"split": split, "cv": folds_.k, "repeats": folds_.repeats, "seed": seed,
                     "splitter": folds_.splitter, "grouped_by_subject": folds_.grouped, "test_size": folds_.test_size,
                     "folds": folds_.describe(), "held_out_test": bool(is_test.any()), "tuned": tune, "pca": pca,
                     "n_boot": n_boot, "folds_from": str(folds) if folds is not None else None,
                     "split_by": split_by},
        "classes": classes,
        "positive": cells[0]["cv"]["pooled"].get("positive"),
        "n_dev": len(dev0),
        "n_test": int(is_test.sum()),
        "cells": cells,
        "comparisons": comparisons,
        "folds": folds_.to_dict(dev0.ids),
    }
    if out is not None:
        write_bench(results, Path(out), dev0, oof)
    return results


def read_finetuned(run: str | Path) -> tuple[Path, dict, list]:
    """``(folder, results, out-of-fold rows)`` of a ``featx finetune`` output folder."""
    import csv
    import json

    run = Path(run)
    try:
        res = json.loads((run / "results.json").read_text())
        with open(run / "oof_predictions.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, ValueError) as exc:
        raise FitError(f"{run}: not a 'featx finetune' output folder ({exc}).") from None
    if res.get("type") != "finetune":
        raise FitError(f"{run}/results.json is a {res.get('type')!r} result, not a 'featx finetune' one.")
    return run, res, rows


def finetuned_cell(finetuned: tuple, dev: FeatureSet, folds: Folds, classes: list, y, groups, positive, n_boot: int,
                   seed: int, has_test: bool) -> tuple[dict, np.ndarray]:
    """A bench row from a read ``featx finetune`` output folder (:func:`read_finetuned`): its out-of-fold
    probabilities, scored like the other rows. Its folds must be the bench's (same samples, same folds)."""
    from featx.evaluate.cv import CVResult

    run, res, rows = finetuned
    if res["classes"] != classes:
        raise FitError(f"{run}: classes {res['classes']} differ from the bench's {classes}.")
    theirs = Folds.from_dict(res["folds"], dev.ids, where=f"{run}/results.json")
    if theirs.fold_of.shape != folds.fold_of.shape or (theirs.fold_of != folds.fold_of).any():
        raise FitError(f"{run} was fine-tuned on other folds than this bench's ({res['protocol']['folds']}); "
                       f"rerun it with --folds from this bench's folds.json, or bench with --folds {run}/folds.json.")
    index = {i: k for k, i in enumerate(dev.ids.tolist())}
    proba = np.full((folds.repeats, len(dev), len(classes)), np.nan)
    for row in rows:
        if row["id"] in index:
            proba[int(row["repeat"]), index[row["id"]]] = [float(row[f"p_{c}"]) for c in classes]
    tested = folds.fold_of >= 0
    if np.isnan(proba[tested][:, 0]).any():
        raise FitError(f"{run}/oof_predictions.csv lacks predictions of some tested samples; rerun the fine-tuning.")
    cell = {"feature_set": res["feature_set"], "head": "fine-tuned", "kind": "finetune",
            "n_features": res["n_features"], "seconds": res["finetune"]["seconds"],
            "cv": evaluate(y, proba, folds.fold_of, classes, groups, positive, n_boot, seed), "best_params": None,
            "test": res.get("test") if has_test and res.get("n_test") else None,
            "_proba": CVResult(classes, y, proba, folds).mean_proba(),
            "_fold_auc": fold_scores(y, proba, folds.fold_of, classes, positive), "run": str(run)}
    return cell, proba


def _auc(cell: dict) -> float:
    v = cell["cv"]["pooled"].get("auc")
    return -np.inf if v is None or np.isnan(v) else v


def pairs_to_compare(cells: list[dict]) -> list[tuple[dict, dict, str]]:
    """The best deep cell (the best cell when none is deep) vs the best radiomics cell and vs its runner-up, and
    the best fine-tuned row vs the best frozen-feature row."""
    deep = [c for c in cells if c["kind"] == "cnn"]
    rad = [c for c in cells if c["kind"] == "radiomics"]
    anchor = deep[0] if deep else cells[0]
    label = "best deep" if deep else "best"
    others = [c for c in cells if c is not anchor]
    pairs = []
    if rad and rad[0] is not anchor:
        pairs.append((anchor, rad[0], f"{label} vs best radiomics"))
    if others and not (pairs and others[0] is rad[0]):
        tuned_runner_up = others[0]["kind"] == "finetune" and deep
        pairs.append((anchor, others[0], f"{label} vs runner-up" + (" (the best fine-tuned row)" if tuned_runner_up else "")))
    elif pairs:
        pairs[0] = (anchor, rad[0], f"{label} vs best radiomics (also the runner-up)")
    tuned = [c for c in cells if c["kind"] == "finetune"]
    if tuned and deep and not any({id(tuned[0]), id(deep[0])} == {id(a), id(b)} for a, b, _ in pairs):
        pairs.append((tuned[0], deep[0], "best fine-tuned vs best frozen features"))
    return pairs


def compare(a: dict, b: dict, why: str, y, classes, positive, folds: Folds) -> dict:
    """DeLong (binary: repeat-averaged out-of-fold scores) and the corrected t-test on per-fold AUCs, a - b."""
    name = lambda c: f"{c['feature_set']} + {c['head']}"  # noqa: E731
    out = {"a": name(a), "b": name(b), "why": why, "delong": None}
    if len(classes) == 2:
        pos = classes.index(a["cv"]["pooled"]["positive"])
        out["delong"] = delong_paired(y == pos, a["_proba"][:, pos], b["_proba"][:, pos])
    diffs = a["_fold_auc"] - b["_fold_auc"]
    sizes = [(len(tr), len(te)) for _, _, tr, te in folds.split()]
    n_train, n_test = np.mean(sizes, axis=0)
    ok = ~np.isnan(diffs)
    out["corrected_t"] = corrected_ttest(diffs[ok], n_train, n_test) if ok.sum() > 1 else None
    return out


def write_bench(results: dict, out: Path, dev: FeatureSet | None = None, oof: dict | None = None) -> dict:
    """results.json, folds.json, bench.csv (one row per cell, ranked), oof_predictions.csv and the report."""
    import csv
    import json

    from featx.report.html import write_report

    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "results.json", "folds": out / "folds.json", "table": out / "bench.csv"}
    paths["folds"].write_text(json.dumps(results["folds"]))
    keys = ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1")
    with open(paths["table"], "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["rank", "feature_set", "head", "kind", "n_features"] + [f"cv_{k}" for k in keys]
                   + ["cv_auc_delong_lo", "cv_auc_delong_hi", "cv_auc_boot_lo", "cv_auc_boot_hi", "fold_auc_mean",
                      "fold_auc_sd", "test_auc", "test_accuracy", "seconds"])
        for c in results["cells"]:
            p, t, pf = c["cv"]["pooled"], c["test"] or {}, c["cv"]["per_fold"].get("auc", {})
            lo, hi = p.get("auc_ci") or (None, None)
            blo, bhi = (p.get("ci") or {}).get("auc") or (None, None)
            w.writerow([c["rank"], c["feature_set"], c["head"], c["kind"], c["n_features"]]
                       + [_r(p.get(k)) for k in keys] + [_r(lo), _r(hi), _r(blo), _r(bhi), _r(pf.get("mean")), _r(pf.get("sd")),
                                                         _r(t.get("auc")), _r(t.get("accuracy")), f"{c['seconds']:.2f}"])
    if oof:
        paths["oof"] = out / "oof_predictions.csv"
        write_oof(paths["oof"], results, dev, oof)
    results["outputs"] = {k: str(v) for k, v in paths.items()}
    results["outputs"].update({k: str(v) for k, v in write_report(results, out).items()})
    paths["results"].write_text(json.dumps(results, indent=2))
    return paths


def write_oof(path: Path, results: dict, dev: FeatureSet, oof: dict) -> None:
    """One row per (sample, repeat): its fold, then each cell's out-of-fold probability (of the positive class
    when binary, of every class otherwise)."""
    import csv

    classes = results["classes"]
    shown = [classes.index(results["positive"])] if len(classes) == 2 else list(range(len(classes)))
    fold_of = np.array([results["folds"]["fold_of"][str(i)] for i in dev.ids]).T
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "label", "subject", "repeat", "fold"] + [f"{cell}:p_{classes[k]}" for cell in oof for k in shown])
        for r in range(fold_of.shape[0]):
            for i in np.flatnonzero(fold_of[r] >= 0):
                w.writerow([dev.ids[i], dev.labels[i], dev.subjects[i], r, int(fold_of[r, i])]
                           + [f"{p[r, i, k]:.6f}" for p in oof.values() for k in shown])


def _r(v) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.4f}"
