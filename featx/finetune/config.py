"""``TrainConfig`` (how one model is trained) and ``FinetuneConfig`` (a whole ``featx finetune`` run).

``FinetuneConfig`` is a ``TrainConfig`` plus the split settings it shares with ``fit`` and
``bench`` (so a fine-tuned row and the frozen-feature rows are scored on the same folds), the
backbone, the new head, Grad-CAM and export. ``featx.toml`` section: ``[finetune]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from featx.config import Choice, Config, setting
from featx.errors import ConfigError
from featx.evaluate.protocol.fusion import MODEL_FUSIONS
from featx.evaluate.protocol.settings import SplitSettings
from featx.finetune.data import Augment
from featx.finetune.model import HEADS as HEAD_KINDS
from featx.finetune.model import HeadConfig
from featx.images.intensity import check_policy
from featx.results.runs import TrainSettings

OPTIMIZERS = Choice("optimizer", ("adamw", "sgd"))
DEVICES = Choice("device", ("auto", "cpu", "cuda"))
FUSE = Choice("fusion", MODEL_FUSIONS)
_TAG = re.compile(r"^[A-Za-z0-9_-]+$")


def _fraction_below_one(value: float) -> float:
    if not 0 <= value < 1:
        raise ConfigError(f"give a fraction in [0, 1), got {value}.")
    return value


def _freeze(value) -> str:
    text = str(value).strip().lower()
    if text != "all" and not text.isdigit():
        raise ConfigError(f"give a number of blocks (0 = train everything) or 'all', got {value!r}.")
    return text


def check_tag(tag: str) -> str:
    """An ``export`` name usable as a backbone tag (``<arch>.ft-<tag>``)."""
    if not _TAG.match(tag):
        raise ConfigError(f"{tag!r}: use letters, digits, '-' and '_' only (it becomes <arch>.ft-{tag}).", "export")
    return tag


@dataclass(frozen=True)
class TrainConfig(Config):
    """How one model is trained: loss, optimiser, schedule, early stopping and augmentation."""

    epochs: int = setting(10, "Training epochs (per fold).", minimum=1)
    batch_size: int = setting(32, "Training batch size.", minimum=2)
    lr: float = setting(1e-3, "Learning rate of the new head.")
    lr_backbone: float = setting(1e-4, "Learning rate of the unfrozen backbone blocks.")
    optimizer: str = setting("adamw", "adamw or sgd (momentum 0.9); cosine schedule either way.", choice=OPTIMIZERS)
    weight_decay: float = setting(1e-4, "Weight decay.")
    momentum: float = setting(0.9, "Momentum of SGD.")
    val_fraction: float = setting(
        0.15,
        "Subjects of each training fold held out for early stopping (0: none, keep the last epoch).",
        check=_fraction_below_one,
    )
    patience: int = setting(10, "Stop after this many epochs without a lower validation loss (0: never).", minimum=0)
    class_weight: bool = setting(True, "Weight the loss by inverse class frequency.")
    hflip: bool = setting(True, "Random horizontal flips.")
    vflip: bool = setting(False, "Random vertical flips.")
    rotate: float = setting(12.0, "Random rotation, +-degrees.")
    shift: float = setting(0.0, "Random shift, +- fraction of the side.")
    shear: float = setting(0.0, "Random shear, +-degrees.")
    jitter: float = setting(0.0, "Random contrast (1 +- j) and brightness (+- j std) jitter.")
    amp: bool = setting(True, "Mixed precision (float16) on a GPU.")
    converged_from: float = setting(
        0.5, "'After convergence' in the summaries: this fraction of the epochs run onwards.", check=_fraction_below_one
    )

    @property
    def augment(self) -> Augment:
        return Augment(self.hflip, self.vflip, self.rotate, self.shift, self.shear, self.jitter)

    @property
    def stop_after(self) -> int | None:
        """Early-stopping patience in epochs; None: never stop early."""
        return self.patience or None

    def settings(self) -> TrainSettings:
        """The training settings as the results record them."""
        return TrainSettings(
            self.epochs,
            self.batch_size,
            self.lr,
            self.lr_backbone,
            self.optimizer,
            self.weight_decay,
            self.momentum,
            self.val_fraction,
            self.stop_after,
            self.class_weight,
            self.augment.to_dict(),
            self.amp,
            self.converged_from,
        )


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig, SplitSettings):
    """A whole ``featx finetune`` run: the backbone, the new head, the training, the split, the outputs."""

    section = "finetune"
    manifest: Path | None = setting(None, "Manifest CSV or image folder (as for extract).")
    backbone: str | None = setting(
        None,
        "Backbone to fine-tune (resnet18, resnet50, vgg11_bn, vgg16, googlenet, "
        "inception_v3, densenet121, efficientnet_lite0, efficientnet_b0, mobilenet_v3_large).",
    )
    out: Path | None = setting(None, "Folder for results.json, curves, predictions, Grad-CAM overlays, model.pt.")
    weights: str = setting("imagenet", "imagenet (default weights), a .pth file, or random (tests only).")
    freeze: str = setting(
        "0",
        "Freeze the lowest N logical blocks (0 = train everything; 'all' = only the new head, "
        "the linear probe). The blocks per backbone: docs/finetune.md.",
        check=_freeze,
    )
    head: str = setting(
        "linear", "New head: linear, or mlp (features -> hidden -> classes, ReLU, dropout).", choice=HEAD_KINDS
    )
    hidden: int = setting(128, "Hidden width of the mlp head (GoogLeNet glioma study: 128).", minimum=1)
    dropout: float = setting(0.0, "Dropout before each head layer (e.g. 0.5).", check=_fraction_below_one)
    input_size: int | None = setting(
        None, "Network input side (default the backbone's, e.g. 224); smaller is faster on a CPU.", minimum=32
    )
    device: str = setting("auto", "auto (the GPU when torch sees one), cpu or cuda.", choice=DEVICES)
    gradcam: int = setting(
        8, "Grad-CAM overlays of held-out images (right and wrong), by their fold's model.", minimum=0
    )
    export: str | None = setting(
        None, "Export the final model's backbone as <arch>.ft-EXPORT for 'featx extract'.", check=check_tag
    )
    models_dir: Path = setting(Path("models_onnx"), "Where --export writes (and extract finds) backbones.")
    window: str = setting("auto", "Intensity window for volumes/DICOM (as for extract).", check=check_policy)
    sequence: str | None = setting(
        None,
        "Train on one sequence's rows (e.g. T2), or 'each': one model per sequence "
        "in OUT/<sequence>/, on folds shared by all sequences.",
    )
    fuse: str | None = setting(
        None, "vote or mean: one model per sequence, fused per subject (as 'featx fit --fuse').", choice=FUSE
    )
    cache_gb: float = setting(8.0, "Hold decoded images in memory up to this size (GB).", minimum=0)

    def validate(self) -> None:
        super().validate()
        if self.export is not None and (self.fuse is not None or self.sequence == "each"):
            raise ConfigError(
                "exports one model; with several sequence models, export one sequence's: sequence T1 with export NAME.",
                "export",
            )
        if self.fuse is not None and self.sequence not in (None, "each"):
            raise ConfigError(
                f"combines every sequence's model; drop sequence {self.sequence!r} (or use 'each').", "fuse"
            )

    @property
    def head_config(self) -> HeadConfig:
        return HeadConfig(self.head, self.hidden, self.dropout)
