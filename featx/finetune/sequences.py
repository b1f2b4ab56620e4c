"""One fine-tuned model per MRI sequence on shared folds, and their per-subject fusion (``--sequence each``,
``--fuse vote|mean``).

The folds are planned once on every sequence's rows (grouped by subject), then each
sequence model trains and tests on its own rows of those folds: the T1 and the T2 model
of a fold see the same patients, exactly as ``featx fit --fuse`` does with frozen features.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from featx.errors import ConfigError, FitError
from featx.evaluate.protocol.folds import Folds
from featx.evaluate.protocol.fusion import sequences_of
from featx.evaluate.protocol.task import Task
from featx.evaluate.runs.outputs import Predictions, write_fit_outputs
from featx.evaluate.statistics.resampling import Resampling
from featx.evaluate.statistics.scoring import score_fused
from featx.finetune.unit import Context, UnitRun, train_unit
from featx.results.runs import FitResult, HeadInfo
from featx.store.feature_set import FeatureSet

log = logging.getLogger(__name__)


def pick_sequences(fs: FeatureSet, sequence: str | None, fuse: str | None) -> list[str] | None:
    """The sequences to train one model each on (None: one model on every row)."""
    present = sorted(set(fs.sequences.tolist()) - {""})
    if fuse is not None:
        return sequences_of(fs)
    if sequence is None:
        if len(present) > 1:
            log.warning(
                "the manifest has %d sequences (%s): one model is trained on all their rows together; "
                "--sequence each trains one model per sequence, --fuse vote also fuses them per subject",
                len(present),
                ", ".join(present),
            )
        return None
    if sequence == "each":
        if not present or (fs.sequences == "").any():
            raise FitError("sequence 'each' needs a 'sequence' column (T1, T2, FLAIR ...) on every manifest row.")
        return present
    if sequence not in present:
        raise ConfigError(
            f"{sequence!r} is not in the manifest's 'sequence' column (it has: "
            f"{', '.join(present) or 'no sequences'}).",
            "sequence",
        )
    return [sequence]


def restrict(dev: FeatureSet, test: FeatureSet, folds: Folds, sequence: str) -> tuple[FeatureSet, FeatureSet, Folds]:
    """One sequence's development rows, test rows and their part of the shared folds."""
    sel = dev.sequences == sequence
    if not sel.any():
        raise FitError(f"Sequence {sequence!r} has no development rows (all its rows are in the test split).")
    return dev.subset(sel), test.subset(test.sequences == sequence), folds.subset(sel)


def folder_name(sequence: str) -> str:
    """A sequence's sub-folder name (its name, with anything but letters, digits, '.', '-' and '_' as '_')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", sequence) or "_"


@dataclass(frozen=True)
class SequenceRuns:
    """The index of a run with one model per sequence and no fusion (``out/sequences.json``)."""

    sequences: dict  # sequence -> its run folder
    seconds: float

    def to_json(self) -> dict:
        return {"type": "finetune-sequences", "sequences": self.sequences, "seconds": self.seconds}


def run_per_sequence(
    ctx: Context, seqs: list[str], dev: FeatureSet, test: FeatureSet, folds: Folds, out: Path, t_start: float
) -> FitResult | SequenceRuns:
    """Train one model per sequence into ``out/<sequence>/``; with ``ctx.cfg.fuse``, score their per-subject
    fusion in ``out`` (the same files as a fit). Returns the fused result, or the index of the sequence runs."""
    names = [folder_name(q) for q in seqs]
    if len(set(names)) < len(names):
        raise FitError(f"Sequences {seqs} share a folder name; rename them in the manifest's 'sequence' column.")
    per = {
        q: train_unit(ctx, *restrict(dev, test, folds, q), out / name, q, time.perf_counter(), keep_journal=True)
        for q, name in zip(seqs, names)
    }
    for name in names:  # every sequence finished: their fold journals are no longer needed
        shutil.rmtree(out / name / ".partial", ignore_errors=True)
    index = SequenceRuns({q: str(out / n) for q, n in zip(seqs, names)}, time.perf_counter() - t_start)
    if ctx.cfg.fuse is None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sequences.json").write_text(json.dumps(index.to_json(), indent=2))
        return index
    return _fused(ctx, per, seqs, dev, test, folds, out, index)


def _fused(
    ctx: Context, per: dict[str, UnitRun], seqs: list, dev, test, folds: Folds, out: Path, index: SequenceRuns
) -> FitResult:
    cfg, fuse = ctx.cfg, ctx.cfg.fuse
    first = per[seqs[0]].result
    units = {q: dev.sequences == q for q in seqs}
    test_units = {q: test.sequences == q for q in seqs}
    test_proba = {q: next(iter(per[q].test_proba.values())) for q in seqs if per[q].test_proba}
    task = Task.classification(dev.labels, list(first.classes), positive=cfg.positive, folds=folds)
    scores = score_fused(
        dev,
        test,
        task,
        {q: per[q].cvres.proba for q in seqs},
        {q: per[q].result.cv for q in seqs},
        units,
        test_units,
        test_proba,
        fuse,
        Resampling.of(cfg),
    )
    sequences = {q: replace(v, run=index.sequences[q]) for q, v in scores.sequences.items()}
    ft = replace(
        first.finetune,
        model=None,
        exported=None,
        gradcam=(),
        seconds=index.seconds,
        sequence_runs=index.sequences,
        runs=tuple(r for q in seqs for r in per[q].result.finetune.runs),
    )
    head = HeadInfo(
        first.head.name,
        first.head.description + f"; one model per sequence ({', '.join(seqs)}), {fuse} per subject",
        first.head.estimator,
    )
    result = replace(
        first,
        feature_set=first.feature_set + f"[{fuse}]",
        sequence=None,
        head=head,
        protocol=replace(first.protocol, fuse=fuse, folds=folds.describe()),
        n_dev=len(dev),
        n_test=len(test),
        cv=scores.cv,
        test=scores.test,
        folds=folds.to_dict(dev.ids),
        sequences=sequences,
        finetune=ft,
        outputs=None,
    )
    preds = Predictions(dev, {q: per[q].cvres for q in seqs}, units, test, test_proba, test_units, scores.test_subjects)
    return write_fit_outputs(result, preds, out)
