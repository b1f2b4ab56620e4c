"""``featx finetune``: manifest + backbone -> one fine-tuned model per fold -> out-of-fold predictions,
curves, summaries, Grad-CAM overlays, the same results format as ``featx fit``.

The folds are planned exactly as ``fit`` plans them (:func:`featx.evaluate.protocol.split.plan_split` on
the manifest's labelled samples in manifest order, which is the store's row order), or loaded
with ``folds`` from a fit/bench run, so a fine-tuned row and the frozen-feature rows are scored
on the same patients. As in ``fit``, the manifest's ``test`` rows are held out of the CV and
scored once by a model trained on all the other rows (``split='cv'``); ``split='fixed'``
trains on one side and tests the other.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from featx.dataset.copies import file_keys
from featx.dataset.manifest import Manifest
from featx.errors import ConfigError, FitError
from featx.evaluate.protocol.split import check_design, plan_split, split_classes
from featx.finetune.config import FinetuneConfig
from featx.finetune.sequences import SequenceRuns, pick_sequences, restrict, run_per_sequence
from featx.finetune.unit import Context, train_unit
from featx.results.runs import FitResult
from featx.store.feature_set import FeatureSet

log = logging.getLogger(__name__)


def manifest_set(manifest: Manifest) -> FeatureSet:
    """The manifest's labelled samples as a feature set without features (what plan_split needs)."""
    rows = [s for s in manifest if s.label]
    if len(rows) < len(manifest):
        log.warning("%d sample(s) have no label and are left out", len(manifest) - len(rows))
    if not rows:
        raise FitError("No labelled samples in the manifest. Give it a 'label' column.")
    col = lambda attr: np.array([str(getattr(s, attr) or "") for s in rows])  # noqa: E731
    fs = FeatureSet(
        "manifest",
        np.zeros((len(rows), 0), np.float32),
        col("sample_id"),
        col("label"),
        col("subject"),
        col("split"),
        col("sequence"),
        copy_keys=file_keys(rows),  # the same copy groups as fit's, so the folds agree
    )
    fs.samples = {s.sample_id: s for s in rows}
    return fs


def pick_device(device: str) -> str:
    """``auto`` -> the GPU when torch sees one; ``cuda`` without one is refused."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("cuda needs an NVIDIA GPU visible to torch; choose auto or cpu.", "device")
    return device


def run_finetune(
    cfg: FinetuneConfig, manifest: Manifest | None = None, *, progress: bool = True
) -> FitResult | SequenceRuns:
    """Fine-tune ``cfg.backbone`` on every training fold; write results, curves and overlays to ``cfg.out``.

    With ``cfg.sequence`` ``each`` (or ``cfg.fuse``), one model per sequence is trained into
    ``out/<sequence>/`` on folds planned once over every sequence's rows; ``fuse`` also scores their
    per-subject vote (or mean) in ``out``.

    Returns
    -------
    FitResult, or SequenceRuns (the index of the sequence runs, with ``sequence='each'`` and no fusion)
    """
    t_start = time.perf_counter()
    cfg.require("backbone", "out", *(() if manifest is not None else ("manifest",)))
    manifest = manifest if manifest is not None else Manifest.load(cfg.manifest)
    fs = manifest_set(manifest)
    dev, test, folds = plan_split(fs, cfg)
    check_design(dev, test, folds)
    ctx = Context(
        cfg,
        fs,
        split_classes(dev, test, cfg.positive),
        pick_device(cfg.device),
        str(getattr(manifest, "source", "") or "manifest"),
        progress,
    )
    seqs = pick_sequences(fs, cfg.sequence, cfg.fuse)
    out = Path(cfg.out)
    if seqs is None:
        return train_unit(ctx, dev, test, folds, out, None, t_start).result
    if len(seqs) == 1:
        return train_unit(ctx, *restrict(dev, test, folds, seqs[0]), out, seqs[0], t_start).result
    return run_per_sequence(ctx, seqs, dev, test, folds, out, t_start)
