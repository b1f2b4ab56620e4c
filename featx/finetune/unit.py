"""One fine-tuned unit: a backbone trained on every training fold (and a final model for the test rows).

A unit is the whole run, or one sequence's part of it (:mod:`featx.finetune.sequences`). Its
folder holds the files of a fit plus curves, Grad-CAM overlays and ``model.pt``. Finished folds
are journaled (:class:`~featx.finetune.journal.FoldJournal`), so an interrupted run resumes.
"""

from __future__ import annotations

import copy
import logging
import math
import shutil
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from featx import __version__
from featx.errors import FeatxError
from featx.evaluate.protocol.cv import CVResult, encode_labels
from featx.evaluate.protocol.folds import Folds
from featx.evaluate.protocol.task import tasks_of
from featx.evaluate.runs.fit import protocol_of
from featx.evaluate.runs.outputs import versions
from featx.evaluate.statistics.resampling import Resampling
from featx.evaluate.statistics.scoring import evaluate, metrics_with_ci
from featx.finetune.blocks import apply_freeze, parse_freeze
from featx.finetune.config import FinetuneConfig
from featx.finetune.data import ImageBank
from featx.finetune.explain import fold_overlays
from featx.finetune.export import export_finetuned
from featx.finetune.journal import FoldJournal
from featx.finetune.model import build_net, save_net
from featx.finetune.outputs import write_finetune
from featx.finetune.train import TrainedModel, summarize, train_fold
from featx.progress import progress_bar
from featx.results.codec import from_json, to_json
from featx.results.runs import Epoch, FinetuneHead, FinetuneInfo, FitResult, FoldRun, HeadInfo, RunSummary
from featx.store.feature_set import FeatureSet

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What every unit of one run shares."""

    cfg: FinetuneConfig
    fs: FeatureSet  # the manifest's labelled rows (``fs.samples``: id -> Sample)
    classes: list
    device: str
    source: str  # the manifest, for the results' 'store' entry
    progress: bool = True


@dataclass
class UnitRun:
    """A finished unit: its result, out-of-fold probabilities and test probabilities by unit name."""

    result: FitResult
    cvres: CVResult
    test_proba: dict


@dataclass
class _Net:
    """The network to train, its blocks, and the weights every fold starts from."""

    spec: object
    bmap: object
    net: object
    n_freeze: int
    init: dict
    n_trainable: int

    @classmethod
    def build(cls, cfg: FinetuneConfig, n_classes: int) -> _Net:
        spec, bmap, net = build_net(
            cfg.backbone, cfg.weights, n_classes, cfg.head_config, cfg.input_size, cfg.models_dir
        )
        n_freeze = parse_freeze(cfg.freeze, bmap)
        init = copy.deepcopy(net.state_dict())
        apply_freeze(net.features, bmap, n_freeze)
        return cls(spec, bmap, net, n_freeze, init, sum(p.numel() for p in net.parameters() if p.requires_grad))


def train_unit(
    ctx: Context,
    dev: FeatureSet,
    test: FeatureSet,
    folds: Folds,
    out: Path,
    sequence: str | None,
    t_start: float,
    keep_journal: bool = False,
) -> UnitRun:
    """Fine-tune on ``dev`` by ``folds`` (and a final model for ``test``); write the unit to ``out``."""
    cfg = ctx.cfg
    m = _Net.build(cfg, len(ctx.classes))
    ids = np.concatenate([dev.ids, test.ids])
    bank = ImageBank([ctx.fs.samples[i] for i in ids], m.spec, cfg.window, cfg.cache_gb)
    y = encode_labels(np.concatenate([dev.labels, test.labels]), ctx.classes)[1]
    subjects = np.concatenate([dev.subjects, test.subjects]) if folds.grouped else None
    journal = _journal(ctx, m, folds, dev, out)
    trainer = _Trainer(ctx, m, bank, y, subjects, len(dev), ids, out)
    proba, runs, final = trainer.folds(folds, journal, sequence, len(test))
    name = f"{m.spec.arch}.ft-freeze{m.n_freeze}"
    cvres = CVResult(ctx.classes, y[: len(dev)], proba, folds, [r.seconds for r in runs if not r.is_final])
    test_proba = {name: final.proba} if len(test) else {}
    result = _result(ctx, m, name, dev, test, folds, cvres, runs, sequence, y, test_proba)
    failed = None
    if final is not None:
        result, failed = _save(
            result,
            final,
            m,
            ctx,
            out,
            "the training side of the fixed split"
            if trainer.fixed(folds)
            else "all development rows (not the held-out test rows)",
        )
    ft = replace(
        result.finetune,
        seconds=time.perf_counter() - t_start + journal.seconds_before,
        gradcam=tuple(sorted(str(p) for p in (out / "gradcam").glob("*.png"))),
    )
    result = write_finetune(replace(result, finetune=ft), dev, cvres, test, test_proba, out)
    if not keep_journal:
        journal.clear()
    if failed is not None:
        raise type(failed)(
            f"{failed} (The run itself is written to {out}, model.pt included; export it again after fixing this.)"
        )
    return UnitRun(result, cvres, test_proba)


def _journal(ctx: Context, m: _Net, folds: Folds, dev: FeatureSet, out: Path) -> FoldJournal:
    """The unit's fold journal, keyed by everything that makes its folds' models what they are."""
    cfg = ctx.cfg
    settings = {
        "spec": m.spec.to_dict(),
        "weights": cfg.weights,
        "freeze": m.n_freeze,
        "head": to_json(cfg.head_config),
        "train": to_json(cfg.settings()),
        "seed": cfg.seed,
        "window": cfg.window,
        "device": ctx.device,
        "folds": folds.to_dict(dev.ids),
        "classes": ctx.classes,
    }
    journal = FoldJournal(out, settings)
    if not journal.n_done:
        shutil.rmtree(out / "gradcam", ignore_errors=True)  # overlays of an earlier, other run
    else:
        log.warning(
            "%s: resuming: %d fold(s) finished by an earlier run with the same settings are not trained again",
            out,
            journal.n_done,
        )
    return journal


def _save(result: FitResult, final: TrainedModel, m: _Net, ctx: Context, out: Path, trained_on: str):
    """``model.pt`` of the final model, then its backbone exported when asked; (result, export error or None)."""
    cfg = ctx.cfg
    meta = {
        "spec": m.spec.to_dict(),
        "head": to_json(cfg.head_config),
        "classes": ctx.classes,
        "freeze": m.n_freeze,
        "window": cfg.window,
        "weights": cfg.weights,
        "run": str(out.resolve()),
        "trained_on": {"n": int(final.n_train + final.n_val), "what": trained_on},
    }
    saved = save_net(out / "model.pt", final.net.cpu(), meta)
    result = replace(result, finetune=replace(result.finetune, model=str(saved)))
    if cfg.export is None:
        return result, None
    try:
        exported = export_finetuned(final.net, m.spec, cfg.export, cfg.models_dir, meta)
    except FeatxError as exc:  # the trained run is written first: an export failure loses no work
        return result, exc
    return replace(result, finetune=replace(result.finetune, exported=exported)), None


class _Trainer:
    """Trains the folds of one unit (and its final model) from the same starting weights."""

    def __init__(self, ctx: Context, m: _Net, bank, y, subjects, n_dev: int, ids, out: Path):
        self.ctx, self.m, self.bank, self.y, self.subjects = ctx, m, bank, y, subjects
        self.n_dev, self.ids, self.out = n_dev, ids, out

    @staticmethod
    def fixed(folds: Folds) -> bool:
        return folds.kind == "fixed" and folds.repeats == 1

    def _train(self, train_idx, test_idx, seed: int, bar) -> TrainedModel:
        self.m.net.load_state_dict(self.m.init)
        cfg = self.ctx.cfg
        run = train_fold(
            self.m.net,
            self.m.bmap,
            self.m.n_freeze,
            self.bank,
            self.y,
            self.subjects,
            train_idx,
            test_idx,
            cfg,
            seed,
            self.ctx.device,
            on_epoch=lambda rec: bar.update(1),
        )
        bar.update(cfg.epochs - len(run.history))  # early stop: the skipped epochs
        return run

    def folds(self, folds: Folds, journal: FoldJournal, sequence: str | None, n_test: int):
        """Out-of-fold probabilities, the run records (final model last) and the final model."""
        cfg, classes = self.ctx.cfg, self.ctx.classes
        proba = np.full((folds.repeats, self.n_dev, len(classes)), np.nan)
        tested = [(r, f, tr, te) for r, f, tr, te in folds.split() if len(te)]
        final_needed = not self.fixed(folds) and (n_test > 0 or cfg.export is not None)
        per_fold = math.ceil(cfg.gradcam / max(1, len(tested))) if cfg.gradcam else 0
        runs, final = [], None
        what = f"fine-tune {self.m.spec.arch}" + (f" on {sequence}" if sequence else "")
        with progress_bar(
            f"{what} (freeze {self.m.n_freeze}/{len(self.m.bmap.blocks)}), {folds.k} fold(s)",
            total=(len(tested) + final_needed) * cfg.epochs,
            enabled=self.ctx.progress,
        ) as bar:
            for r, f, tr, te in tested:
                done = journal.get(r, f)
                if done is not None and not self.fixed(folds):  # finished before an interruption: not trained again
                    proba[r, te] = done["proba"]
                    runs.append(from_json(FoldRun, done["record"]))
                    bar.update(cfg.epochs)
                    continue
                run = self._train(tr, te, cfg.seed + 1000 * r + f, bar)
                proba[r, te] = run.proba
                runs.append(run_record(run, r, f, cfg.converged_from, sequence))
                journal.put(r, f, run.proba, to_json(runs[-1]))
                if per_fold and r == 0:
                    fold_overlays(
                        run,
                        self.bank,
                        self.ids,
                        self.y,
                        te,
                        classes,
                        self.m.bmap,
                        per_fold,
                        self.out,
                        self.ctx.device,
                        f,
                    )
                if self.fixed(folds):
                    final = run
            if final_needed:
                test_idx = np.arange(self.n_dev, len(self.ids))
                final = self._train(np.arange(self.n_dev), test_idx, cfg.seed + 999, bar)
                runs.append(run_record(final, "final", "all development rows", cfg.converged_from, sequence))
        return proba, runs, final


def run_record(run: TrainedModel, repeat, fold, converged_from: float, sequence: str | None = None) -> FoldRun:
    """The typed record of one trained model: its history and the summary of its accuracy curve."""
    curve = "test_acc" if "test_acc" in run.history[0] else "val_acc"
    summary = summarize(run.history, curve, converged_from)
    return FoldRun(
        repeat=repeat,
        fold=fold,
        n_train=run.n_train,
        n_val=run.n_val,
        best_epoch=run.best_epoch,
        stopped_early=run.stopped_early,
        seconds=run.seconds,
        history=tuple(from_json(Epoch, h) for h in run.history),
        summary=from_json(RunSummary, summary) if summary else None,
        sequence=sequence,
    )


def _result(
    ctx: Context,
    m: _Net,
    name: str,
    dev,
    test,
    folds: Folds,
    cvres: CVResult,
    runs: list,
    sequence: str | None,
    y,
    test_proba: dict,
) -> FitResult:
    cfg, classes, spec = ctx.cfg, ctx.classes, m.spec
    n_dev = len(dev)
    head = cfg.head_config
    task, test_task = tasks_of(dev, test, folds, classes, cfg)
    cv = evaluate(task, cvres.proba, Resampling.of(cfg))
    cv = replace(cv, fold_seconds=tuple(cvres.fold_seconds))
    test_metrics = None
    if len(test):
        test_metrics = metrics_with_ci(test_task, test_proba[name], Resampling.of(cfg))
    info = _info(ctx, m, runs)
    import torch

    return FitResult(
        type="finetune",
        featx_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        store=ctx.source,
        feature_set=name,
        provenance={
            "kind": "finetune",
            "spec": spec.to_dict(),
            "weights": cfg.weights,
            "window": cfg.window,
            "preprocessing": f"resize short side {spec.resize_size} ({spec.interpolation}), centre crop "
            f"{spec.crop_size}, normalise mean {list(spec.mean)} std {list(spec.std)}",
        },
        versions={**versions(), "torch": torch.__version__},
        head=HeadInfo(
            "fine-tuned",
            head.describe(spec.feature_dim, len(classes)),
            f"{spec.arch}, lowest {m.n_freeze} of {len(m.bmap.blocks)} blocks frozen, new head "
            f"{head.describe(spec.feature_dim, len(classes))}",
        ),
        protocol=protocol_of(folds, cfg, bool(len(test))),
        classes=tuple(classes),
        n_features=spec.feature_dim,
        dropped_features=(),
        n_dev=n_dev,
        n_test=len(test),
        cv=cv,
        test=test_metrics,
        folds=folds.to_dict(dev.ids),
        sequence=sequence,
        finetune=info,
        config=cfg.record(),
    )


def _info(ctx: Context, m: _Net, runs: list) -> FinetuneInfo:
    """What fine-tuning did: the blocks, the training settings, every model's record."""
    cfg, spec, head = ctx.cfg, m.spec, ctx.cfg.head_config
    return FinetuneInfo(
        backbone=spec.arch,
        weights=cfg.weights,
        freeze=m.n_freeze,
        blocks=tuple(m.bmap.names),
        frozen_blocks=tuple(m.bmap.names[: m.n_freeze]),
        trainable_parameters=m.n_trainable,
        head=FinetuneHead(head.kind, head.hidden, head.dropout),
        train=cfg.settings(),
        augment=cfg.augment.describe(),
        input_size=spec.crop_size,
        device=ctx.device,
        runs=tuple(runs),
        gradcam_layer=m.bmap.gradcam_layer,
    )
