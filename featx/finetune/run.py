"""``featx finetune``: manifest + backbone -> one fine-tuned model per fold -> out-of-fold predictions,
curves, summaries, Grad-CAM overlays, the same results format as ``featx fit``.

The folds are planned exactly as ``fit`` plans them (:func:`featx.fit.plan_split` on
the manifest's labelled samples in manifest order, which is the store's row order),
or loaded with ``folds`` from a fit/bench run, so a fine-tuned row and the
frozen-feature rows are scored on the same patients. As in ``fit``, the manifest's
``test`` rows are held out of the CV and scored once by a model trained on all the
other rows (``split='cv'``); ``split='fixed'`` trains on one side and tests the other.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from featx import __version__
from featx.evaluate.cv import CVResult, encode_labels
from featx.errors import FitError
from featx.store.feature_set import FeatureSet
from featx.finetune.blocks import apply_freeze, parse_freeze
from featx.finetune.data import ImageBank
from featx.finetune.journal import FoldJournal
from featx.finetune.model import HeadConfig, build_net, save_net
from featx.finetune.train import TrainConfig, summarize, train_fold
from featx.evaluate.fit import plan_split, split_classes
from featx.dataset.manifest import Manifest
from featx.progress import progress_bar
from featx.evaluate.outputs import versions
from featx.evaluate.scoring import evaluate, metrics_with_ci

log = logging.getLogger(__name__)


def manifest_set(manifest: Manifest) -> FeatureSet:
    """The manifest's labelled samples as a feature set without features (what plan_split needs)."""
    rows = [s for s in manifest if s.label]
    if len(rows) < len(manifest):
        log.warning("%d sample(s) have no label and are left out", len(manifest) - len(rows))
    if not rows:
        raise FitError("No labelled samples in the manifest. Give it a 'label' column.")
    col = lambda attr: np.array([str(getattr(s, attr) or "") for s in rows])  # noqa: E731
    fs = FeatureSet("manifest", np.zeros((len(rows), 0), np.float32), col("sample_id"), col("label"), col("subject"),
                    col("split"), col("sequence"))
    fs.samples = {s.sample_id: s for s in rows}
    return fs


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") or (device == "cuda" and not torch.cuda.is_available()):
        raise FitError(f"--device {device}: choose auto, cpu or cuda (cuda needs an NVIDIA GPU visible to torch).")
    return device


def run_finetune(manifest: Manifest, backbone: str, out: str | Path, *, weights: str = "imagenet",
                 freeze: str | int = 0, head: HeadConfig = HeadConfig(), train: TrainConfig = TrainConfig(),
                 cv: int = 10, repeats: int = 1, split: str = "cv", test_size: float | None = None,
                 folds: str | Path | None = None, seed: int = 0, positive: str | None = None,
                 input_size: int | None = None, window: str = "auto", device: str = "auto", gradcam: int = 8,
                 export: str | None = None, models_dir: str | Path = "models_onnx", n_boot: int = 1000,
                 cache_gb: float = 8.0, progress: bool = True, split_by: str = "subject",
                 sequence: str | None = None, fuse: str | None = None) -> dict:
    """Fine-tune ``backbone`` on every training fold; write results, curves and overlays to ``out``.

    Parameters
    ----------
    manifest : Manifest
        Labelled samples (subjects group the folds).
    backbone, weights : str
        As in ``featx extract`` (``weights='random'`` only for tests).
    freeze : int or 'all'
        Lowest logical blocks frozen (:mod:`featx.finetune.blocks`); ``all``: only the new head trains.
    head : HeadConfig
    train : TrainConfig
    cv, repeats, split, test_size, folds, seed, positive, n_boot, split_by
        As in :func:`featx.fit.run_fit`; the folds equal ``fit``'s for the same samples and seed.
    sequence : str, optional
        Train on this sequence's rows only (e.g. ``T2``), or ``each``: one model per sequence, each in
        ``out/<sequence>/``. The folds are planned on all sequences' rows first, so every sequence
        model (and ``fit --fuse``) sees the same patients in the same folds.
    fuse : {'vote', 'mean'}, optional
        One model per sequence (as ``each``), then per subject the majority vote (or mean probability) of
        the sequence models, scored at subject level in ``out/`` as ``fit --fuse`` does.
    input_size : int, optional
        Network input side (default the backbone's, e.g. 224).
    device : {'auto', 'cpu', 'cuda'}
    gradcam : int
        Grad-CAM overlays to write (about half right and half wrong out-of-fold predictions).
    export : str, optional
        Export the final model's backbone as ``<arch>.ft-<export>`` into ``models_dir`` for ``featx extract``.
    cache_gb : float
        Hold decoded images in memory up to this size.

    Returns
    -------
    dict
        The results (also ``out/results.json``).
    """
    from featx.finetune.sequences import pick_sequences, restrict, run_per_sequence

    train.check()
    if export is not None:
        from featx.finetune.export import check_tag

        if fuse is not None or sequence == "each":
            raise FitError("--export exports one model; with several sequence models, export one sequence's: "
                           "--sequence T1 --export NAME.")
        check_tag(export)
    t_start = time.perf_counter()
    fs = manifest_set(manifest)
    dev, test, folds_ = plan_split(fs, split, cv, repeats, seed, test_size, folds, split_by)
    classes = split_classes(dev, test, positive)
    seqs = pick_sequences(fs, sequence, fuse)
    settings = dict(manifest=manifest, fs=fs, classes=classes, backbone=backbone, weights=weights, freeze=freeze,
                    head=head, train=train, seed=seed, positive=positive, input_size=input_size, window=window,
                    device=pick_device(device), gradcam=gradcam, export=export, models_dir=models_dir, n_boot=n_boot,
                    cache_gb=cache_gb, progress=progress, protocol={"split": split, "split_by": split_by, "folds_from":
                                                                       str(folds) if folds is not None else None})
    if seqs is None:
        return train_unit(dev, test, folds_, Path(out), None, t_start, **settings)[0]
    if len(seqs) == 1:
        return train_unit(*restrict(dev, test, folds_, seqs[0]), Path(out), seqs[0], t_start, **settings)[0]
    return run_per_sequence(seqs, dev, test, folds_, Path(out), fuse, t_start, settings)


def train_unit(dev: FeatureSet, test: FeatureSet, folds_, out: Path, sequence: str | None, t_start: float, *,
               manifest, fs, classes, backbone, weights, freeze, head, train, seed, positive, input_size, window,
               device, gradcam, export, models_dir, n_boot, cache_gb, progress, protocol,
               keep_journal: bool = False) -> tuple[dict, CVResult, dict]:
    """Fine-tune on ``dev`` by ``folds_`` (and a final model for ``test``); write the run to ``out``.

    Returns (results, out-of-fold CV result, test probabilities by name)."""
    from featx.finetune.outputs import write_finetune

    spec, bmap, net = build_net(backbone, weights, len(classes), head, input_size)
    n_freeze = parse_freeze(freeze, bmap)
    init = copy.deepcopy(net.state_dict())
    apply_freeze(net.features, bmap, n_freeze)
    n_trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    ids = np.concatenate([dev.ids, test.ids])
    bank = ImageBank([fs.samples[i] for i in ids], spec, window, cache_gb)
    y = encode_labels(np.concatenate([dev.labels, test.labels]), classes)[1]
    subjects = np.concatenate([dev.subjects, test.subjects]) if folds_.grouped else None
    n_dev = len(dev)
    proba = np.full((folds_.repeats, n_dev, len(classes)), np.nan)
    runs, fold_seconds = [], []
    tested = [(r, f, tr, te) for r, f, tr, te in folds_.split() if len(te)]
    fixed = folds_.kind == "fixed" and folds_.repeats == 1
    final_needed = not fixed and (len(test) > 0 or export is not None)
    total = (len(tested) + final_needed) * train.epochs
    per_fold = math.ceil(gradcam / max(1, len(tested))) if gradcam else 0
    final = None
    journal = FoldJournal(Path(out), {"spec": spec.to_dict(), "weights": weights, "freeze": n_freeze, "head": asdict(head),
                                      "train": train.to_dict(), "seed": seed, "window": window, "device": device,
                                      "folds": folds_.to_dict(dev.ids), "classes": classes})
    if not journal.n_done:
        import shutil

        shutil.rmtree(Path(out) / "gradcam", ignore_errors=True)  # overlays of an earlier, other run
    else:
        log.warning("%s: resuming: %d fold(s) finished by an earlier run with the same settings are not trained again",
                    out, journal.n_done)
    what = f"fine-tune {spec.arch}" + (f" on {sequence}" if sequence else "")
    with progress_bar(f"{what} (freeze {n_freeze}/{len(bmap.blocks)}), {folds_.describe()}",
                      total=total, enabled=progress) as bar:
        for r, f, tr, te in tested:
            done = journal.get(r, f)
            if done is not None and not fixed:  # finished before an interruption: not trained again
                proba[r, te] = done["proba"]
                fold_seconds.append(done["record"]["seconds"])
                runs.append(done["record"])
                bar.update(train.epochs)
                continue
            net.load_state_dict(init)
            run = train_fold(net, bmap, n_freeze, bank, y, subjects, tr, te, train, seed + 1000 * r + f, device,
                             on_epoch=lambda rec: bar.update(1))
            bar.update(train.epochs - len(run.history))  # early stop: the skipped epochs
            proba[r, te] = run.proba
            fold_seconds.append(run.seconds)
            runs.append(_run_record(run, r, f, train.converged_from))
            journal.put(r, f, run.proba, runs[-1])
            if per_fold and r == 0:
                _gradcams(run, bank, ids, y, te, classes, bmap, per_fold, Path(out), device, f)
            if fixed:
                final = run
        if final_needed:
            net.load_state_dict(init)
            test_idx = np.arange(n_dev, len(ids))
            final = train_fold(net, bmap, n_freeze, bank, y, subjects, np.arange(n_dev), test_idx, train, seed + 999,
                               device, on_epoch=lambda rec: bar.update(1))
            runs.append(_run_record(final, "final", "all development rows", train.converged_from))
    y_dev = y[:n_dev]
    cvres = CVResult(classes, y_dev, proba, folds_, fold_seconds)
    name = f"{spec.arch}.ft-freeze{n_freeze}"
    results = {
        "type": "finetune",
        "featx_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "store": str(getattr(manifest, "source", "") or "manifest"),
        "feature_set": name,
        "provenance": {"kind": "finetune", "spec": spec.to_dict(), "weights": weights, "window": window,
                       "preprocessing": f"resize short side {spec.resize_size} ({spec.interpolation}), centre crop "
                                        f"{spec.crop_size}, normalise mean {list(spec.mean)} std {list(spec.std)}"},
        "versions": _versions(),
        "head": {"name": "fine-tuned", "description": head.describe(spec.feature_dim, len(classes)),
                 "estimator": f"{spec.arch}, lowest {n_freeze} of {len(bmap.blocks)} blocks frozen, new head "
                              f"{head.describe(spec.feature_dim, len(classes))}", "pca": None, "tuned": None},
        "sequence": sequence,
        "protocol": {"split": protocol["split"], "cv": folds_.k, "repeats": folds_.repeats, "seed": seed, "splitter": folds_.splitter,
                     "grouped_by_subject": folds_.grouped, "test_size": folds_.test_size, "folds": folds_.describe(),
                     "held_out_test": bool(len(test)), "decision": "most probable class", "fuse": None,
                     "n_boot": n_boot, "folds_from": protocol["folds_from"], "split_by": protocol["split_by"]},
        "classes": classes, "n_features": spec.feature_dim, "dropped_features": [],
        "n_dev": n_dev, "n_test": len(test), "test": None, "folds": folds_.to_dict(dev.ids),
        "finetune": {
            "backbone": spec.arch, "weights": weights, "freeze": n_freeze, "blocks": bmap.names,
            "frozen_blocks": bmap.names[:n_freeze], "trainable_parameters": n_trainable,
            "head": asdict(head), "train": train.to_dict(), "augment": train.augment.describe(),
            "input_size": spec.crop_size, "device": device, "runs": runs,
            "gradcam": [], "gradcam_layer": bmap.gradcam_layer,
        },
    }
    results["cv"] = evaluate(y_dev, proba, folds_.fold_of, classes, dev.subjects if folds_.grouped else None,
                             positive, n_boot, seed)
    results["cv"]["level"] = "image"
    results["cv"]["fold_seconds"] = fold_seconds
    results["cv"]["best_params"] = None
    test_proba = {}
    if len(test):
        test_proba[name] = final.proba
        results["test"] = metrics_with_ci(y[n_dev:], final.proba, classes, test.subjects if folds_.grouped else None,
                                          positive, n_boot, seed)
    if final is not None:
        meta = {"spec": spec.to_dict(), "head": asdict(head), "classes": classes, "freeze": n_freeze,
                "window": window, "trained_on": {"n": int(final.n_train + final.n_val),
                                                 "what": "the training side of the fixed split" if fixed
                                                 else "all development rows (not the held-out test rows)"},
                "weights": weights, "run": str(Path(out).resolve())}
        results["finetune"]["model"] = str(save_net(Path(out) / "model.pt", final.net.cpu(), meta))
    failed = None
    if final is not None and export is not None:
        from featx.errors import FeatxError
        from featx.finetune.export import export_finetuned

        try:
            results["finetune"]["exported"] = export_finetuned(final.net, spec, export, models_dir, meta)
        except FeatxError as exc:  # the trained run is written first: an export failure loses no work
            failed = exc
    results["finetune"]["seconds"] = time.perf_counter() - t_start + journal.seconds_before
    results["finetune"]["gradcam"] = sorted(str(p) for p in (Path(out) / "gradcam").glob("*.png"))
    write_finetune(results, dev, {name: cvres}, test, test_proba, Path(out))
    if not keep_journal:
        journal.clear()
    if failed is not None:
        raise type(failed)(f"{failed} (The run itself is written to {out}, model.pt included; export it again "
                           "after fixing this.)")
    return results, cvres, test_proba


def _run_record(run, repeat, fold, converged_from: float) -> dict:
    curve = "test_acc" if "test_acc" in run.history[0] else "val_acc"
    return {"repeat": repeat, "fold": fold, "n_train": run.n_train, "n_val": run.n_val, "best_epoch": run.best_epoch,
            "stopped_early": run.stopped_early, "seconds": run.seconds, "history": run.history,
            "summary": summarize(run.history, curve, converged_from)}


def _gradcams(run, bank, ids, y, te, classes, bmap, k: int, out: Path, device: str, fold: int = 0) -> list:
    """Overlays for up to ``k`` held-out samples of this fold, by the fold's own model: the most confident
    wrong predictions and the most confident right ones, about half each (an odd ``k`` leans to wrong ones
    on odd folds, so one overlay per fold still shows both kinds over the run)."""
    import torch

    from featx.finetune.gradcam import gradcam, overlay, safe_name, submodule

    pred = run.proba.argmax(1)
    conf = run.proba.max(1)
    wrong = [i for i in np.argsort(-conf) if pred[i] != y[te[i]]]
    right = [i for i in np.argsort(-conf) if pred[i] == y[te[i]]]
    n_wrong = min(len(wrong), (k + fold % 2) // 2)
    chosen = wrong[:n_wrong] + right[:k - n_wrong]
    if not chosen:
        return []
    pos = te[np.array(chosen)]
    net = run.net.eval()
    x = torch.from_numpy(bank.batch(pos)).to(device)
    maps, _ = gradcam(net, submodule(net.features, bmap.gradcam_layer), x, pred[chosen].tolist())
    paths = []
    for j, (i, p) in enumerate(zip(pos, pred[chosen])):
        verdict = "right" if p == y[i] else "wrong"
        title = f"{ids[i]}: {classes[y[i]]} -> {classes[p]} ({run.proba[chosen[j], p]:.2f})"
        paths.append(overlay(bank.crops([i])[0], maps[j], out / "gradcam" / f"{verdict}_{safe_name(ids[i])}.png", title))
    return paths


def _versions() -> dict:
    import torch

    return {**versions(), "torch": torch.__version__}
