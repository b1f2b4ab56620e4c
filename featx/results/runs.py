"""The result of one run of ``featx fit`` or ``featx finetune``: protocol, head, scores, fine-tuning records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from featx.results.codec import extra_field
from featx.results.metrics import CVScores, Metrics


@dataclass(frozen=True)
class Protocol:
    """How the samples were split: every run scored on the same protocol is comparable.

    Attributes
    ----------
    split : {'cv', 'fixed'}
    cv : int
        Folds per repeat (1 for a fixed split).
    repeats, seed : int
    splitter : str
        The scikit-learn splitter, or the manifest's split column.
    grouped_by_subject : bool
    test_size : float or None
        The test fraction drawn for a fixed split (None: the manifest's split column, or CV).
    folds : str
        One line describing all of the above.
    held_out_test : bool
        Whether manifest rows marked ``test`` were scored once by a model refit on the others.
    split_by : {'subject', 'image'}
        ``image``: a deliberately leaky slice-level split, kept only to show what it would report.
    """

    split: str
    cv: int
    repeats: int
    seed: int
    splitter: str
    grouped_by_subject: bool
    test_size: float | None
    folds: str
    held_out_test: bool
    decision: str = "most probable class"  # or the --threshold rule and where it was chosen
    calibrate: str = "none"  # or sigmoid/isotonic, fitted on an inner CV of each training set
    fuse: str | None = None
    n_boot: int = 0
    folds_from: str | None = None
    split_by: str = "subject"
    tuned: bool | None = None  # bench: nested tuning of every cell
    pca: int | None = None  # bench: PCA components of every cell
    select: str = "naive"  # bench: naive ranking, or nested selection
    ensemble: int | None = None  # bench: the K of the top-K ensembles
    #: exact copies among the rows (featx.dataset.copies): counts, policy, examples, test rows copied, summary
    copies: Mapping[str, Any] | None = None
    #: scored rows with a near-copy among their training rows (featx.audit.near): counts, threshold, summary
    near_copies: Mapping[str, Any] | None = None

    @property
    def leaky(self) -> bool:
        return self.split_by == "image"

    @property
    def scored_on(self) -> str:
        """What the ``cv`` scores of a run describe, for labels: ``CV``, or ``test split`` for a fixed split."""
        return "test split" if self.split == "fixed" else "CV"

    @property
    def per_unit(self) -> str:
        """``per fold``, or ``per draw`` (of the fixed split)."""
        return "per draw" if self.split == "fixed" else "per fold"


@dataclass(frozen=True)
class HeadInfo:
    """The classifier: registry name, description, the estimator as built, PCA and the tuning grid."""

    name: str
    description: str
    estimator: str
    pca: int | None = None
    tuned: Mapping[str, Any] | None = None  # {"grid": ..., "inner_k": ...}


@dataclass(frozen=True)
class SequenceScores:
    """One sequence model of a fused run (``--fuse vote|mean``)."""

    cv: CVScores
    n: int
    test: Metrics | None = None
    run: str | None = None  # fine-tuning: the sequence's own run folder


@dataclass(frozen=True)
class Epoch:
    """One fine-tuning epoch: training, inner-validation and held-out losses and accuracies."""

    epoch: int
    train_loss: float
    train_acc: float
    lr_head: float
    val_loss: float | None = None
    val_acc: float | None = None
    test_loss: float | None = None
    test_acc: float | None = None
    train_seconds: float | None = None
    seconds: float | None = None

    def curve(self, part: str, what: str) -> float | None:
        """``part`` in train/val/test, ``what`` in loss/acc."""
        return getattr(self, f"{part}_{what}")


@dataclass(frozen=True)
class RunSummary:
    """The published studies' summary of one run's accuracy curve."""

    curve: str
    best_acc: float
    best_epoch: int
    converged_from_epoch: int
    mean_acc_after_convergence: float
    var_acc_after_convergence: float
    first_epoch_reaching_mean: int
    epochs_run: int
    seconds_per_epoch: float


@dataclass(frozen=True)
class FoldRun:
    """One trained model: a fold of a repeat, or the ``final`` model trained on every development row."""

    repeat: int | str
    fold: int | str
    n_train: int
    n_val: int
    best_epoch: int
    stopped_early: bool
    seconds: float
    history: tuple[Epoch, ...]
    summary: RunSummary | None = None
    sequence: str | None = None

    @property
    def is_final(self) -> bool:
        return self.repeat == "final"


@dataclass(frozen=True)
class TrainSettings:
    """How each model was trained, as recorded."""

    epochs: int
    batch_size: int
    lr: float
    lr_backbone: float
    optimizer: str
    weight_decay: float
    momentum: float
    val_fraction: float
    patience: int | None
    class_weight: bool
    augment: Mapping[str, Any]
    amp: bool
    converged_from: float


@dataclass(frozen=True)
class FinetuneHead:
    """The new classifier of a fine-tuned network."""

    kind: str
    hidden: int
    dropout: float


@dataclass(frozen=True)
class FinetuneInfo:
    """What fine-tuning did: blocks frozen, training settings, every model's curves, exports."""

    backbone: str
    weights: str
    freeze: int
    blocks: tuple[str, ...]
    frozen_blocks: tuple[str, ...]
    trainable_parameters: int
    head: FinetuneHead
    train: TrainSettings
    augment: str
    input_size: int
    device: str
    runs: tuple[FoldRun, ...]
    gradcam: tuple[str, ...] = ()
    gradcam_layer: str | None = None
    model: str | None = None
    exported: Mapping[str, Any] | None = None
    seconds: float = 0.0
    sequence_runs: Mapping[str, str] | None = None

    def fold_runs(self, sequence: str | None = None) -> list[FoldRun]:
        """The cross-validation runs (not the final model) of one sequence (None: runs without a sequence)."""
        return [r for r in self.runs if not r.is_final and r.sequence == sequence]


@dataclass(frozen=True)
class Target:
    """What a run predicted: ``classification`` (the manifest's label), ``regression`` (the number in the outcome
    column ``value``) or ``survival`` (the outcome columns ``time`` and ``event``; ``times``: where each row's
    survival function was evaluated; ``horizons``: the times of the time-dependent AUC)."""

    kind: str = "classification"
    value: str | None = None
    time: str | None = None
    event: str | None = None
    times: tuple[float, ...] = ()
    horizons: tuple[float, ...] = ()


@dataclass(frozen=True)
class FitResult:
    """Everything one ``featx fit`` (``type`` fit) or ``featx finetune`` (``type`` finetune) run produced.

    ``provenance`` is the feature set's (what made the numbers: backbone spec and sha256s, or the
    pyradiomics settings), ``config`` the run's settings with their sources, ``folds`` the folds by
    sample id (``folds.json``). ``extra`` keeps keys a caller adds (the demo's ``extract`` summary).
    """

    type: str
    featx_version: str
    created: str
    store: str
    feature_set: str
    provenance: Mapping[str, Any]
    versions: Mapping[str, str]
    head: HeadInfo
    protocol: Protocol
    classes: tuple[str, ...]
    n_features: int
    dropped_features: tuple[str, ...]
    n_dev: int
    n_test: int
    cv: CVScores
    test: Metrics | None = None
    folds: Mapping[str, Any] = field(default_factory=dict)
    sequence: str | None = None
    sequences: Mapping[str, SequenceScores] | None = None
    seconds: float | None = None
    saved_model: str | None = None
    finetune: FinetuneInfo | None = None
    config: Mapping[str, Any] | None = None
    outputs: Mapping[str, str] | None = None
    target: Target = Target()
    extra: Mapping[str, Any] = extra_field()

    @property
    def title(self) -> str:
        return f"{self.feature_set} + {self.head.name}"

    @property
    def positive(self) -> str | None:
        return self.cv.pooled.positive
