"""Honest model selection over bench cells: nested selection (``--select nested``) and ensembles (``--ensemble K``).

Taking the bench's best cell is itself a procedure, and the best cell's CV AUC is an optimistic estimate of
it: it won on the very folds it is scored on. Nested selection estimates the procedure. Inside each outer
training fold, an inner stratified (grouped) CV scores every cell. The best cell there is the one chosen for
that outer fold, and its predictions on the outer fold are the ones scored. The pooled result is the expected
AUC of "run this bench and take the best cell", beside the naive best and the gap.

The ensembles combine the top-K cells of the same inner CV, so no scored prediction ever chose its members:

* **soft vote**: the mean of the K cells' probabilities;
* **stacking**: a logistic regression (the meta-learner) on the K cells' inner out-of-fold probabilities
  of the training rows, applied to their predictions of the outer fold.

For the held-out test split, and for the saved model, the same is done once on the development rows: the
top-K by the bench's CV, the meta-learner fitted on their out-of-fold probabilities (mean over repeats).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from featx.errors import FitError
from featx.evaluate.heads.operating import inner_splits, inner_splitter, parse_threshold
from featx.evaluate.heads.survival import harrell
from featx.evaluate.protocol.cv import fold_fit, mean_over_repeats, proba_of
from featx.evaluate.protocol.parallel import ray_backend, resolve_jobs, run_tasks
from featx.evaluate.protocol.task import Task
from featx.evaluate.statistics.comparisons import Scored
from featx.evaluate.statistics.resampling import Resampling
from featx.evaluate.statistics.scoring import evaluate, fold_scores, metrics_with_ci
from featx.progress import progress_bar
from featx.results.bench import CellResult, NestedSelection
from featx.results.metrics import LOWER_IS_BETTER, METRIC_LABELS

ENSEMBLES = ("vote", "stack")
ENSEMBLE_HEADS = {"vote": "soft vote", "stack": "stacking (logistic regression)"}  # the rows' "head" column


@dataclass
class Member:
    """A bench cell as selection sees it: its features, its estimator, and its out-of-fold predictions."""

    title: str
    X: np.ndarray
    estimator: object
    grid: dict | None
    oof: np.ndarray  # (repeats, n, C): the bench's out-of-fold probabilities
    refit: object | None = None  # fitted on every development row (test split, saved model)
    test_X: np.ndarray | None = None


def inner_seed(seed: int, r: int, f: int) -> int:
    """The seed of the inner folds of outer fold ``f`` of repeat ``r``."""
    return seed + 7919 * (r + 1) + 104729 * (f + 1)


class InnerCV:
    """Every member's out-of-fold probabilities on each outer training fold, by an inner CV of that fold alone:
    ``tasks()`` are :func:`~featx.evaluate.protocol.cv.fold_fit` calls for whoever runs them; ``proba[(r, f, i)]`` is
    member ``i``'s (n, C) array, NaN outside outer fold ``(r, f)``'s training rows."""

    def __init__(self, members: list[Member], task: Task, inner_k: int, seed: int):
        self.members, self.folds, self.proba = members, task.folds, {}
        self.calls = []
        y, g, width = task.y, task.groups, task.width
        for r, f, train, _ in task.folds.split():
            splits = _inner_splits(task, train, inner_k, inner_seed(seed, r, f))
            for i, m in enumerate(members):
                self.proba[(r, f, i)] = np.full((len(y), width), np.nan)
                for itr, ite in splits:
                    args = (m.estimator, m.X, y, g, m.grid, seed + r, inner_k, train[itr], train[ite], task.n_proba)
                    self.calls.append((args, (r, f, i), train[ite]))

    def tasks(self, on_done=None) -> list[tuple]:
        return [(fold_fit, args, functools.partial(self._accept, key, rows, on_done)) for args, key, rows in self.calls]

    def _accept(self, key, rows, on_done, out) -> None:
        self.proba[key][rows] = out[0]
        if on_done is not None:
            on_done()


def _inner_splits(task: Task, train: np.ndarray, k: int, seed: int) -> list:
    """The inner folds of the outer training rows ``train``: stratified by class (:func:`inner_splits`), or, for a
    target without classes, a plain K-fold of its units (at most as many folds as units)."""
    g = None if task.groups is None else task.groups[train]
    if task.kind == "classification":
        return inner_splits(task.y[train], g, k, seed)
    units = len(np.unique(g)) if g is not None else len(train)
    if units < 2:
        raise FitError("--select nested: an outer training fold has fewer than 2 subjects for its inner CV.")
    splitter = inner_splitter(min(k, units), seed, g is not None, stratified=False)
    return list(splitter.split(np.zeros((len(train), 1)), groups=g))


def score_of(task: Task, proba) -> float:
    """How good the predictions ``proba`` of ``task``'s rows are, higher better, on the rows with predictions (-inf
    with none): the AUC (:func:`auc_of`), minus a regression's MAE, or a survival target's Harrell's C."""
    ok = ~np.isnan(proba[:, 0])
    if task.kind == "classification":
        return auc_of(task.y, proba, task.pos)
    if not ok.any():
        return -np.inf
    if task.kind == "regression":
        return -float(np.abs(proba[ok, 0] - task.y[ok]).mean())
    y = task.y[ok]
    if not y["event"].any():
        return -np.inf
    return harrell(y, proba[ok, 0])


def auc_of(y, proba, positive: int | None) -> float:
    """The AUC (binary: of class ``positive``; else macro one-vs-rest) of rows with predictions; -inf if none."""
    from sklearn.metrics import roc_auc_score

    ok = ~np.isnan(proba[:, 0])
    y, p = np.asarray(y)[ok], proba[ok]
    if len(np.unique(y)) < 2:
        return -np.inf
    if positive is not None:
        return float(roc_auc_score(y == positive, p[:, positive]))
    if len(np.unique(y)) < p.shape[1]:
        return -np.inf
    return float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=list(range(p.shape[1]))))


class StackedMeta(ClassifierMixin, BaseEstimator):
    """The stacking meta-learner: an L2 logistic regression on the members' probabilities (binary: the positive
    class's, as log-odds; multi-class: every class's), one block per member in order."""

    def __init__(self, positive=None, C=1.0):
        self.positive = positive
        self.C = C

    def features(self, probas: list) -> np.ndarray:
        if self.positive is not None:
            p = np.clip(np.column_stack([q[:, self.positive] for q in probas]), 1e-6, 1 - 1e-6)
            return np.log(p / (1 - p))
        return np.hstack(probas)

    def fit(self, probas: list, y):
        from sklearn.linear_model import LogisticRegression

        self.model_ = LogisticRegression(C=self.C, max_iter=5000).fit(self.features(probas), y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, probas: list) -> np.ndarray:
        return self.model_.predict_proba(self.features(probas))


def ensemble_proba(how: str, probas: list, meta: StackedMeta | None, n_classes: int) -> np.ndarray:
    """The ensemble's probabilities from its members' (a list of (n, C) arrays)."""
    if how == "vote":
        return np.mean(probas, axis=0)
    out = np.zeros((len(probas[0]), n_classes))
    out[:, meta.classes_] = meta.predict_proba(probas)
    return out


@dataclass
class Selected:
    """What the inner CV chose: the nested predictions, each outer fold's choice, the ensembles' predictions."""

    nested: np.ndarray  # (repeats, n, C)
    chosen: list  # the title chosen in each (repeat, fold), repeat-major
    ensembles: dict  # "vote"/"stack" -> (repeats, n, C)
    members: list  # the K titles in each (repeat, fold)
    thresholds: dict = field(default_factory=dict)  # "vote"/"stack" -> (repeats, n), with a learned threshold


def select(inner: InnerCV, task: Task, k: int | None, rule=None) -> Selected:
    """Per outer fold: the member with the best inner-CV AUC (nested selection) and, with ``k``, the top-k's vote and
    stack, each scored on the outer fold's rows by the models the bench fitted on its training rows. With a learned
    threshold ``rule`` (binary; a fixed one is just applied), each ensemble's threshold is chosen on the training
    rows: the vote's on its inner out-of-fold probabilities, the stack's on its meta-learner's probabilities of
    the rows it was fitted on (a logistic regression on K inputs: little to overfit)."""
    members, folds = inner.members, inner.folds
    y, n_classes, positive = task.y, task.n_classes, task.pos
    shape = (folds.repeats, len(y), task.width)
    nested = np.full(shape, np.nan)
    ens = {how: np.full(shape, np.nan) for how in ENSEMBLES} if k else {}
    thresholds = {how: np.full(shape[:2], np.nan) for how in ens} if rule is not None else {}
    chosen, tops = [], []
    for r, f, train, test in folds.split():
        scores = [score_of(task.rows(train), inner.proba[(r, f, i)][train]) for i in range(len(members))]
        order = np.argsort(-np.asarray(scores), kind="stable")
        best = int(order[0])
        nested[r, test] = members[best].oof[r, test]
        chosen.append(members[best].title)
        if not k:
            continue
        top = [int(i) for i in order[:k]]
        tops.append([members[i].title for i in top])
        outer = [members[i].oof[r, test] for i in top]
        own = [inner.proba[(r, f, i)][train] for i in top]
        meta = StackedMeta(positive).fit(own, y[train])
        for how, m in (("vote", None), ("stack", meta)):
            ens[how][r, test] = ensemble_proba(how, outer, m, n_classes)
            if rule is not None:
                thresholds[how][r, test] = rule.choose(
                    y[train] == positive, ensemble_proba(how, own, m, n_classes)[:, positive]
                )
    return Selected(nested, chosen, ens, tops, thresholds)


def ensemble_name(k: int) -> str:
    """The feature-set column of the ensemble rows of ``--ensemble k``."""
    return f"top-{k} cells"


def check_ensemble(k: int | None, n_members: int) -> None:
    """FitError, before any fitting, for an ensemble of more cells than the bench has (or of one)."""
    if k is not None and not 2 <= k <= n_members:
        raise FitError(
            f"--ensemble {k}: an ensemble combines 2 to {n_members} cells (this bench has {n_members}: feature "
            "sets x heads). Choose a K in that range."
        )


@dataclass
class Ensemble:
    """An ensemble as the test split and the saved model use it: members fitted on every development row."""

    how: str
    members: list[Member]
    meta: StackedMeta | None
    threshold: float | None = None  # on the positive class's probability (None: the most probable class)

    def proba(self, probas: list, n_classes: int) -> np.ndarray:
        return ensemble_proba(self.how, probas, self.meta, n_classes)


def development_oof(inner: InnerCV, i: int) -> np.ndarray:
    """Member ``i``'s out-of-fold probabilities of every development row: the bench's (mean over repeats) where the
    outer folds tested the row, else the mean of its inner-CV predictions (a fixed split's training side, which the
    outer split never tests). Each is a prediction by a model that never saw the row."""
    proba = mean_over_repeats(inner.members[i].oof)
    missing = np.isnan(proba[:, 0])
    if missing.any():
        stack = np.stack([p for (_r, _f, j), p in inner.proba.items() if j == i])
        seen = (~np.isnan(stack)).sum(axis=0)
        inner_mean = np.where(seen > 0, np.nansum(stack, axis=0) / np.maximum(seen, 1), np.nan)
        proba[missing] = inner_mean[missing]
    return proba


def final_ensemble(how: str, oof: list, members: list[Member], task: Task, rule=None):
    """The ensemble of ``members`` (already the top-K by the bench's CV) for the test split and the saved model:
    the meta-learner fitted on ``oof``, their out-of-fold probabilities of the development rows
    (:func:`development_oof`), and with a learned threshold ``rule``, the threshold chosen on the ensemble's
    probabilities of those rows. Rows no member predicted out of fold take no part."""
    y, positive = task.y, task.pos
    seen = np.all([~np.isnan(p[:, 0]) for p in oof], axis=0)
    if len(np.unique(y[seen])) < 2:
        raise FitError(
            f"The {ensemble_name(len(members))} ensemble has out-of-fold predictions of {int(seen.sum())} development "
            "rows, fewer than two classes: nothing to fit its meta-learner on. Use --split cv, or a larger split."
        )
    oof, y = [p[seen] for p in oof], y[seen]
    meta = StackedMeta(positive).fit(oof, y) if how == "stack" else None
    ens = Ensemble(how, members, meta)
    if rule is not None:
        ens.threshold = rule.choose(y == positive, ens.proba(oof, oof[0].shape[1])[:, positive])
    return ens


def run_selection(cfg, members: list[Member], cells: dict, task: Task, test: Task | None, progress):
    """The inner CV of every member, nested selection and the ensemble rows of one bench.

    ``members``: the base cells; ``cells``: their CellResults by title, best first by the bench's CV; ``task``: the
    development rows and their folds; ``test``: the held-out test rows, or None. Returns (NestedSelection or
    None, the ensemble rows as :class:`~featx.evaluate.statistics.comparisons.Scored`, the fitted
    :class:`Ensemble` per row title).
    """
    check_ensemble(cfg.ensemble, len(members))
    n_classes, folds, boot = task.n_classes, task.folds, Resampling.of(cfg)
    inner = InnerCV(members, task, cfg.inner_k, cfg.seed)
    what = f"inner {cfg.inner_k}-fold CV of {len(members)} cell(s) in each outer training fold"
    with progress_bar(what, total=len(inner.calls), enabled=progress) as bar:
        with ray_backend(cfg.ray) as backend:
            run_tasks(inner.tasks(bar.update), resolve_jobs(cfg.jobs), backend)
    rule = parse_threshold(cfg.threshold)
    rule = None if rule.default or n_classes != 2 else rule
    sel = select(inner, task, cfg.ensemble, rule)

    def score(proba, thresholds=None):
        cv = evaluate(task, proba, boot, thresholds=thresholds)
        if thresholds is None:
            return cv
        per_fold = tuple(float(thresholds[r, test[0]]) for r, _f, _, test in folds.split() if len(test))
        return replace(cv, thresholds=per_fold)

    def on_test(proba, threshold=None):
        return None if test is None else metrics_with_ci(test, proba, boot, threshold=threshold)

    by_title = {m.title: m for m in members}
    ranked = list(cells)
    rows, fitted = [], {}
    for how in sel.ensembles:
        proba = sel.ensembles[how]
        top = [by_title[t] for t in ranked[: cfg.ensemble]]
        oof = [development_oof(inner, members.index(m)) for m in top]
        ens = final_ensemble(how, oof, top, task, rule)
        test_metrics = None
        if test is not None and all(m.refit is not None for m in top):
            probas = [proba_of(m.refit, m.test_X, n_classes) for m in top]
            test_metrics = on_test(ens.proba(probas, n_classes), ens.threshold)
        fold_auc = fold_scores(task, proba)
        cell = CellResult(
            feature_set=ensemble_name(cfg.ensemble),
            head=ENSEMBLE_HEADS[how],
            kind="ensemble",
            n_features=cfg.ensemble,
            seconds=0.0,
            cv=score(proba, sel.thresholds.get(how)),
            fold_auc=tuple(fold_auc.tolist()),
            test=test_metrics,
            members=tuple(m.title for m in top),
            fold_members=tuple(tuple(t) for t in sel.members),
        )
        rows.append(Scored(cell, mean_over_repeats(proba), fold_auc, proba))
        fitted[cell.title] = ens
    selection = None
    if cfg.select == "nested":
        selection = _nested(score(sel.nested), sel, cells[ranked[0]], cfg, len(members), test is not None)
    return selection, rows, fitted


def _nested(nested, sel: Selected, best, cfg, candidates: int, has_test: bool):
    """The NestedSelection record, with the sentence that says which figure to quote. Its figures are the primary
    metric (the AUC; a regression's MAE, a survival target's Harrell's C); ``gap``: how much better the naive figure
    looks than the nested one (positive: optimistic)."""
    key = best.cv.pooled.primary
    label = METRIC_LABELS[key]
    naive, honest = best.cv.pooled.value(key), nested.pooled.value(key)
    gap = None
    if naive is not None and honest is not None:
        gap = honest - naive if key in LOWER_IS_BETTER else naive - honest
    ci = nested.pooled.auc_ci if key == "auc" else nested.pooled.interval(key)
    quote = (
        f"Quote the nested estimate, {label} {honest:.3f}"
        + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
        + f", for the model this bench selects among its {candidates} cells; the best cell's own CV {label} "
        f"({naive:.3f}) won on the folds it is scored on and is optimistic by {gap:+.3f}."
        if honest is not None and naive is not None and gap is not None
        else "The nested estimate is not computable on these folds; no CV figure of the best cell is unbiased."
    )
    tested = best.test.value(key) if has_test and best.test is not None else None
    if tested is not None:
        quote += (
            f" On the held-out test split, scored once, the configuration chosen by CV ({best.title}) has {label} "
            f"{tested:.3f}: the figure to quote for it as a test result."
        )
    return NestedSelection(
        naive_best=best.title,
        naive_auc=naive,
        nested=nested,
        gap=gap,
        chosen=tuple(sel.chosen),
        selected=best.title,
        inner_k=cfg.inner_k,
        quote=quote,
        test=best.test if has_test else None,
        candidates=candidates,
    )
