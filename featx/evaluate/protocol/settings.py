"""The split settings fit, bench and finetune share, so their folds agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from featx.config import Choice, Config, setting
from featx.dataset.copies import COPY_POLICIES
from featx.errors import ConfigError

SPLITS = Choice("split", ("cv", "fixed"))
SPLIT_BY = Choice("split-by", ("subject", "image"))
COPIES = Choice("copies", COPY_POLICIES)


def _fraction(value: float) -> float:
    if not 0 < value < 1:
        raise ConfigError(f"must be a fraction between 0 and 1 (e.g. 0.3), got {value}.")
    return value


@dataclass(frozen=True)
class SplitSettings(Config):
    """How samples are split and scored: shared by fit, bench and finetune, so their folds agree."""

    cv: int = setting(10, "Folds per repeat: stratified, grouped by subject when the manifest has subjects.", minimum=2)
    repeats: int = setting(1, "Repeat the K-fold CV with re-shuffled folds (seeds derived from --seed).", minimum=1)
    split: str = setting(
        "cv",
        "cv (K-fold; manifest rows with split=test are held out and scored once) or fixed (one "
        "train/test split: the manifest's split column, or --test-size).",
        choice=SPLITS,
    )
    test_size: float | None = setting(
        None, "With --split fixed: draw this fraction of the subjects as test (e.g. 0.3).", check=_fraction
    )
    split_by: str = setting(
        "subject",
        "subject (folds grouped by subject: the honest default) or image (slice-level "
        "random split that ignores the subjects: leaky, only to show what it would report).",
        choice=SPLIT_BY,
    )
    copies: str = setting(
        "together",
        "together (exact copies of one image under different subjects or names, by file content or decoded pixels, "
        "are kept in one fold and on one side of a split) or apart (the old behaviour: copies may leak).",
        choice=COPIES,
    )
    drop_test_copies: bool = setting(
        False,
        "Leave out of scoring the test rows that are exact copies of training rows (when the manifest's split "
        "column puts copies on both sides, which featx cannot move).",
    )
    folds: Path | None = setting(None, "Reuse the folds of an earlier run (its folds.json or results.json).")
    seed: int = setting(0, "Seed of the folds, the heads and the bootstrap (recorded in the results).")
    positive: str | None = setting(
        None, "Positive class for sensitivity/specificity (binary; default: the second sorted class)."
    )
    bootstrap: int = setting(1000, "Bootstrap resamples (by subject) for the 95% CIs; 0: DeLong only.", minimum=0)

    def validate(self) -> None:
        if self.test_size is not None and self.split != "fixed":
            raise ConfigError("draws a fixed train/test split; use it with split fixed.", "test_size")
