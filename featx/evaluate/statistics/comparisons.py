"""Which bench cells are compared, and how: DeLong's paired test, a paired bootstrap, the corrected t-test.

All run on the predictions both cells made: the out-of-fold scores of a CV (averaged over
repeats), or the test side of a fixed split. DeLong's test covers binary problems; the paired
bootstrap of the (macro) AUC difference resamples subjects for both cells at once and covers
multi-class ones; the corrected resampled t-test (Nadeau & Bengio) on the per-fold AUCs accounts
for folds sharing training data. None corrects for having picked the best of many cells. A regression's cells are
compared by their MAE instead (a survival target's by Harrell's C): a paired bootstrap of that difference, and the
corrected t-test on its per-fold values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from featx.evaluate.protocol.task import Task
from featx.evaluate.statistics.metrics import corrected_ttest, delong_paired
from featx.evaluate.statistics.regression import paired_mae_bootstrap
from featx.evaluate.statistics.resampling import Resampling, paired_result, resample_weights, weighted_auc
from featx.evaluate.statistics.survival import paired_c_bootstrap
from featx.results.bench import CellResult, Comparison, CorrectedTTest, DeLongTest


@dataclass(frozen=True)
class Scored:
    """A bench cell with the arrays its comparisons need."""

    cell: CellResult
    mean_proba: np.ndarray  # (n, C): each sample's out-of-fold probability, averaged over repeats
    fold_auc: np.ndarray  # AUC per (repeat, fold)
    oof: np.ndarray  # (repeats, n, C) out-of-fold probabilities, NaN where untested


def pairs_to_compare(cells: list[Scored]) -> list[tuple[Scored, Scored, str]]:
    """The comparisons a bench answers, each pair once, every label naming the cells' roles. ``cells`` are ranked
    best first.

    * rank 1 vs rank 2;
    * the best deep cell vs the best radiomics cell (when both exist): the deep-versus-radiomics question;
    * each combined set's best cell vs the best cell of each of its parts that the bench ran;
    * the best fine-tuned row vs the best frozen-feature row.

    A pair asked for twice (rank 1 is the best deep cell, rank 2 the best radiomics one) is compared once, under
    both labels.
    """
    by_kind = lambda kind: [c for c in cells if c.cell.kind == kind]  # noqa: E731
    wanted: list[tuple[Scored, Scored, str]] = []
    if len(cells) > 1:
        wanted.append((cells[0], cells[1], "rank 1 vs rank 2"))
    deep, rad = by_kind("cnn"), by_kind("radiomics")
    if deep and rad:
        wanted.append((deep[0], rad[0], "best deep vs best radiomics"))
    for combined in _best_per_set(by_kind("combined")):
        parts = combined.cell.feature_set.split("+")
        for part in parts:
            best_part = next((c for c in cells if c.cell.feature_set == part), None)
            if best_part is not None:
                wanted.append((combined, best_part, f"best {combined.cell.feature_set} vs best of its part {part}"))
    tuned = by_kind("finetune")
    frozen = [c for c in cells if c.cell.kind not in ("finetune", "ensemble")]
    if tuned and frozen:
        wanted.append((tuned[0], frozen[0], "best fine-tuned vs best frozen features"))
    pairs: dict[frozenset, tuple[Scored, Scored, list[str]]] = {}
    for a, b, why in wanted:
        if a is b:
            continue
        key = frozenset((id(a), id(b)))
        if key in pairs:
            pairs[key][2].append(why)
        else:
            pairs[key] = (a, b, [why])
    return [(a, b, "; ".join(whys)) for a, b, whys in pairs.values()]


def _best_per_set(cells: list[Scored]) -> list[Scored]:
    """The best (first) cell of each feature set among ranked ``cells``."""
    seen, out = set(), []
    for c in cells:
        if c.cell.feature_set not in seen:
            seen.add(c.cell.feature_set)
            out.append(c)
    return out


def compare(a: Scored, b: Scored, why: str, task: Task, boot: Resampling) -> Comparison:
    """a - b on the predictions both cells made (out-of-fold, or the test side of a fixed split).

    DeLong's paired test (binary) on the repeat-averaged scores; a paired bootstrap of the (macro) AUC
    difference, resampling ``groups`` (subjects) jointly for both cells, which also covers multi-class
    problems; the corrected resampled t-test on per-fold AUCs (needs two folds or draws). A test that
    cannot run is left out with the reason, so no NaN ever reaches a p-value.
    """
    classes, folds = list(task.classes), task.folds
    tested = ~np.isnan(a.mean_proba[:, 0]) & ~np.isnan(b.mean_proba[:, 0])
    both = replace(task.rows(tested).without_folds(), positive=a.cell.cv.pooled.positive)
    yt, pa, pb = both.y, a.mean_proba[tested], b.mean_proba[tested]
    missing: dict[str, str] = {}
    delong = None
    if task.kind == "regression":
        missing["delong"] = "DeLong's test compares AUCs; a regression is compared by its MAE"
    elif task.kind == "survival":
        missing["delong"] = "DeLong's test compares AUCs; a survival target is compared by Harrell's C"
    elif len(classes) != 2:
        missing["delong"] = "DeLong's test compares two binary AUCs: see the paired bootstrap of the macro AUC"
    else:
        pos = classes.index(a.cell.cv.pooled.positive)
        t = yt == pos
        if min(t.sum(), (~t).sum()) < 2:
            missing["delong"] = f"needs 2 samples of each class; these {len(t)} have {int(t.sum())} {classes[pos]}"
        else:
            d = delong_paired(t, pa[:, pos], pb[:, pos])
            if all(np.isfinite([d["z"], d["p"]])):
                delong = DeLongTest(**d)
            else:
                missing["delong"] = "the AUC difference has zero variance (one cell ranks every pair the same way)"
    paired = None
    if not boot.n_boot:
        missing["bootstrap"] = "--bootstrap 0"
    else:
        test = {"regression": paired_mae_bootstrap, "survival": paired_c_bootstrap}.get(task.kind, paired_bootstrap)
        paired, reason = test(both, pa, pb, boot)
        if reason:
            missing["bootstrap"] = reason
    diffs = a.fold_auc - b.fold_auc
    ok = ~np.isnan(diffs)
    corrected = None
    if ok.sum() > 1:
        sizes = [(len(tr), len(te)) for _, _, tr, te in folds.split()]
        n_train, n_test = np.mean(sizes, axis=0)
        res = corrected_ttest(diffs[ok], n_train, n_test)
        if all(np.isfinite([res["t"], res["p"]])):
            corrected = CorrectedTTest(**res)
        else:
            missing["corrected_t"] = "the per-fold differences do not vary (zero variance)"
    elif len(diffs) <= 1:
        missing["corrected_t"] = "one split has no fold-to-fold variation (--repeats N draws N splits)"
    else:
        missing["corrected_t"] = f"the AUC is computable in {int(ok.sum())} of {len(diffs)} folds; it needs 2"
    return Comparison(a.cell.title, b.cell.title, why, delong, corrected, paired, folds.scope, missing)


def paired_bootstrap(task: Task, pa, pb, boot: Resampling):
    """(PairedBootstrap, "") of AUC(a) - AUC(b) (macro one-vs-rest when multi-class) on ``task``'s rows, or
    (None, why not).

    Both cells are scored on the same resamples of units (``task.groups``, subjects, when given). Resamples that lose a
    class are skipped. The two-sided p is twice the smaller tail of the differences around 0. ``pa`` and ``pb``
    are probability arrays, or lists of them (draws of one cell, e.g. ``bench --train-sizes``): a cell's AUC is then
    the mean of its draws' AUCs on each resample.
    """
    y, n_boot = task.y, boot.n_boot
    absent = [c for i, c in enumerate(task.classes) if not (y == i).any()]
    if absent:
        return None, f"the {len(y)} predictions hold no {' or '.join(map(repr, absent))}"
    pos = task.pos
    weights, unit = resample_weights(len(y) if task.groups is None else task.groups, n_boot, boot.seed)
    draws_a, draws_b = (p if isinstance(p, list) else [p] for p in (pa, pb))

    def auc(W, draws):
        return np.mean([weighted_auc(W, y, p, pos) for p in draws], axis=0)

    diffs = []
    for W in weights:
        d = auc(W, draws_a) - auc(W, draws_b)
        diffs.extend(d[np.isfinite(d)])  # NaN: a resample that lost a class
    once = np.ones((1, len(y)))  # the predictions themselves
    full = float(auc(once, draws_a)[0] - auc(once, draws_b)[0])
    return paired_result(diffs, full, unit, n_boot, "auc", "hold every class: the split is too small")
