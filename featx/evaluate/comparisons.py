"""Which bench cells are compared, and how: DeLong's paired test, a paired bootstrap, the corrected t-test.

All run on the predictions both cells made: the out-of-fold scores of a CV (averaged over
repeats), or the test side of a fixed split. DeLong's test covers binary problems; the paired
bootstrap of the (macro) AUC difference resamples subjects for both cells at once and covers
multi-class ones; the corrected resampled t-test (Nadeau & Bengio) on the per-fold AUCs accounts
for folds sharing training data. None corrects for having picked the best of many cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featx.evaluate.folds import Folds
from featx.evaluate.metrics import corrected_ttest, delong_paired
from featx.evaluate.resampling import resample_weights, weighted_auc
from featx.results.bench import CellResult, Comparison, CorrectedTTest, DeLongTest, PairedBootstrap


@dataclass(frozen=True)
class Scored:
    """A bench cell with the arrays its comparisons need."""

    cell: CellResult
    mean_proba: np.ndarray  # (n, C): each sample's out-of-fold probability, averaged over repeats
    fold_auc: np.ndarray  # AUC per (repeat, fold)
    oof: np.ndarray  # (repeats, n, C) out-of-fold probabilities, NaN where untested


def pairs_to_compare(cells: list[Scored]) -> list[tuple[Scored, Scored, str]]:
    """The best deep cell (the best cell when none is deep) vs the best radiomics cell and vs its runner-up, and
    the best fine-tuned row vs the best frozen-feature row. ``cells`` are ranked best first."""
    deep = [c for c in cells if c.cell.kind == "cnn"]
    rad = [c for c in cells if c.cell.kind == "radiomics"]
    anchor = deep[0] if deep else cells[0]
    label = "best deep" if deep else "best"
    others = [c for c in cells if c is not anchor]
    pairs = []
    if rad and rad[0] is not anchor:
        pairs.append((anchor, rad[0], f"{label} vs best radiomics"))
    if others and not (pairs and others[0] is rad[0]):
        tuned_runner_up = others[0].cell.kind == "finetune" and deep
        pairs.append(
            (anchor, others[0], f"{label} vs runner-up" + (" (the best fine-tuned row)" if tuned_runner_up else ""))
        )
    elif pairs:
        pairs[0] = (anchor, rad[0], f"{label} vs best radiomics (also the runner-up)")
    tuned = [c for c in cells if c.cell.kind == "finetune"]
    if tuned and deep and not any({id(tuned[0]), id(deep[0])} == {id(a), id(b)} for a, b, _ in pairs):
        pairs.append((tuned[0], deep[0], "best fine-tuned vs best frozen features"))
    return pairs


def compare(
    a: Scored, b: Scored, why: str, y, classes, folds: Folds, groups=None, n_boot: int = 1000, seed: int = 0
) -> Comparison:
    """a - b on the predictions both cells made (out-of-fold, or the test side of a fixed split).

    DeLong's paired test (binary) on the repeat-averaged scores; a paired bootstrap of the (macro) AUC
    difference, resampling ``groups`` (subjects) jointly for both cells, which also covers multi-class
    problems; the corrected resampled t-test on per-fold AUCs (needs two folds or draws). A test that
    cannot run is left out with the reason, so no NaN ever reaches a p-value.
    """
    tested = ~np.isnan(a.mean_proba[:, 0]) & ~np.isnan(b.mean_proba[:, 0])
    yt, pa, pb = np.asarray(y)[tested], a.mean_proba[tested], b.mean_proba[tested]
    gt = None if groups is None else np.asarray(groups)[tested]
    missing: dict[str, str] = {}
    delong = None
    if len(classes) != 2:
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
    boot = None
    if not n_boot:
        missing["bootstrap"] = "--bootstrap 0"
    else:
        boot, reason = paired_bootstrap(yt, pa, pb, classes, a.cell.cv.pooled.positive, gt, n_boot, seed)
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
            missing["corrected_t"] = "the per-fold AUC differences do not vary (zero variance)"
    elif len(diffs) <= 1:
        missing["corrected_t"] = "one split has no fold-to-fold variation (--repeats N draws N splits)"
    else:
        missing["corrected_t"] = f"the AUC is computable in {int(ok.sum())} of {len(diffs)} folds; it needs 2"
    return Comparison(a.cell.title, b.cell.title, why, delong, corrected, boot, folds.scope, missing)


def paired_bootstrap(y, pa, pb, classes, positive, groups=None, n_boot: int = 1000, seed: int = 0):
    """(PairedBootstrap, "") of AUC(a) - AUC(b) (macro one-vs-rest when multi-class), or (None, why not).

    Both cells are scored on the same resamples of units (subjects when given). Resamples that lose a
    class are skipped. The two-sided p is twice the smaller tail of the differences around 0.
    """
    absent = [c for i, c in enumerate(classes) if not (np.asarray(y) == i).any()]
    if absent:
        return None, f"the {len(y)} predictions hold no {' or '.join(map(repr, absent))}"
    binary = len(classes) == 2
    pos = (classes.index(positive) if positive is not None else 1) if binary else None
    weights, unit = resample_weights(len(y) if groups is None else groups, n_boot, seed)
    diffs = []
    for W in weights:
        d = weighted_auc(W, y, pa, pos) - weighted_auc(W, y, pb, pos)
        diffs.extend(d[np.isfinite(d)])  # NaN: a resample that lost a class
    if len(diffs) < max(20, n_boot // 10):
        return None, f"too few resamples hold every class ({len(diffs)} of {n_boot}): the split is too small"
    d = np.asarray(diffs)
    once = np.ones((1, len(y)))  # the predictions themselves
    full = float(weighted_auc(once, y, pa, pos)[0] - weighted_auc(once, y, pb, pos)[0])
    p = min(1.0, 2 * min((np.sum(d <= 0) + 1) / (len(d) + 1), (np.sum(d >= 0) + 1) / (len(d) + 1)))
    lo, hi = np.percentile(d, [2.5, 97.5])
    return PairedBootstrap(full, float(lo), float(hi), float(p), int(len(d)), unit), ""
