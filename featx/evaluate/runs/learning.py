"""Label efficiency: ``featx bench --train-sizes 4,8,16,all --draws 5``.

At each size, each outer training fold is cut down to that many subjects per class (or that fraction of each
class's subjects), drawn ``draws`` times with subjects kept whole; every draw's model predicts the same outer test
fold, so every cell at every size is scored on the same rows. The AUC of a (cell, size) is the mean over draws of
the pooled out-of-fold AUC, with the spread of the draws. At each size the best deep cell is tested against the
best radiomics cell by a paired bootstrap over subjects of the draw-mean AUC difference (the same resamples for
both cells and every draw).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from featx.evaluate.config import ALL, parse_sizes
from featx.evaluate.heads.registry import build_head, check_pca_rows
from featx.evaluate.heads.survival import harrell
from featx.evaluate.protocol.combined import blocks_of
from featx.evaluate.protocol.cv import fit_one, proba_of
from featx.evaluate.protocol.parallel import resolve_jobs, run_tasks
from featx.evaluate.protocol.task import Task
from featx.evaluate.statistics.comparisons import paired_bootstrap
from featx.evaluate.statistics.regression import paired_mae_bootstrap
from featx.evaluate.statistics.resampling import Resampling, weighted_auc
from featx.evaluate.statistics.survival import paired_c_bootstrap
from featx.progress import progress_bar


def _take(size: str, available: int) -> int:
    if size == ALL:
        return available
    if "." in size:
        return max(1, math.ceil(float(size) * available))
    return min(int(size), available)


#: the metric a curve shows for each kind of target (higher is better but for the MAE)
CURVE_METRIC = {"classification": "auc", "regression": "mae", "survival": "harrell_c"}


def subsample(task: Task, train: np.ndarray, size: str, rng, strata=None) -> np.ndarray:
    """The rows of ``train`` kept at ``size``: per class (``strata``: per stratum of the folds, for a target without
    classes), that many of ``task``'s units (subjects, whole), drawn by ``rng``.

    A subject's class is the label of its first training row."""
    if size == ALL:
        return train
    y = task.y if strata is None else np.asarray(strata)
    units = task.groups[train] if task.groups is not None else train
    uniq, first = np.unique(units, return_index=True)
    unit_class = y[train][first]
    keep = []
    for c in np.unique(unit_class):
        pool = uniq[unit_class == c]
        keep.append(rng.choice(pool, _take(size, len(pool)), replace=False))
    return train[np.isin(units, np.concatenate(keep))]


def _fit_predict(est, X, y, groups, train, test, n_classes):
    """One fit of the curve, as the bench fits its cells (a head with its own inner CV gets the subjects)."""
    model, _ = fit_one(est, X[train], y[train], None if groups is None else groups[train])
    return proba_of(model, X[test], n_classes)


def strata_of(task: Task, dev) -> np.ndarray | None:
    """What a size counts subjects per: the classes, or the strata of the folds of a target without them (value
    bins of a regression, event or censored)."""
    return None if task.kind == "classification" else np.unique(dev.labels, return_inverse=True)[1]


def plan_curve(cfg, pairs, task: Task) -> list[tuple]:
    """Every (size, draw, repeat, fold)'s training rows, drawn before any fitting: ``(size, draw, repeat, test,
    rows)``. A ``--pca`` that the smallest of them cannot give is a FitError here, not after the bench's work."""
    sizes = parse_sizes(cfg.train_sizes)
    plan = []
    for si, size in enumerate(sizes):
        for d in range(1 if size == ALL else cfg.draws):
            for r, f, train, test in task.folds.split():
                rng = np.random.default_rng([cfg.seed, si, d, r, f])
                plan.append((size, d, r, test, subsample(task, train, size, rng, strata_of(task, pairs[0][0]))))
    smallest = min(plan, key=lambda p: len(p[4]))
    for dev, _ in pairs:
        check_pca_rows(cfg.pca, len(smallest[4]), dev.X.shape[1], blocks_of(dev), f" (--train-sizes {smallest[0]})")
    return plan


def learning_curve(cfg, pairs, heads, task: Task, plan, progress: bool = True) -> dict:
    """Fit every (feature set, head) on each training subsample of ``plan`` (:func:`plan_curve`); returns the
    JSON-able record ``results.json`` keeps (``points``: one per cell and size; ``tests``: best deep against best
    radiomics at each size)."""
    sizes = parse_sizes(cfg.train_sizes)
    y, groups, metric = task.y, task.groups, CURVE_METRIC[task.kind]
    owners, tasks = [], []
    for dev, _ in pairs:
        for h in heads:
            est = build_head(h, cfg.seed, cfg.pca, blocks_of(dev), cfg.target)[0]
            if task.kind == "survival":
                est.set_params(times=task.times, risk_cut=task.risk_cut)
            for size, d, r, test, sub in plan:
                n_sub = len(np.unique(groups[sub])) if groups is not None else len(sub)
                owners.append(((dev.name, h, size, d), r, test, n_sub))
                tasks.append((_fit_predict, (est, dev.X, y, groups, sub, test, task.n_proba), None))
    with progress_bar(f"learning curve: {len(tasks)} fits", total=len(tasks), enabled=progress) as bar:
        tasks = [(fn, args, lambda _r: bar.update()) for fn, args, _ in tasks]
        results = run_tasks(tasks, resolve_jobs(cfg.jobs))
    oof: dict = {}
    n_train: dict = {}
    for (key, r, test, n_sub), proba in zip(owners, results):
        oof.setdefault((key, r), np.zeros((len(y), task.width)))[test] = proba
        n_train.setdefault(key, []).append(n_sub)
    points, draws_of = [], {}
    kinds = {dev.name: dev.provenance.get("kind", "?") for dev, _ in pairs}
    for dev, _ in pairs:
        for h in heads:
            for size in sizes:
                keys = [(dev.name, h, size, d) for d in range(1 if size == ALL else cfg.draws)]
                probas = [oof[(k, r)] for k in keys for r in range(task.folds.repeats)]
                aucs = np.array([curve_value(task, p) for p in probas])
                draws_of[(dev.name, h, size)] = probas
                points.append(
                    {
                        "features": dev.name,
                        "head": h,
                        "kind": kinds[dev.name],
                        "size": size,
                        "train_subjects": round(float(np.mean([n for k in keys for n in n_train[k]])), 1),
                        "draws": len(probas),
                        metric: round(float(np.nanmean(aucs)), 4),
                        f"{metric}_sd": round(float(np.nanstd(aucs)), 4),
                        f"{metric}_range": [round(float(np.nanmin(aucs)), 4), round(float(np.nanmax(aucs)), 4)],
                    }
                )
    tests = [_paired(size, points, draws_of, task, cfg) for size in sizes]
    return {
        "metric": metric,
        "sizes": list(sizes),
        "draws": cfg.draws,
        "unit": ("subjects" if groups is not None else "samples")
        + (" per class" if task.kind == "classification" else " per stratum of the folds"),
        "points": points,
        "tests": [t for t in tests if t is not None],
    }


def curve_value(task: Task, proba) -> float:
    """A curve point's metric of one draw's out-of-fold predictions of every row: the AUC, a regression's MAE, or a
    survival target's Harrell's C."""
    if task.kind == "classification":
        return float(weighted_auc(np.ones((1, len(task.y))), task.y, proba, task.pos)[0])
    if task.kind == "regression":
        return float(np.abs(proba[:, 0] - task.y).mean())
    return harrell(task.y, proba[:, 0])


def _paired(size, points, draws_of, task: Task, cfg) -> dict | None:
    """Best deep (``cnn``) against best radiomics cell at ``size``: a paired bootstrap over subjects of the
    draw-mean AUC difference (:func:`~featx.evaluate.statistics.comparisons.paired_bootstrap`)."""
    key = CURVE_METRIC[task.kind]
    sign = -1 if key == "mae" else 1
    at = [p for p in points if p["size"] == size]
    best = {}
    for kind in ("cnn", "radiomics"):
        mine = [p for p in at if p["kind"] == kind]
        if mine:
            best[kind] = max(mine, key=lambda p: sign * p[key])
    if len(best) < 2:
        return None
    a, b = best["cnn"], best["radiomics"]
    pa, pb = draws_of[(a["features"], a["head"], size)], draws_of[(b["features"], b["head"], size)]
    test_of = {"regression": paired_mae_bootstrap, "survival": paired_c_bootstrap}.get(task.kind, paired_bootstrap)
    boot, why = test_of(task.without_folds(), pa, pb, Resampling(cfg.bootstrap or 1000, cfg.seed))
    test = {
        "size": size,
        "deep": f"{a['features']} + {a['head']}",
        "radiomics": f"{b['features']} + {b['head']}",
        f"{key}_difference": round(a[key] - b[key], 4),
        "ci": None,
        "p": None,
        "resamples": 0,
        "unit": None,
        "test": f"paired bootstrap over subjects of the draw-mean {key} difference",
    }
    if boot is None:
        return {**test, "test": f"not computable: {why}"}
    return {
        **test,
        "ci": [round(boot.lo, 4), round(boot.hi, 4)],
        "p": round(boot.p, 4),
        "resamples": boot.n_boot,
        "unit": boot.unit,
    }


def write_learning(learning: dict, out: Path) -> dict:
    """``learning.csv`` (a row per cell and size; the curve's metric: AUC, a regression's MAE or a survival target's
    Harrell's C) and ``learning_tests.csv``; their paths (the report draws ``learning.png`` from the result)."""
    out.mkdir(parents=True, exist_ok=True)
    key = learning.get("metric", "auc")
    cols = ["features", "head", "kind", "size", "train_subjects", "draws", key, f"{key}_sd"]
    with open(out / "learning.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*cols, f"{key}_min", f"{key}_max"])
        for p in learning["points"]:
            w.writerow([*(p[c] for c in cols), *p[f"{key}_range"]])
    paths = {"learning_csv": str(out / "learning.csv")}
    if learning["tests"]:
        keys = list(learning["tests"][0])
        with open(out / "learning_tests.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows({**t, "ci": f"{t['ci'][0]}..{t['ci'][1]}" if t["ci"] else ""} for t in learning["tests"])
        paths["learning_tests"] = str(out / "learning_tests.csv")
    return paths
