"""``featx bench``: feature sets x heads, every cell scored on identical folds, ranked, compared pairwise.

Only samples present (and finite) in every feature set take part, so a deep and a radiomics row
are scored on the same images and the same folds. The comparisons are in
:mod:`featx.evaluate.statistics.comparisons`; fine-tuning runs join as rows through :mod:`featx.evaluate.runs.finetuned`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from featx import __version__
from featx.errors import FitError
from featx.evaluate.config import BenchConfig
from featx.evaluate.heads.operating import Operated, operated
from featx.evaluate.heads.registry import build_head, check_pca
from featx.evaluate.models.saved import save_bench_model
from featx.evaluate.models.selection import ENSEMBLE_HEADS, Member, check_ensemble, ensemble_name, run_selection
from featx.evaluate.protocol.checkpoint import finished, partial_dir
from featx.evaluate.protocol.combined import blocks_of, common_rows
from featx.evaluate.protocol.cv import CVPlan, proba_of, threshold_of, timed_fit
from featx.evaluate.protocol.folds import Folds
from featx.evaluate.protocol.memory import check_memory
from featx.evaluate.protocol.outcomes import value_strata
from featx.evaluate.protocol.parallel import ray_backend, resolve_jobs, run_tasks
from featx.evaluate.protocol.split import check_design, load_for_fit, near_copy_record, plan_split, split_classes
from featx.evaluate.protocol.task import Task, tasks_of
from featx.evaluate.runs.finetuned import finetuned_cell, read_finetuned
from featx.evaluate.runs.fit import protocol_of
from featx.evaluate.runs.learning import learning_curve, plan_curve, write_learning
from featx.evaluate.runs.outputs import versions, write_bench_outputs
from featx.evaluate.statistics.comparisons import Scored, compare, pairs_to_compare
from featx.evaluate.statistics.resampling import Resampling
from featx.evaluate.statistics.scoring import evaluate, fold_scores, metrics_with_ci
from featx.progress import progress_bar
from featx.results.bench import BenchResult, CellResult, cell_title
from featx.results.runs import Target

log = logging.getLogger(__name__)


def run_bench(cfg: BenchConfig, *, progress: bool = True) -> BenchResult:
    """Cross-validate every head on every feature set on one set of folds; rank them and compare the best.

    Returns the typed result (also ``cfg.out/results.json``, ``bench.csv`` and ``report.html``).
    """
    cfg.require("store", "features")
    heads = cfg.head_names
    tuned = [read_finetuned(run) for run in cfg.finetuned]  # a bad run folder fails before any fitting
    check_memory(cfg.store, list(cfg.features), cfg)  # every set is held at once: before the first is read
    loaded = [load_for_fit(cfg.store, f, cfg, memory_checked=True) for f in cfg.features]
    sets = common_rows([fs for fs, _ in loaded])
    if cfg.target == "regression":  # the value bins of the rows every set shares, the same in each
        sets = [value_strata(fs, cfg.value, cfg.cv if cfg.split == "cv" else 2) for fs in sets]
    dev0, test0, folds = plan_split(sets[0], cfg)
    is_test = np.isin(sets[0].ids, test0.ids)
    is_dev = np.isin(sets[0].ids, dev0.ids)  # not ~is_test: test rows that copy training rows may be left out
    pairs = [(fs.subset(is_dev), fs.subset(is_test)) for fs in sets]
    classes = split_classes(dev0, test0, cfg.positive)
    check_design(dev0, test0, folds)
    check_ensemble(cfg.ensemble, len(pairs) * len(heads))
    _check_row_to_save(cfg, [fs.name for fs in sets], heads)
    for dev, _ in pairs:
        check_pca(cfg.pca, folds, dev.X.shape[1], cfg.inner_k if cfg.tune else None, blocks_of(dev))
    task, test_task = tasks_of(dev0, test0, folds, classes, cfg)
    boot = Resampling.of(cfg)
    curve = plan_curve(cfg, pairs, task) if cfg.train_sizes else None  # its checks before any fit
    scored, made = _cells(cfg, pairs, heads, task, test_task, progress)
    learning = None
    if curve is not None:
        learning = learning_curve(cfg, pairs, heads, task, curve, progress)
    selection, fitted = None, {}
    if cfg.select == "nested" or cfg.ensemble:
        base = sorted(zip(scored, made), key=lambda sc: -_auc(sc[0].cell))
        members = [
            Member(
                s.cell.title,
                c["dev"].X,
                _for_inner_cv(c["est"]),
                c["grid"],
                s.oof,
                (c["refit"] or (None,))[0],
                c["test"].X,
            )
            for s, c in base
        ]
        cells = {s.cell.title: s.cell for s, _ in base}
        test = test_task if is_test.any() else None
        selection, rows, fitted = run_selection(cfg, members, cells, task, test, progress)
        scored += rows
    scored += [finetuned_cell(run, dev0, task, boot, bool(is_test.any())) for run in tuned]
    scored.sort(key=lambda c: -_auc(c.cell))
    scored = [replace(c, cell=replace(c.cell, rank=rank)) for rank, c in enumerate(scored, 1)]
    comparisons = tuple(compare(a, b, why, task, boot) for a, b, why in pairs_to_compare(scored))
    result = BenchResult(
        type="bench",
        featx_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        store=str(Path(cfg.store).resolve()),
        feature_sets=tuple(fs.name for fs in sets),
        heads=tuple(heads),
        protocol=protocol_of(
            folds,
            cfg,
            bool(is_test.any()),
            tuned=cfg.tune,
            pca=cfg.pca,
            select=cfg.select,
            ensemble=cfg.ensemble,
            near_copies=_near_copies(pairs, folds),
        ),
        classes=tuple(task.classes),
        n_dev=len(dev0),
        n_test=int(is_test.sum()),
        cells=tuple(c.cell for c in scored),
        comparisons=comparisons,
        positive=scored[0].cell.cv.pooled.positive,
        finetuned=tuple(str(r) for r in cfg.finetuned),
        provenance={fs.name: fs.provenance for fs in sets},
        versions=versions(),
        dropped_features={fs.name: tuple(d) for fs, d in loaded},
        folds=folds.to_dict(dev0.ids),
        config=cfg.record(),
        selection=selection,
        learning=learning,
        target=Target(cfg.target, cfg.value, cfg.time, cfg.event, task.times, task.horizons),
    )
    if cfg.save is not None:
        row = _row_to_save(cfg, result)
        path = save_bench_model(cfg.save, result, row, made, fitted, {fs.name: fs for fs in sets}, loaded)
        result = replace(result, saved_model=str(path))
    if cfg.out is not None:
        result = write_bench_outputs(
            result, Path(cfg.out), dev0, {c.cell.title.replace(" + ", "+"): c.oof for c in scored}
        )
        if learning is not None:
            result = replace(result, outputs={**(result.outputs or {}), **write_learning(learning, Path(cfg.out))})
        finished(cfg.out)
    return result


def _near_copies(pairs: list, folds: Folds) -> dict | None:
    """The near-copy record of the bench's rows, judged on its first feature set with a network's embedding."""
    for dev, test in pairs:
        record = near_copy_record(dev, test, folds)
        if record is not None:
            return {**record, "feature_set": dev.name}
    return None


def _cells(cfg: BenchConfig, pairs: list, heads, task: Task, test_task: Task, progress: bool) -> tuple[list, list]:
    """Every feature set x head: cross-validated on ``task.folds``, refit for the test split (and ``--save``), scored
    alike. Returns the scored cells and, in the same order, what made them (features, estimator, refit).

    Every fold fit and refit of every cell is one task of one parallel run (``--jobs``), so the cores stay busy
    to the end; the results are assembled per cell in order, identical to one fit at a time."""
    folds, classes = task.folds, list(task.classes)
    total = len(pairs) * len(heads) * folds.repeats * folds.k
    cells, tasks, scored = [], [], {}
    with progress_bar(f"bench {len(pairs)} set(s) x {len(heads)} head(s)", total=total, enabled=progress) as bar:
        for dev, test in pairs:
            for h in heads:
                est, grid = build_head(h, cfg.seed, cfg.pca, blocks_of(dev), cfg.target)
                if task.kind == "survival":
                    est.set_params(times=task.times, risk_cut=cfg.risk_cut)
                est = operated(est, cfg, classes)
                grid = grid if cfg.tune else None
                plan = CVPlan(est, dev.X, task, grid, cfg.inner_k, partial_dir(cfg.out), bar.update)
                cell = {"dev": dev, "test": test, "head": h, "plan": plan, "refit": None, "est": est, "grid": grid}
                own = plan.tasks()
                if len(test) or cfg.save is not None:
                    args = (est, dev.X, task.y, task.groups, grid, cfg.seed, cfg.inner_k)
                    own.append((timed_fit, args, functools.partial(cell.__setitem__, "refit")))

                # scored as soon as its last fit is in, while the workers fit the next cells
                score = functools.partial(_score_into, scored, len(cells), cfg, cell, task, test_task)
                if not own:  # every fold kept from a stopped run
                    score()
                else:
                    fn, args, done = own[-1]
                    own[-1] = (fn, args, functools.partial(_then, done, score))
                tasks += own
                cells.append(cell)
        with ray_backend(cfg.ray) as backend:
            run_tasks(tasks, resolve_jobs(cfg.jobs), backend)
    return [scored[i] for i in range(len(cells))], cells


def _for_inner_cv(est):
    """The estimator selection's inner CV fits for a cell: its head alone when the cell only adds a threshold (the
    probabilities, all selection and stacking use, are the head's own), saving a CV per inner fit."""
    if isinstance(est, Operated) and est.calibrate == "none":
        return est.estimator
    return est


def _check_row_to_save(cfg: BenchConfig, sets: list, heads) -> None:
    """FitError, before any fitting, for a --save-row that no row of this bench will have."""
    if cfg.save_row is None:
        return
    titles = [cell_title(f, h) for f in sets for h in heads]
    if cfg.ensemble:
        titles += [cell_title(ensemble_name(cfg.ensemble), h) for h in ENSEMBLE_HEADS.values()]
    if cfg.save_row not in titles:
        raise FitError(f"--save-row {cfg.save_row!r} is no row of this bench; its rows: {', '.join(titles)}.")


def _row_to_save(cfg: BenchConfig, result: BenchResult) -> CellResult:
    if cfg.save_row is None:
        return result.cells[0]
    for c in result.cells:
        if c.title == cfg.save_row:
            return c
    raise FitError(f"--save-row {cfg.save_row!r} is no row of this bench; its rows: {[c.title for c in result.cells]}.")


def _then(first, second, result) -> None:
    first(result)
    second()


def _score_into(out: dict, i: int, *args) -> None:
    out[i] = _score(*args)


def _score(cfg: BenchConfig, c: dict, task: Task, test_task: Task) -> Scored:
    dev, test, res = c["dev"], c["test"], c["plan"].result(f"{c['head']} cross-validation")
    boot = Resampling.of(cfg)
    cv = evaluate(task, res.proba, boot, thresholds=res.thresholds)
    cv = replace(cv, thresholds=res.fold_thresholds())
    test_metrics, refit_s = None, 0.0
    if c["refit"] is not None:
        model, refit_s = c["refit"]
    if c["refit"] is not None and len(test):
        proba = proba_of(model, test.X, task.n_proba)
        test_metrics = metrics_with_ci(test_task, proba, boot, threshold=threshold_of(model))
    fold_auc = fold_scores(task, res.proba)
    cell = CellResult(
        feature_set=dev.name,
        head=c["head"],
        kind=dev.provenance.get("kind", "?"),
        n_features=int(dev.X.shape[1]),
        seconds=sum(res.fold_seconds) + refit_s,
        cv=cv,
        fold_auc=tuple(fold_auc.tolist()),
        best_params=res.best_params,
        test=test_metrics,
    )
    return Scored(cell, res.mean_proba(), fold_auc, res.proba)


def _auc(cell: CellResult) -> float:
    """The cell's rank score: its pooled CV AUC (a regression: minus its MAE)."""
    return cell.cv.pooled.ranking()
