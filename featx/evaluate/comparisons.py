"""Which bench cells are compared, and how: DeLong's paired test and the corrected resampled t-test.

DeLong's test runs on the out-of-fold scores averaged over repeats (binary problems); the
corrected resampled t-test (Nadeau & Bengio) on the per-fold AUCs accounts for folds sharing
training data. Neither corrects for having picked the best of many cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featx.evaluate.folds import Folds
from featx.evaluate.metrics import corrected_ttest, delong_paired
from featx.results.bench import CellResult, Comparison, CorrectedTTest, DeLongTest


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


def compare(a: Scored, b: Scored, why: str, y, classes, folds: Folds) -> Comparison:
    """DeLong (binary: repeat-averaged out-of-fold scores) and the corrected t-test on per-fold AUCs, a - b."""
    delong = None
    if len(classes) == 2:
        pos = classes.index(a.cell.cv.pooled.positive)
        delong = DeLongTest(**delong_paired(y == pos, a.mean_proba[:, pos], b.mean_proba[:, pos]))
    diffs = a.fold_auc - b.fold_auc
    sizes = [(len(tr), len(te)) for _, _, tr, te in folds.split()]
    n_train, n_test = np.mean(sizes, axis=0)
    ok = ~np.isnan(diffs)
    t = CorrectedTTest(**corrected_ttest(diffs[ok], n_train, n_test)) if ok.sum() > 1 else None
    return Comparison(a.cell.title, b.cell.title, why, delong, t)
