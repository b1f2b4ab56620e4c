"""``featx predict``: a saved model applied to new images, with the features computed exactly as in training.

The model's provenance says how its features were made (backbone, weights,
layer, intensity window, TTA; or the pyradiomics settings, mode and mask rule).
Predict computes them again into a store (a temporary one unless ``store`` is
given), refuses weights other than the training weights, and writes one CSV row
per input: the predicted class and a probability per class, or why the sample
could not be predicted.
"""

from __future__ import annotations

import csv
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featx.dataset.inputs import input_manifest
from featx.dataset.manifest import Manifest
from featx.errors import FeatxError
from featx.evaluate.models.saved import FeatxModel, Prediction, load_model
from featx.evaluate.protocol.combined import KIND, combine
from featx.extract.config import ExtractConfig
from featx.extract.run import run_extract
from featx.radiomics.config import RadiomicsConfig
from featx.radiomics.params import RadiomicsParams
from featx.radiomics.run import run_radiomics
from featx.store.feature_set import FeatureSet
from featx.store.open import open_store

log = logging.getLogger(__name__)


@dataclass
class PredictSummary:
    out: Path
    n_inputs: int
    n_predicted: int
    level: str
    failures: list = field(default_factory=list)  # (sample id, why)
    subjects_out: Path | None = None
    predictions: list = field(default_factory=list)  # (id, predicted class)


def compute_features(
    model: FeatxModel,
    manifest: Manifest,
    store: Path,
    *,
    models_dir="models_onnx",
    provider: str = "auto",
    batch_size: int = 32,
    allow_export_change: bool = False,
    progress: bool = True,
) -> tuple[str, list]:
    """Compute the model's features for ``manifest`` into ``store``; returns (feature-set name, failures).

    The extraction is rebuilt from the config recorded in the features' provenance: every setting that
    changes the numbers is the training one; where and how fast it runs is this call's. A combined model
    (``A+B``) computes every part; a sample that fails in any part fails, with each part's reason.
    """
    name = model.meta["feature_set"]
    how = dict(models_dir=models_dir, provider=provider, batch_size=batch_size, progress=progress)
    parts = feature_parts(model)
    if len(parts) == 1 and model.meta["kind"] not in (KIND, "ensemble"):
        part, prov = next(iter(parts.items()))
        return name, _compute_part(model, part, prov, manifest, store, allow_export_change, how)
    reasons: dict[str, list] = {}
    for part, prov in parts.items():
        for sample, why in _compute_part(model, part, prov, manifest, store, allow_export_change, how):
            reasons.setdefault(sample, []).append(f"{part}: {why}")
    return name, [(sample, "; ".join(whys)) for sample, whys in reasons.items()]


def feature_parts(model: FeatxModel) -> dict:
    """Every feature set predict computes for ``model`` (name -> provenance): a combined set's parts, an ensemble's
    members' feature sets (each once)."""
    out = {}
    for m in model.members():
        if m.meta["kind"] == KIND:
            out.update(m.meta["provenance"]["parts"])
        else:
            out[m.meta["feature_set"]] = m.meta["provenance"]
    return out


def load_features(model: FeatxModel, store: Path) -> FeatureSet:
    """The model's feature set from ``store`` (a combined one joined from its parts, as in training)."""
    with open_store(store) as st:
        if model.meta["kind"] != KIND:
            return st.load(model.meta["feature_set"])
        sets = [st.load(part).named() for part in model.meta["provenance"]["parts"]]
    return combine(sets, "prediction")


def _compute_part(
    model: FeatxModel, name: str, prov: dict, manifest: Manifest, store: Path, allow_export_change: bool, how: dict
) -> list:
    """Compute one feature set the model takes (``name``, made as ``prov`` says); returns the failures."""
    if prov.get("pooled"):
        pooled = prov["pooled"]
        raise FeatxError(
            f"The model takes {name!r}, rows of {pooled['from']!r} pooled per {pooled['by']} ({pooled['how']}): "
            "predict does not pool yet. Extract and pool the new images ('featx extract', 'featx pool') into a store "
            "and apply the model with the Python API (featx.api.load_model(...).predict(feature_set))."
        )
    if prov.get("kind") == "radiomics":
        try:
            return _radiomics(prov, manifest, store, name, how["progress"])
        except FeatxError as exc:
            raise FeatxError(f"{model.path} takes radiomics features ({name}): {exc}") from None
    try:
        cfg = ExtractConfig.from_provenance(
            prov,
            store=store,
            name=name,
            models_dir=how["models_dir"],
            provider=how["provider"],
            batch_size=how["batch_size"],
            max_failures="100%",
        )  # every failure is a CSV row
    except FeatxError as exc:
        raise FeatxError(f"{model.path}: {exc}") from None
    engine = prov.get("engine") or {"runtime": "torch" if cfg.precision == "bf16" else "auto"}
    if prov.get("precision", cfg.precision) != "fp32":  # the same engine at the same precision (auto: its choice)
        cfg = cfg.replace(precision=prov.get("precision", cfg.precision), runtime=engine["runtime"])
    summary = run_extract(cfg, manifest, progress=how["progress"], made_like=prov)
    with open_store(store) as st:
        now = st.provenance(name)
    _check_same_backbone(model, prov, now, allow_export_change)
    return summary.failures


def _check_same_backbone(model: FeatxModel, then: dict, now: dict, allow_export_change: bool = False) -> None:
    w_then, w_now = then["spec"].get("weights_sha256"), now["spec"].get("weights_sha256")
    if w_then != w_now:
        raise FeatxError(
            f"The backbone weights differ from those {model.path} was trained on (sha256 {w_now} here, "
            f"{w_then} in training): its head would get other features. Use the training weights "
            f"({then['spec'].get('weights_id')})."
        )
    if then.get("onnx_sha256") and now.get("onnx_sha256") and then["onnx_sha256"] != now["onnx_sha256"]:
        if not allow_export_change:
            raise FeatxError(
                f"The backbone's ONNX export here (sha256 {now['onnx_sha256'][:16]}...) differs from the one "
                f"{model.path} was trained with ({then['onnx_sha256'][:16]}...; exported by "
                f"{then.get('exporter')}, opset {then.get('opset')}): same weights, but another torch/exporter "
                "version can change the features. Re-extract and refit here, or pass --allow-export-change "
                "to accept it."
            )
        log.warning(
            "the ONNX export differs from the training one (sha256 %s vs %s), accepted by "
            "--allow-export-change: same weights, features may differ slightly",
            now["onnx_sha256"][:12],
            then["onnx_sha256"][:12],
        )


def _radiomics(prov: dict, manifest: Manifest, store: Path, name: str, progress: bool) -> list:
    import radiomics

    params = prov["params"]
    if params.get("pyradiomics") != radiomics.__version__:
        log.warning(
            "pyradiomics %s here, %s in training: feature values may differ",
            radiomics.__version__,
            params.get("pyradiomics"),
        )
    cfg = RadiomicsConfig(store=store, name=name, max_failures="100%")
    return run_radiomics(cfg, manifest, params=RadiomicsParams.from_provenance(prov), progress=progress).failures


def run_predict(
    model_path: str | Path,
    source: str | Path,
    out: str | Path,
    *,
    store: str | Path | None = None,
    models_dir: str | Path = "models_onnx",
    provider: str = "auto",
    batch_size: int = 32,
    allow_export_change: bool = False,
    progress: bool = True,
) -> PredictSummary:
    """Apply the model saved at ``model_path`` to ``source``; write predictions to the CSV ``out``.

    Parameters
    ----------
    model_path : path
        A ``.skops`` file from ``featx fit --save``.
    source : path
        An image, a folder of images, or a manifest CSV (labels optional; ``subject`` and
        ``sequence`` columns when the model fuses sequences).
    out : path
        Predictions CSV: ``id, path, subject, sequence, label, predicted, p_<class>..., error``.
        With subjects, a second CSV ``<out>_subjects.csv`` holds the per-subject (fused) predictions.
    store : path, optional
        Keep the computed features in this store (reused on a rerun); default a temporary one.
    allow_export_change : bool
        Accept an ONNX export whose sha256 differs from the training one (same weights; another
        torch or exporter version). Different weights are always refused.
    """
    model = load_model(model_path)
    manifest = input_manifest(source)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="featx-predict-") as tmp:
        store_path = Path(store) if store else Path(tmp) / "features.h5"
        name, failures = compute_features(
            model,
            manifest,
            store_path,
            models_dir=models_dir,
            provider=provider,
            batch_size=batch_size,
            allow_export_change=allow_export_change,
            progress=progress,
        )
        failed = dict(failures)
        sets = []
        for member in model.members():
            try:
                sets.append(load_features(member, store_path))
            except FeatxError:
                sets = None
                break
    wanted = {s.sample_id for s in manifest}
    for i, (member, fs) in enumerate(zip(model.members(), sets or [])):
        fs = fs.subset(np.isin(fs.ids, list(wanted)))  # a kept store may hold other samples too
        bad = ~np.isfinite(member.columns(fs).X).all(axis=1)
        for j in np.flatnonzero(bad):
            failed[str(fs.ids[j])] = "features have NaN/inf values (see the store's note for this row)"
        sets[i] = fs.subset(~bad)
    pred = model.predict_all(sets) if sets and all(len(fs) for fs in sets) else None
    summary = PredictSummary(
        out,
        len(manifest),
        0 if pred is None else len(pred.ids),
        pred.level if pred else "image",
        sorted(failed.items()),
    )
    _write(out, manifest, model, pred, failed, summary)
    return summary


def _write(
    out: Path, manifest: Manifest, model: FeatxModel, pred: Prediction | None, failed: dict, summary: PredictSummary
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = {}
    if pred is not None:
        rows = {str(i): p for i, p in zip(pred.ids, pred.proba)}
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        decided = {} if pred is None else dict(zip((str(i) for i in pred.ids), pred.predicted()))
        if pred is not None and pred.level == "subject":  # concatenated sequences: one row per subject
            w.writerow(["subject", "predicted"] + model.output_columns)
            for s, p in rows.items():
                w.writerow([s, decided[s]] + model.output_cells(p))
                summary.predictions.append((s, decided[s]))
            return
        w.writerow(["id", "path", "subject", "sequence", "label", "predicted"] + model.output_columns + ["error"])
        for s in manifest:
            p = rows.get(s.sample_id)
            cells = [s.sample_id, s.path, s.subject or "", s.sequence or "", s.label or ""]
            if p is None:
                w.writerow(cells + [""] * (1 + len(model.output_columns)) + [failed.get(s.sample_id, "not predicted")])
            else:
                w.writerow(cells + [decided[s.sample_id]] + model.output_cells(p) + [""])
                summary.predictions.append((s.sample_id, decided[s.sample_id]))
    if pred is not None and pred.subject is not None:
        summary.subjects_out = out.with_name(out.stem + "_subjects.csv")
        how = model.meta["fuse"] or "mean over the subject's images"
        with open(summary.subjects_out, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["subject", "predicted"] + model.output_columns + ["aggregation"])
            for s, c, p in zip(pred.subject, pred.predicted(pred.subject_proba), pred.subject_proba):
                w.writerow([s, c] + model.output_cells(p) + [how])
