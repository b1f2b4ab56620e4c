"""The result of ``featx bench``: one cell per feature set x head on identical folds, and the paired tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from featx.results.codec import extra_field
from featx.results.metrics import CVScores, Metrics
from featx.results.runs import Protocol, Target


def cell_title(feature_set: str, head: str) -> str:
    """How a bench row is named (tables, ``--save-row``, saved ensembles): ``resnet50 + logreg``."""
    return f"{feature_set} + {head}"


@dataclass(frozen=True)
class CellResult:
    """One feature set x one head (or a fine-tuning run's row), ranked by its pooled CV primary metric (AUC; a
    regression's MAE). ``fold_auc`` holds that metric per (repeat, fold), under its first name."""

    feature_set: str
    head: str
    kind: str  # cnn | radiomics | finetune
    n_features: int
    seconds: float
    cv: CVScores
    rank: int = 0
    fold_auc: tuple[float, ...] = ()
    best_params: Any = None
    test: Metrics | None = None
    run: str | None = None  # a fine-tuning row: its run folder
    #: an ensemble row (kind ``ensemble``): the K cells it combines for the test split and the saved model
    #: (the top-K by CV), and the K chosen by the inner CV of each (repeat, fold)
    members: tuple[str, ...] = ()
    fold_members: tuple[tuple[str, ...], ...] = ()

    @property
    def title(self) -> str:
        return cell_title(self.feature_set, self.head)


@dataclass(frozen=True)
class DeLongTest:
    """DeLong's paired test of two AUCs on the same samples (a - b)."""

    auc_a: float
    auc_b: float
    diff: float
    z: float
    p: float


@dataclass(frozen=True)
class CorrectedTTest:
    """The corrected resampled t-test (Nadeau & Bengio) of per-fold differences (a - b) of the AUC (a regression:
    the MAE)."""

    mean_diff: float
    t: float
    df: int
    p: float


@dataclass(frozen=True)
class PairedBootstrap:
    """A paired bootstrap of the difference a - b of ``metric`` (the (macro) AUC; a regression's MAE): both cells on
    the same resamples of units."""

    diff: float
    lo: float
    hi: float
    p: float
    n_boot: int
    unit: str  # subject | sample
    metric: str = "auc"


@dataclass(frozen=True)
class Comparison:
    """Two cells compared: why these two, on which predictions, the tests, and why a test could not run.

    ``scope``: the predictions both tests use (a CV's out-of-fold ones, or the test side of a fixed split).
    ``not_computable``: test name (``delong``, ``bootstrap``, ``corrected_t``) -> why it was not run; a
    test's figures are always finite where present.
    """

    a: str
    b: str
    why: str
    delong: DeLongTest | None = None
    corrected_t: CorrectedTTest | None = None
    bootstrap: PairedBootstrap | None = None
    scope: str = "out-of-fold predictions of cross-validation"
    not_computable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NestedSelection:
    """``--select nested``: an honest estimate of "run this bench and take its best cell".

    ``naive_best`` is the cell with the best CV AUC and ``naive_auc`` that AUC, optimistic because the cell
    won on the folds it is scored on. ``nested`` scores, in each outer fold, the cell an inner CV of that
    fold's training rows chose (``chosen``, per repeat and fold), on the outer fold: the expected AUC of the
    selected model, and ``gap`` = naive - nested. A regression's figures are its MAE (``gap`` = nested - naive),
    a survival target's Harrell's C, under the same names: positive ``gap`` is always optimism. ``selected`` is
    the cell chosen by CV on every development row (the naive best), and ``test`` its metrics on the held-out
    test split, scored once. ``quote`` says which figure a reader may quote.
    """

    naive_best: str
    naive_auc: float | None
    nested: CVScores
    gap: float | None
    chosen: tuple[str, ...]
    selected: str
    inner_k: int
    quote: str
    test: Metrics | None = None
    candidates: int = 0

    @property
    def chosen_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.chosen:
            out[c] = out.get(c, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


@dataclass(frozen=True)
class BenchResult:
    """Everything one ``featx bench`` run produced (``provenance``: per feature set)."""

    type: str
    featx_version: str
    created: str
    store: str
    feature_sets: tuple[str, ...]
    heads: tuple[str, ...]
    protocol: Protocol
    classes: tuple[str, ...]
    n_dev: int
    n_test: int
    cells: tuple[CellResult, ...]
    comparisons: tuple[Comparison, ...] = ()
    positive: str | None = None
    finetuned: tuple[str, ...] = ()
    provenance: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    dropped_features: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    folds: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] | None = None
    outputs: Mapping[str, str] | None = None
    selection: NestedSelection | None = None
    saved_model: str | None = None
    learning: Mapping[str, Any] | None = None  # --train-sizes: featx.evaluate.runs.learning's record
    target: Target = Target()
    extra: Mapping[str, Any] = extra_field()

    @property
    def title(self) -> str:
        return f"featx bench: {len(self.feature_sets)} feature set(s) x {len(self.heads)} head(s)"
