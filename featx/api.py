"""featx's Python API: one function per CLI command, same arguments, results as Python objects.

    >>> import featx.api as fx
    >>> fx.extract("manifest.csv", "resnet18", "features.h5")
    >>> fx.radiomics("manifest.csv", "features.h5", params="mr-2d")
    >>> res = fx.fit("features.h5", "resnet18", head="logreg", cv=10, out="results/", save="model.skops")
    >>> fx.bench("features.h5", ["resnet18", "radiomics.mr-2d"], ["logreg", "svm-rbf", "xgb"], out="bench/")
    >>> fx.predict("model.skops", "new_images/", "predictions.csv")
    >>> ft = fx.finetune("manifest.csv", "resnet18", "ft/", freeze=3, epochs=10, cv=10)
    >>> fx.gradcam("ft/model.pt", "new_images/", "cams/")

and :class:`FeatxEmbedder`, a backbone as a scikit-learn transformer. Heavy libraries
(torch, onnxruntime, pyradiomics) load only when a function needs them.
"""
from __future__ import annotations

from pathlib import Path

from featx.dataset.manifest import Manifest


def _manifest(m) -> Manifest:
    return m if isinstance(m, Manifest) else Manifest.load(m)


def extract(manifest, backbone: str, store, **kwargs):
    """``featx extract``: see :func:`featx.extract.extract` for the keyword arguments. Returns an ExtractSummary."""
    from featx.extract.run import extract as _extract

    return _extract(_manifest(manifest), backbone, store, **kwargs)


def radiomics(manifest, store, **kwargs):
    """``featx radiomics``: see :func:`featx.radiomics.run_radiomics`. Returns a RadiomicsSummary."""
    from featx.radiomics.run import run_radiomics

    return run_radiomics(_manifest(manifest), store, **kwargs)


def fit(store, features: str, **kwargs) -> dict:
    """``featx fit``: see :func:`featx.fit.run_fit`. Returns the results dict."""
    from featx.evaluate.fit import run_fit

    return run_fit(store, features, progress=kwargs.pop("progress", False), **kwargs)


def bench(store, features: list[str], heads: list[str], **kwargs) -> dict:
    """``featx bench``: see :func:`featx.bench.run_bench`. Returns the results dict (cells ranked)."""
    from featx.evaluate.bench import run_bench

    return run_bench(store, list(features), list(heads), progress=kwargs.pop("progress", False), **kwargs)


def predict(model, source, out, **kwargs):
    """``featx predict``: see :func:`featx.predict.run_predict`. Returns a PredictSummary."""
    from featx.predict import run_predict

    return run_predict(model, source, out, progress=kwargs.pop("progress", False), **kwargs)


def report(results_json, out=None) -> Path:
    """``featx report``: re-render the page of a saved results.json; returns its path."""
    from featx.report.html import rerender

    return rerender(results_json, out)


def load_features(store, name: str):
    """A feature set of a store as a :class:`featx.feature_set.FeatureSet` (X, ids, labels, subjects, ...)."""
    from featx.store.store import FeatureStore

    with FeatureStore(store) as st:
        return st.load(name)


def load_model(path):
    """A model saved by ``fit(..., save=...)``; ``.predict(feature_set)`` gives class probabilities."""
    from featx.evaluate.saved_model import load_model as _load

    return _load(path)


def __getattr__(name):  # FeatxEmbedder without importing scikit-learn's base at ``import featx.api``
    if name == "FeatxEmbedder":
        from featx.extract.embedder import FeatxEmbedder

        return FeatxEmbedder
    raise AttributeError(name)


__all__ = ["extract", "radiomics", "fit", "bench", "predict", "report", "load_features", "load_model", "FeatxEmbedder"]


def finetune(manifest, backbone: str, out, **kwargs) -> dict:
    """``featx finetune``: see :func:`featx.finetune.run.run_finetune` (``head``: a HeadConfig, ``train``: a
    TrainConfig). Returns the results dict."""
    from featx.finetune.run import run_finetune

    return run_finetune(_manifest(manifest), backbone, out, **kwargs)


def gradcam(model, source, out, **kwargs) -> list:
    """``featx gradcam``: see :func:`featx.finetune.explain.run_gradcam`. Returns (id, predicted, explained, path) rows."""
    from featx.finetune.explain import run_gradcam

    return run_gradcam(model, source, out, **kwargs)
