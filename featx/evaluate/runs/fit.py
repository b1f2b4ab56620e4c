"""``featx fit``: store -> feature set -> head + cross-validation (+ held-out test) -> typed results, report, model.

The rows and folds come from :mod:`featx.evaluate.protocol.split`. After the CV the head is refit on
all non-test samples, scored once on the test samples, and that refit is what ``save`` writes.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from featx import __version__
from featx.errors import FitError
from featx.evaluate.config import FitConfig
from featx.evaluate.heads.bags import bags_of, write_attention
from featx.evaluate.heads.operating import describe_decision, operated, parse_threshold
from featx.evaluate.heads.registry import BAG_HEADS, build_head, check_pca, get_head
from featx.evaluate.models.saved import save_model
from featx.evaluate.protocol.checkpoint import finished, partial_dir
from featx.evaluate.protocol.combined import blocks_of
from featx.evaluate.protocol.cv import CVPlan, CVResult, proba_of, threshold_of, timed_fit
from featx.evaluate.protocol.folds import Folds
from featx.evaluate.protocol.fusion import MODEL_FUSIONS, concat_by_subject, sequences_of
from featx.evaluate.protocol.parallel import ray_backend, resolve_jobs, run_tasks
from featx.evaluate.protocol.split import check_design, load_for_fit, near_copy_record, plan_split, split_classes
from featx.evaluate.protocol.task import Task, tasks_of
from featx.evaluate.runs.outputs import Predictions, versions, write_fit_outputs
from featx.evaluate.statistics.resampling import Resampling
from featx.evaluate.statistics.scoring import evaluate, metrics_with_ci, score_fused
from featx.progress import progress_bar
from featx.results.runs import FitResult, HeadInfo, Protocol, Target
from featx.store.feature_set import FeatureSet

log = logging.getLogger(__name__)


@dataclass
class _Units:
    """The models one fit trains: one per sequence (``--fuse vote|mean``), else one on every row."""

    dev: dict  # name -> boolean mask over the development rows
    test: dict  # name -> boolean mask over the test rows

    @classmethod
    def of(cls, fs: FeatureSet, dev: FeatureSet, test: FeatureSet, sequences: list | None) -> _Units:
        if sequences is None:
            return cls({fs.name: np.ones(len(dev), bool)}, {fs.name: np.ones(len(test), bool)})
        return cls({q: dev.sequences == q for q in sequences}, {q: test.sequences == q for q in sequences})


def protocol_of(folds: Folds, s, held_out_test: bool, **more) -> Protocol:
    """The protocol record of a run with split settings ``s`` and folds ``folds``."""
    return Protocol(
        decision=describe_decision(s),
        calibrate=getattr(s, "calibrate", "none"),
        split=s.split,
        cv=folds.k,
        repeats=folds.repeats,
        seed=s.seed,
        splitter=folds.splitter,
        grouped_by_subject=folds.grouped,
        test_size=folds.test_size,
        folds=folds.describe(),
        held_out_test=held_out_test,
        n_boot=s.bootstrap,
        split_by=s.split_by,
        folds_from=str(s.folds) if s.folds is not None else None,
        copies=folds.copies,
        **more,
    )


def run_fit(cfg: FitConfig, *, progress: bool = True, extra: dict | None = None) -> FitResult:
    """Cross-validate ``cfg.head`` on feature set ``cfg.features`` of ``cfg.store``; write to ``cfg.out``.

    Parameters
    ----------
    cfg : FitConfig
        Every setting (see :class:`~featx.evaluate.config.FitConfig`).
    progress : bool
    extra : dict, optional
        More JSON-able entries for the results (e.g. the demo's extraction summary).

    Returns
    -------
    FitResult
        Also written as ``cfg.out/results.json`` with the report and prediction CSVs.
    """
    cfg.require("store", "features")
    fs, dropped = load_for_fit(cfg.store, cfg.features, cfg)
    feature_names, sequences = fs.feature_names, (sequences_of(fs) if cfg.fuse else None)
    blocks = blocks_of(fs, len(sequences) if cfg.fuse == "concat" else 1)
    estimator, grid = build_head(cfg.head, cfg.seed, cfg.pca, blocks, cfg.target)
    if cfg.tune and not grid:
        raise FitError(f"Head {cfg.head!r} has no tuning grid; drop --tune.")
    grid = grid if cfg.tune else None
    if cfg.fuse == "concat":
        fs = concat_by_subject(fs, sequences)
    instances = None
    if cfg.head in BAG_HEADS:  # one row per bag of slices; the head learns how to pool them
        estimator.set_params(instance_dim=fs.X.shape[1])
        fs, instances = bags_of(fs, cfg.bag)
    t_start = time.perf_counter()
    dev, test, folds = plan_split(fs, cfg)
    near = near_copy_record(dev, test, folds)
    check_pca(cfg.pca, folds, dev.X.shape[1], cfg.inner_k if cfg.tune else None, blocks)
    classes = split_classes(dev, test, cfg.positive)
    if cfg.fuse in MODEL_FUSIONS and not parse_threshold(cfg.threshold).default:
        raise FitError(
            f"--threshold {cfg.threshold} with --fuse {cfg.fuse}: a threshold of the fused subject-level "
            "probabilities is not supported yet; use --fuse concat, or drop --threshold."
        )
    estimator = operated(estimator, cfg, classes)
    check_design(dev, test, folds)
    task, test_task = tasks_of(dev, test, folds, classes, cfg)
    if task.kind == "survival":  # where its survival functions are read, and its risk-group quantile
        estimator.set_params(times=task.times, risk_cut=cfg.risk_cut)
    units = _Units.of(fs, dev, test, sequences if cfg.fuse in MODEL_FUSIONS else None)
    wanted = bool(len(test) or cfg.save or instances is not None)  # the refit: test rows, saved model, attention
    cvres, refit = _fit_all(estimator, grid, dev, task, units, cfg, wanted, progress)
    test_proba = {q: proba_of(refit[q], test.X[m], task.n_proba) for q, m in units.test.items()} if len(test) else {}
    thresholds = {q: threshold_of(m) for q, m in refit.items()}
    cv, test_metrics, per_sequence, fused = _scores(
        cfg, fs, dev, test, task, test_task, cvres, units, test_proba, thresholds
    )
    result = _result(cfg, fs, dev, test, task, cvres, (cv, test_metrics, per_sequence), dropped, extra, estimator)
    result = replace(result, seconds=time.perf_counter() - t_start, protocol=replace(result.protocol, near_copies=near))
    if cfg.save is not None:
        path = save_model(cfg.save, refit, result, fs, sequences, cfg.fuse, feature_names)
        result = replace(result, saved_model=str(path))
    if cfg.out is not None:
        preds = Predictions(dev, cvres, units.dev, test, test_proba, units.test, fused, thresholds)
        written = {}
        if instances is not None:
            Path(cfg.out).mkdir(parents=True, exist_ok=True)
            model = refit[fs.name]
            while not hasattr(model, "attention_weights"):  # inside an operating-point wrapper or a grid search
                model = getattr(model, "model_", None) or model.best_estimator_
            written["attention"] = write_attention(Path(cfg.out) / "attention.csv", model, fs, instances)
        result = write_fit_outputs(result, preds, Path(cfg.out), written)
        finished(cfg.out)
    return result


def _fit_all(
    estimator, grid, dev: FeatureSet, task: Task, units: _Units, cfg: FitConfig, refit: bool, progress: bool
) -> tuple[dict[str, CVResult], dict]:
    """Each unit's cross-validation and, with ``refit``, its head fitted on all its development rows (for the test
    split and the saved model): every fit one task of one parallel run (``--jobs``; the same numbers)."""
    folds = task.folds
    total = len(units.dev) * folds.repeats * folds.k
    plans, refits, tasks = {}, {}, []
    # short: a progress line is cut at the terminal's width (the folds are printed whole with the results)
    with progress_bar(f"fit {dev.name} + {cfg.head}", total=total, enabled=progress) as bar:
        for name, sel in units.dev.items():
            unit = task.rows(sel)
            plans[name] = CVPlan(estimator, dev.X[sel], unit, grid, cfg.inner_k, partial_dir(cfg.out), bar.update)
            tasks += plans[name].tasks()
            if refit:
                args = (estimator, dev.X[sel], unit.y, unit.groups, grid, cfg.seed, cfg.inner_k)
                tasks.append((timed_fit, args, functools.partial(refits.__setitem__, name)))
        with ray_backend(cfg.ray) as backend:
            run_tasks(tasks, resolve_jobs(cfg.jobs), backend)
    what = f"{type(estimator).__name__} cross-validation"
    return {name: p.result(what) for name, p in plans.items()}, {name: m for name, (m, _) in refits.items()}


def _result(
    cfg: FitConfig, fs, dev, test, task: Task, cvres: dict, scores: tuple, dropped, extra, estimator
) -> FitResult:
    """The typed result of one fit; ``scores``: its (CV scores, test metrics, per-sequence scores)."""
    folds = task.folds
    cv, test_metrics, sequences = scores
    first = next(iter(cvres.values()))
    best = first.best_params if len(cvres) == 1 else {q: r.best_params for q, r in cvres.items()}
    cv = replace(
        cv,
        fold_seconds=tuple(s for r in cvres.values() for s in r.fold_seconds),
        best_params=best,
        thresholds=first.fold_thresholds() if len(cvres) == 1 else None,
    )
    return FitResult(
        type="fit",
        featx_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        store=str(Path(cfg.store).resolve()),
        feature_set=cfg.features,
        provenance=fs.provenance,
        versions=versions(),
        head=head_info(cfg, estimator),
        protocol=protocol_of(folds, cfg, bool(len(test)), fuse=cfg.fuse),
        classes=tuple(first.classes),
        n_features=int(dev.X.shape[1]),
        dropped_features=tuple(dropped),
        n_dev=len(dev),
        n_test=len(test),
        cv=cv,
        test=test_metrics,
        folds=folds.to_dict(dev.ids),
        sequences=sequences,
        config=cfg.record(),
        target=Target(cfg.target, cfg.value, cfg.time, cfg.event, task.times, task.horizons),
        extra=dict(extra or {}),
    )


def _scores(
    cfg: FitConfig, fs, dev, test, task: Task, test_task: Task, cvres: dict, units: _Units, test_proba, thresholds
):
    """(CV scores, test metrics, per-sequence scores, fused test predictions) of one fit; ``thresholds``: the
    one each refit model chose on the development rows, for its test rows."""
    boot = Resampling.of(cfg)
    evals = {q: evaluate(task.rows(units.dev[q]), r.proba, boot, thresholds=r.thresholds) for q, r in cvres.items()}
    if cfg.fuse in MODEL_FUSIONS:
        proba = {q: r.proba for q, r in cvres.items()}
        f = score_fused(dev, test, task, proba, evals, units.dev, units.test, test_proba, cfg.fuse, boot)
        return f.cv, f.test, f.sequences, f.test_subjects
    cv = replace(evals[fs.name], level="subject (concatenated sequences)" if cfg.fuse == "concat" else "image")
    test_metrics = None
    if len(test):
        test_metrics = metrics_with_ci(test_task, test_proba[fs.name], boot, threshold=thresholds[fs.name])
    return cv, test_metrics, None, None


def head_info(cfg, estimator) -> HeadInfo:
    """The record of the head ``estimator`` a fit (or bench cell) of ``cfg`` uses, with its grid when tuned."""
    spec = get_head(cfg.head, getattr(cfg, "target", "classification"))
    grid = spec.grid
    tuned = None
    if cfg.tune:
        tuned = {
            "grid": {k: [list(v) if isinstance(v, tuple) else v for v in vs] for k, vs in grid.items()},
            "inner_k": cfg.inner_k,
        }
    return HeadInfo(cfg.head, spec.description, repr(estimator), cfg.pca, tuned)
