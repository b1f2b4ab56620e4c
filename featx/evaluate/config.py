"""``FitConfig`` and ``BenchConfig``: the split settings (:mod:`featx.evaluate.protocol.settings`) and what the heads add."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from featx.config import DEFAULT, Choice, setting
from featx.errors import ConfigError
from featx.evaluate.heads.bags import BAGS
from featx.evaluate.heads.operating import CALIBRATIONS, check_threshold
from featx.evaluate.heads.registry import BAG_HEADS, HEADS, get_head, heads_for
from featx.evaluate.protocol.fusion import MODEL_FUSIONS
from featx.evaluate.protocol.settings import SplitSettings, _fraction
from featx.evaluate.protocol.task import TARGETS

FUSE = Choice("fusion", (*MODEL_FUSIONS, "concat"))
SELECT = Choice("select", ("naive", "nested"))


ALL = "all"


def parse_sizes(sizes) -> tuple[str, ...]:
    """Check ``--train-sizes`` items: whole numbers >= 1 (subjects per class), fractions in (0, 1), or ``all``."""
    out = []
    for s in sizes:
        s = str(s).strip().lower()
        if s == ALL or re.fullmatch(r"[1-9]\d*", s) or (re.fullmatch(r"0?\.\d+", s) and 0 < float(s) < 1):
            out.append(s)
        else:
            raise ConfigError(
                f"{s!r} is not a training size: give subjects per class (4, 8, 16), a fraction of each class's "
                "subjects (0.25) or 'all'.",
                "train_sizes",
            )
    if len(set(out)) != len(out):
        raise ConfigError(f"lists a size twice: {','.join(out)}.", "train_sizes")
    return tuple(out)


@dataclass(frozen=True)
class HeadSettings(SplitSettings):
    """What fit and bench add to the split: tuning and PCA of the heads."""

    tune: bool = setting(False, "Nested CV: tune each head's grid by an inner grouped CV on the training folds only.")
    pca: int | None = setting(None, "PCA components before the classifier (fit inside each training fold).", minimum=1)
    inner_k: int = setting(
        5, "Folds of the inner CV that tunes a head (--tune), calibrates it and chooses its threshold.", minimum=2
    )
    threshold: str = setting(
        "0.5",
        "Decision threshold on the positive class's probability (binary): 0.5 (the most probable class), a "
        "number, youden (max sensitivity + specificity - 1), sens:X or spec:X (e.g. sens:0.9: the most specific "
        "threshold with sensitivity >= 0.9). Learned chooses it by an inner CV of each training set, never on "
        "the rows it scores.",
        check=check_threshold,
    )
    calibrate: str = setting(
        "none",
        "Calibrate the probabilities: none, sigmoid (Platt) or isotonic, fitted on an inner CV of each training "
        "set (as CalibratedClassifierCV(ensemble=False)).",
        choice=CALIBRATIONS,
    )
    jobs: int | None = setting(
        None,
        "Fits at once in worker processes (default: every core this process may use; the numbers do not change).",
        minimum=1,
    )
    ray: str | None = setting(
        None, "Run the fits on a Ray cluster (auto, local or ray://head:10001) through joblib. Needs featx[ray]."
    )
    target: str = setting(
        "classification",
        "What is predicted: classification (the manifest's label), regression (a number: --value COLUMN) or "
        "survival (a time to an event: --time COLUMN --event COLUMN).",
        choice=TARGETS,
    )
    value: str | None = setting(
        None, "--target regression: the manifest's outcome column to predict (a number per row, e.g. age)."
    )
    time: str | None = setting(
        None, "--target survival: the manifest's column of follow-up times (to the event, or to censoring)."
    )
    event: str | None = setting(
        None, "--target survival: the manifest's column saying whether the event happened (1/0, yes/no, true/false)."
    )
    horizons: tuple[float, ...] = setting(
        (),
        "--target survival: times (in the time column's units, e.g. 12,24,60) of the time-dependent AUC "
        "(default: the quartiles of the event times).",
    )
    risk_cut: float = setting(
        0.5,
        "--target survival: the quantile of each training fold's risk scores that splits low from high risk "
        "(0.5: the median) for the Kaplan-Meier curves and the log-rank test.",
        check=_fraction,
    )

    def validate(self) -> None:
        super().validate()
        if self.target == "regression" and not self.value:
            raise ConfigError("regression predicts a manifest column: give --value COLUMN.", "target")
        if self.value and self.target != "regression":
            raise ConfigError("is the column --target regression predicts; add --target regression.", "value")
        if self.target == "survival" and not (self.time and self.event):
            raise ConfigError("survival needs a time and an event column: give --time COLUMN --event COLUMN.", "target")
        if (self.time or self.event or self.horizons) and self.target != "survival":
            raise ConfigError(
                "--time, --event and --horizons describe a survival target; add --target survival.", "target"
            )
        if any(h <= 0 for h in self.horizons):
            raise ConfigError(f"must be positive times, got {','.join(map(str, self.horizons))}.", "horizons")
        if self.target != "classification" and self.positive is not None:
            raise ConfigError(f"names a class; a {self.target} target has none: drop --positive.", "target")
        if self.target != "classification":
            decided = [f"--{k} {v}" for k, v in (("threshold", self.threshold), ("calibrate", self.calibrate))]
            changed = [d for d, default in zip(decided, ("--threshold 0.5", "--calibrate none")) if d != default]
            if changed:
                raise ConfigError(f"{changed[0]} decides classes; a {self.target} target has none: drop it.", "target")

    def heads_checked(self, heads) -> None:
        """ConfigError for a head that does not predict this target (``logreg`` for a regression)."""
        for h in heads:
            get_head(h, self.target)


#: the head of ``fit --target survival`` when none is given: penalised, its penalty chosen inside the folds
SURVIVAL_HEAD = "coxnet"


@dataclass(frozen=True)
class FitConfig(HeadSettings):
    """How ``featx fit`` cross-validates one head on one feature set (``featx.toml`` section ``[fit]``)."""

    section = "fit"
    store: Path | None = setting(None, "HDF5 feature store written by 'featx extract' or 'featx radiomics'.")
    features: str | None = setting(None, "Feature-set name in the store (e.g. resnet18).")
    # xgb: the best mean rank, and never more than 0.006 AUC below the best head, on 8 real data sets of 100 to 1,526
    # rows and 30 to 1,280 features (benchmarks/default_head.py); logreg was up to 0.064 below
    head: str = setting(
        "xgb",
        "Head (default xgb: measured best across data sets; --target regression: xgb too; --target survival: "
        "coxnet; see docs).",
        choice=HEADS,
    )
    fuse: str | None = setting(
        None,
        "Multi-sequence fusion per subject: vote or mean (one model per sequence), or "
        "concat (sequences' features side by side).",
        choice=FUSE,
    )
    bag: str = setting(
        "subject",
        "--head abmil: what a bag of slices is, one prediction each: subject (a patient's rows) or volume "
        "(a volume's slices).",
        choice=BAGS,
    )
    out: Path | None = setting(None, "Folder for results.json, folds.json, prediction CSVs and report.html.")
    save: Path | None = setting(None, "Save the head refit on all non-test samples (.skops) for 'featx predict'.")

    def validate(self) -> None:
        super().validate()
        if self.target == "survival" and self._source("head") == DEFAULT:  # xgb is no survival head
            object.__setattr__(self, "head", SURVIVAL_HEAD)
            object.__setattr__(self, "sources", {**self.sources, "head": "default of --target survival"})
        self.heads_checked([self.head])
        if self.target != "classification" and self.fuse in MODEL_FUSIONS:
            raise ConfigError(
                f"{self.fuse} fuses the classes of one model per sequence; with --target {self.target} use --fuse "
                "concat (the sequences' features side by side).",
                "fuse",
            )
        if self.head in BAG_HEADS and self.fuse is not None:
            raise ConfigError(f"{self.head} pools each bag's slices itself (attention): drop --fuse.", "fuse")
        if self.head in BAG_HEADS and self.pca is not None:
            raise ConfigError(f"{self.head} learns its own embedding of the slices: drop --pca.", "pca")
        if self.head in BAG_HEADS and self.save is not None:
            raise ConfigError(
                f"featx predict does not build bags yet, so a {self.head} model cannot be saved: drop --save.", "save"
            )


@dataclass(frozen=True)
class BenchConfig(HeadSettings):
    """How ``featx bench`` compares feature sets x heads on identical folds (``featx.toml`` section ``[bench]``)."""

    section = "bench"
    store: Path | None = setting(None, "HDF5 feature store written by 'featx extract' or 'featx radiomics'.")
    features: tuple[str, ...] = setting((), "Feature sets, comma-separated (e.g. resnet50,radiomics.default).")
    heads: tuple[str, ...] = setting((), "Heads, comma-separated (default: every registered head).", choice=HEADS)
    out: Path | None = setting(None, "Folder for results.json, bench.csv, folds.json and report.html.")
    finetuned: tuple[Path, ...] = setting((), "Output folders of 'featx finetune' runs on the same folds: a row each.")
    select: str = setting(
        "naive",
        "naive (rank the cells) or nested (also estimate 'take the best cell' honestly: the cell an inner CV of "
        "each outer training fold chooses, scored on the outer fold).",
        choice=SELECT,
    )
    ensemble: int | None = setting(
        None,
        "Add rows combining the top-K cells by a soft vote and by stacking (logistic regression on their "
        "out-of-fold probabilities), chosen and fitted inside each outer training fold.",
        minimum=2,
    )
    save: Path | None = setting(
        None, "Save the top-ranked row (a cell or an ensemble), refit on all non-test samples, for 'featx predict'."
    )
    save_row: str | None = setting(
        None,
        "With --save: the row to save instead, by its title (e.g. 'resnet50 + logreg', 'top-3 cells + soft vote').",
    )
    train_sizes: tuple[str, ...] = setting(
        (),
        "Label efficiency: also fit every cell on N subjects per class of each training fold (4,8,16,all; or "
        "fractions 0.1,0.5), scored on the same outer folds: learning.csv, learning.png and paired tests per size.",
    )
    draws: int = setting(5, "With --train-sizes: random draws of the training subjects at each size.", minimum=1)

    def validate(self) -> None:
        super().validate()
        self.heads_checked(self.heads)
        if self.target != "classification" and self.ensemble:
            raise ConfigError(
                f"combines the cells' class probabilities (a soft vote, a stacked logistic regression); not for "
                f"--target {self.target}.",
                "ensemble",
            )
        bags = [h for h in self.heads if h in BAG_HEADS]
        if bags:
            raise ConfigError(
                f"{bags[0]} predicts bags of slices and runs in 'featx fit --head {bags[0]}'; bench compares heads "
                "on rows: pool the slices first ('featx pool') or leave it out.",
                "heads",
            )
        if self.save_row is not None and self.save is None:
            raise ConfigError("names the row --save writes; give --save PATH too.", "save_row")
        if self.train_sizes:
            parse_sizes(self.train_sizes)
            if self.split != "cv":
                raise ConfigError(
                    "scores every size on the outer folds of cross-validation; use --split cv with it.", "train_sizes"
                )

    @property
    def head_names(self) -> tuple[str, ...]:
        """The heads to run: the given ones, or every registered head that predicts a row (not a bag)."""
        return self.heads or tuple(h for h in heads_for(self.target) if h not in BAG_HEADS)
