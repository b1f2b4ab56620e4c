"""Saved models: the refit head(s) plus everything needed to compute the same features again.

A model file is skops' format (``.skops``), not pickle: loading it instantiates
only types the loader trusts, and featx trusts scikit-learn, XGBoost, scikit-survival, NumPy, SciPy
and its own heads; anything else is refused with the type named. Beside the
fitted estimators it holds a JSON ``meta`` entry: the classes, the feature set's
provenance (backbone, weights and ONNX sha256, or the pyradiomics settings), the
feature columns used, the fusion and the CV/test figures of the fit that made it.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from featx import __version__
from featx.errors import FeatxError, short_list
from featx.evaluate.models.selection import ensemble_proba
from featx.evaluate.protocol.cv import proba_of, threshold_of
from featx.evaluate.protocol.fusion import MODEL_FUSIONS, concat_by_subject, fuse_images, subject_level
from featx.evaluate.statistics.metrics import predicted_classes
from featx.results.bench import cell_title
from featx.results.codec import to_json
from featx.results.runs import FitResult
from featx.store.feature_set import FeatureSet, default_names

MODEL_FORMAT = 1
STACK = "__stacking__"  # an ensemble model's meta-learner, beside its members' models
# featx 0.x before the rooms of evaluate/ (Task and sub-packages): where a saved model's featx types lived then
MOVED = {
    "featx.evaluate.estimators": "featx.evaluate.heads.estimators",
    "featx.evaluate.operating": "featx.evaluate.heads.operating",
}
TRUSTED_PREFIXES = ("featx.", "sklearn.", "xgboost.", "sksurv.", "numpy.", "scipy.", "builtins.", "collections.")


def save_model(
    path: str | Path,
    models: dict,
    result: FitResult,
    fs: FeatureSet,
    sequences: list | None,
    fuse_how: str | None,
    feature_names: list | None = None,
) -> Path:
    """Write ``models`` (unit name -> fitted estimator) and their metadata to ``path`` (``.skops``).

    ``feature_names``: the named columns the heads were fitted on, in order (before any
    concatenation across sequences); prediction selects the new features by these names.
    """
    path = _model_path(path)
    meta = {
        "format": MODEL_FORMAT,
        "featx_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "feature_set": result.feature_set,
        "kind": fs.provenance.get("kind"),
        "provenance": fs.provenance,
        "classes": list(result.classes),
        "target": to_json(result.target),
        "positive": result.cv.pooled.positive,
        "head": to_json(result.head),
        "dropped_features": list(result.dropped_features),
        "feature_names": feature_names,
        "n_features": result.n_features,
        "fuse": fuse_how,
        "sequences": sequences,
        "threshold": {unit: threshold_of(m) for unit, m in models.items()},
        "decision": result.protocol.decision,
        "calibrate": result.protocol.calibrate,
        "trained_on": {
            "store": result.store,
            "n": result.n_dev,
            "protocol": result.protocol.folds,
            "cv_auc": result.cv.pooled.auc,
            "test_auc": result.test.auc if result.test else None,
        },
    }
    return write_model(path, models, meta)


def write_model(path: Path, models: dict, meta: dict) -> Path:
    """``models`` and ``meta`` into ``path`` (``.skops``), atomically."""
    import skops.io as sio

    tmp = path.with_name(path.name + ".part")
    sio.dump({"meta_json": json.dumps(meta), "models": models}, tmp)
    tmp.replace(path)
    return path


def _model_path(path) -> Path:
    path = Path(path)
    if path.suffix != ".skops":
        path = path.with_name(path.name + ".skops")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _features_meta(fs: FeatureSet, dropped) -> dict:
    """What predict needs to compute a feature set again and select its columns."""
    return {
        "feature_set": fs.name,
        "kind": fs.provenance.get("kind"),
        "provenance": fs.provenance,
        "dropped_features": list(dropped),
        "feature_names": fs.feature_names,
        "n_features": int(fs.X.shape[1]),
        "fuse": None,
        "sequences": None,
    }


def save_bench_model(path, result, row, made: list, fitted: dict, sets: dict, loaded: list) -> Path:
    """The top-ranked row of a bench (``row``: a cell, or an ensemble of cells), refit on every development row,
    as a model ``featx predict`` applies: a cell like ``fit --save``'s, an ensemble with each member's model
    and features (and the stacking meta-learner)."""
    if row.kind == "finetune":
        raise FeatxError(
            f"The top-ranked row of this bench is a fine-tuning run ({row.title}); --save keeps frozen-feature "
            "cells and ensembles. Use the fine-tuning run's own model, or drop --finetuned."
        )
    dropped = {fs.name: d for fs, d in loaded}
    by_title = {cell_title(c["dev"].name, c["head"]): c for c in made}
    ens = fitted.get(row.title)
    titles = [m.title for m in ens.members] if ens is not None else [row.title]
    members, models = [], {}
    for t in titles:
        c = by_title[t]
        fs = sets[c["dev"].name]
        members.append({"title": t, "head": c["head"], **_features_meta(fs, dropped.get(fs.name, ()))})
        models[t] = c["refit"][0]
    meta = {
        "format": MODEL_FORMAT,
        "featx_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "classes": list(result.classes),
        "target": to_json(result.target),
        "positive": result.positive,
        "head": {"name": row.head},
        "threshold": {t: threshold_of(m) for t, m in models.items()},
        "decision": result.protocol.decision if ens is None or ens.threshold is not None else "most probable class",
        "calibrate": result.protocol.calibrate,
        "trained_on": {
            "store": result.store,
            "n": result.n_dev,
            "protocol": result.protocol.folds,
            "cv_auc": row.cv.pooled.auc,
            "test_auc": row.test.auc if row.test else None,
            "bench_row": row.title,
        },
    }
    if ens is None:
        meta.update({k: v for k, v in members[0].items() if k not in ("title", "head")})
    else:
        meta.update(
            feature_set=row.title,
            kind="ensemble",
            ensemble={"how": ens.how, "members": members, "threshold": ens.threshold},
            provenance={},
        )
        if ens.meta is not None:
            models[STACK] = ens.meta
    return write_model(_model_path(path), models, meta)


@dataclass
class Prediction:
    """Predictions of a saved model: one row per sample (or per subject when the model fuses by subject)."""

    level: str  # "image" or "subject"
    ids: np.ndarray
    proba: np.ndarray  # (n, C)
    classes: list
    subject: np.ndarray | None = None  # per-subject mean / fused probabilities, when subjects are known
    subject_proba: np.ndarray | None = None
    threshold: float | None = None  # the training's threshold on the positive class (None: most probable class)
    positive: str | None = None

    def predicted(self, proba=None) -> list[str]:
        """The predicted class of each row of ``proba`` (default: this prediction's), by the training's threshold;
        a regression (no classes): the predicted value."""
        p = self.proba if proba is None else proba
        if not self.classes:
            return [f"{v:.6g}" for v in np.asarray(p)[:, 0]]
        return [self.classes[int(i)] for i in predicted_classes(p, self.classes, self.positive, self.threshold)]


@dataclass
class FeatxModel:
    """A loaded model: ``meta`` (see :func:`save_model`) and ``models`` (unit -> fitted estimator)."""

    meta: dict
    models: dict
    path: Path | None = None

    @property
    def classes(self) -> list:
        return self.meta["classes"]

    @property
    def positive(self) -> str | None:
        return self.meta.get("positive")

    @property
    def kind(self) -> str:
        """What it predicts: ``classification``, ``regression`` (a value) or ``survival`` (a risk score and a
        survival curve)."""
        return (self.meta.get("target") or {}).get("kind", "classification")

    @property
    def regression(self) -> bool:
        """A model of a number (``--target regression``): it predicts a value, not classes."""
        return self.kind == "regression"

    @property
    def n_proba(self) -> int | None:
        """Class columns of its predictions (None: a regression's value, a survival head's outputs)."""
        return len(self.classes) if self.kind == "classification" else None

    @property
    def output_columns(self) -> list[str]:
        """The prediction CSV's columns after ``predicted``: a probability per class; a survival model's risk group
        (by its training rows' cut-off) and survival probability at each time it was evaluated at; none for a
        regression."""
        if self.kind == "survival":
            return ["risk_group", *(f"S({t:g})" for t in self.meta["target"].get("times", ()))]
        return [] if self.kind == "regression" else [f"p_{c}" for c in self.classes]

    def output_cells(self, row) -> list[str]:
        """One prediction row (``Prediction.proba``'s) as the cells of :attr:`output_columns`."""
        if self.kind == "survival":
            return ["high" if row[0] > row[1] else "low", *(f"{v:.6f}" for v in row[2:])]
        return [] if self.kind == "regression" else [f"{v:.6f}" for v in row]

    def members(self) -> list[FeatxModel]:
        """The models whose features predict computes: an ensemble's members, else the model itself."""
        ens = self.meta.get("ensemble")
        if not ens:
            return [self]
        return [
            FeatxModel({**self.meta, **m, "ensemble": None}, {m["title"]: self.models[m["title"]]}, self.path)
            for m in ens["members"]
        ]

    def predict_all(self, sets: list[FeatureSet]) -> Prediction:
        """Predictions from the feature sets of :meth:`members` (in that order): an ensemble combines its members'
        probabilities on the samples every member could predict."""
        if not self.meta.get("ensemble"):
            return self.predict(sets[0])
        preds = [m.predict(fs) for m, fs in zip(self.members(), sets)]
        common = set(preds[0].ids.tolist()).intersection(*(p.ids.tolist() for p in preds[1:]))
        ids = np.array([i for i in preds[0].ids.tolist() if i in common], dtype=preds[0].ids.dtype)
        where = [{v: k for k, v in enumerate(p.ids.tolist())} for p in preds]
        probas = [p.proba[np.array([w[i] for i in ids.tolist()], dtype=np.int64)] for p, w in zip(preds, where)]
        how, n = self.meta["ensemble"]["how"], len(self.classes)
        proba = ensemble_proba(how, probas, self.models.get(STACK), n) if len(ids) else np.zeros((0, n))
        threshold = self.meta["ensemble"].get("threshold")
        return Prediction("image", ids, proba, self.classes, threshold=threshold, positive=self.positive)

    def columns(self, fs: FeatureSet) -> FeatureSet:
        """``fs``'s columns the model was fitted on, in the fit's order (by name when the set names them)."""
        trained = self.meta.get("feature_names")
        if trained and fs.feature_names:
            index = {n: i for i, n in enumerate(fs.feature_names)}
            missing = [n for n in trained if n not in index]
            if missing:
                raise FeatxError(
                    f"{fs.name!r} lacks {len(missing)} feature(s) the model {self.path} was fitted on "
                    f"({short_list(missing)}): these are not the features it was trained on."
                )
            keep = np.array([index[n] for n in trained], dtype=np.int64)
        else:
            names = default_names(fs.X.shape[1])
            dropped = set(self.meta["dropped_features"])
            keep = np.array([i for i, n in enumerate(names) if n not in dropped], dtype=np.int64)
        width = len(keep) * (len(self.meta["sequences"]) if self.meta["fuse"] == "concat" else 1)
        if width != self.meta["n_features"]:
            raise FeatxError(
                f"{fs.name!r} gives {width} features where the model {self.path} expects "
                f"{self.meta['n_features']}: these are not the features it was trained on."
            )
        return FeatureSet(
            fs.name,
            fs.X[:, keep],
            fs.ids,
            fs.labels,
            fs.subjects,
            fs.splits,
            fs.sequences,
            fs.provenance,
            list(trained) if trained and fs.feature_names else None,
            outcomes=fs.outcomes,
        )

    def predict(self, fs: FeatureSet) -> Prediction:
        """Class probabilities for the (finite) rows of ``fs``; rows with NaN/inf are the caller's to report."""
        fs = self.columns(fs)
        how = self.meta["fuse"]
        if how == "concat":
            fs = concat_by_subject(fs, self.meta["sequences"])
            model = next(iter(self.models.values()))
            proba = proba_of(model, fs.X, self.n_proba)
            return Prediction(
                "subject", fs.ids, proba, self.classes, threshold=threshold_of(model), positive=self.positive
            )
        if how in MODEL_FUSIONS:
            unknown = sorted(set(fs.sequences.tolist()) - set(self.models))
            if unknown:
                raise FeatxError(
                    f"Sequence(s) {unknown} have no model in {self.path} (it has {sorted(self.models)}); "
                    "give the manifest's 'sequence' column the names used in training."
                )
            proba = np.zeros((len(fs), len(self.classes)))
            for q, model in self.models.items():
                sel = fs.sequences == q
                proba[sel] = proba_of(model, fs.X[sel], len(self.classes))
            names, fused = fuse_images(
                {
                    q: (fs.subjects[fs.sequences == q], proba[fs.sequences == q])
                    for q in self.models
                    if (fs.sequences == q).any()
                },
                how,
            )
            return Prediction("image", fs.ids, proba, self.classes, names, fused)
        model = next(iter(self.models.values()))
        proba = proba_of(model, fs.X, self.n_proba)
        pred = Prediction("image", fs.ids, proba, self.classes, threshold=threshold_of(model), positive=self.positive)
        if (fs.subjects != "").all() and len(set(fs.subjects.tolist())) < len(fs):
            pred.subject, _, pred.subject_proba = subject_level(fs.subjects, np.zeros(len(fs), int), proba)
        return pred


def load_model(path: str | Path) -> FeatxModel:
    """Load a ``.skops`` model written by ``featx fit --save`` (or ``bench --save``), of this featx or an earlier one.

    Raises
    ------
    FeatxError
        Missing or unreadable file, not a featx model, or a type featx does not trust.
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise FeatxError(f"Model file not found: {path}. Save one with 'featx fit ... --save model.skops'.")
    try:
        data = _moved_types_renamed(path.read_bytes())
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # not a zip / not skops
        raise FeatxError(f"{path} is not a featx model file ({type(exc).__name__}: {exc}).") from None
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise FeatxError(
            f"{path} contains types featx does not load ({', '.join(refused)}); only scikit-learn, "
            "XGBoost, scikit-survival, NumPy, SciPy and featx objects are trusted. Refit the model with 'featx fit --save'."
        )
    try:
        obj = sio.loads(data, trusted=untrusted)
        meta = json.loads(obj["meta_json"])
        models = obj["models"]
    except Exception as exc:
        raise FeatxError(f"{path} is not a readable featx model ({type(exc).__name__}: {exc}).") from None
    if meta.get("format") != MODEL_FORMAT:
        raise FeatxError(
            f"{path}: model format {meta.get('format')} is not the one this featx reads ({MODEL_FORMAT}); "
            f"it was written by featx {meta.get('featx_version')}. Refit it with this version."
        )
    return FeatxModel(meta, models, path)


def _moved_types_renamed(data: bytes) -> bytes:
    """A model file's bytes with the modules of featx's heads renamed to where they live now (``MOVED``), so a
    model saved before evaluate/ was split into rooms loads as the same objects. A file without them is returned
    as it is."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        schema = z.read("schema.json").decode()
        renamed = schema
        for old, new in MOVED.items():
            renamed = renamed.replace(f'"__module__": "{old}"', f'"__module__": "{new}"')
        if renamed == schema:
            return data
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as out:
            for item in z.infolist():
                body = renamed if item.filename == "schema.json" else z.read(item.filename)
                out.writestr(item.filename, body, compress_type=item.compress_type)
    return buf.getvalue()
