"""The result of ``featx bench``: one cell per feature set x head on identical folds, and the paired tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from featx.results.codec import extra_field
from featx.results.metrics import CVScores, Metrics
from featx.results.runs import Protocol


@dataclass(frozen=True)
class CellResult:
    """One feature set x one head (or a fine-tuning run's row), ranked by pooled CV AUC."""

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

    @property
    def title(self) -> str:
        return f"{self.feature_set} + {self.head}"


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
    """The corrected resampled t-test (Nadeau & Bengio) of per-fold AUC differences (a - b)."""

    mean_diff: float
    t: float
    df: int
    p: float


@dataclass(frozen=True)
class PairedBootstrap:
    """A paired bootstrap of the (macro) AUC difference a - b: both cells on the same resamples of units."""

    diff: float
    lo: float
    hi: float
    p: float
    n_boot: int
    unit: str  # subject | sample


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
    extra: Mapping[str, Any] = extra_field()

    @property
    def title(self) -> str:
        return f"featx bench: {len(self.feature_sets)} feature set(s) x {len(self.heads)} head(s)"
