"""featx's Python API: one function per CLI command, the same settings as keyword arguments, typed results.

    >>> import featx.api as fx
    >>> fx.extract("manifest.csv", "resnet18", "features.h5")
    >>> fx.radiomics("manifest.csv", "features.h5", params="mr-2d")
    >>> res = fx.fit("features.h5", "resnet18", head="logreg", cv=10, out="results/", save="model.skops")
    >>> res.cv.pooled.auc, res.test.auc
    >>> bench = fx.bench("features.h5", ["resnet18", "radiomics.mr-2d"], ["logreg", "svm-rbf", "xgb"], out="bench/")
    >>> fx.predict("model.skops", "new_images/", "predictions.csv")
    >>> ft = fx.finetune("manifest.csv", "resnet18", "ft/", freeze=3, epochs=10, cv=10)
    >>> fx.gradcam("ft/model.pt", "new_images/", "cams/")

The keyword arguments are the fields of the command's config (:class:`~featx.extract.config.ExtractConfig`,
:class:`~featx.evaluate.config.FitConfig`, :class:`~featx.evaluate.config.BenchConfig`,
:class:`~featx.radiomics.config.RadiomicsConfig`, :class:`~featx.finetune.config.FinetuneConfig`), which
validate them; ``featx.toml`` is read by the command line only. :class:`FeatxEmbedder` is a backbone as a
scikit-learn transformer. torch, ONNX Runtime and pyradiomics load only when a function needs them.
"""

from __future__ import annotations

from pathlib import Path

from featx.config import ARGUMENT
from featx.dataset.manifest import Manifest
from featx.evaluate.config import BenchConfig, FitConfig
from featx.evaluate.models.saved import FeatxModel
from featx.evaluate.models.saved import load_model as _load_model
from featx.evaluate.runs.bench import run_bench
from featx.evaluate.runs.fit import run_fit
from featx.extract.config import ExtractConfig
from featx.extract.embedder import FeatxEmbedder
from featx.extract.run import ExtractSummary, run_extract
from featx.finetune.config import FinetuneConfig
from featx.finetune.explain import run_gradcam
from featx.finetune.run import run_finetune
from featx.predict import PredictSummary, run_predict
from featx.radiomics.config import RadiomicsConfig
from featx.radiomics.run import RadiomicsSummary, run_radiomics
from featx.report.compare import compare_rows, write_compare
from featx.report.write import rerender
from featx.results.bench import BenchResult
from featx.results.io import load_results
from featx.results.runs import FitResult
from featx.store.feature_set import FeatureSet
from featx.store.open import open_store

__all__ = [
    "extract",
    "radiomics",
    "fit",
    "bench",
    "finetune",
    "predict",
    "gradcam",
    "report",
    "compare",
    "load_features",
    "load_model",
    "load_results",
    "FeatxEmbedder",
]


def _manifest(m) -> tuple[Manifest, Path | None]:
    return (m, None) if isinstance(m, Manifest) else (Manifest.load(m), Path(m))


def _config(cls, **settings):
    """``cls`` from keyword arguments: an unknown one is a ConfigError naming the closest setting."""
    return cls.resolve((ARGUMENT, settings))


def extract(manifest, backbone: str, store, *, progress: bool = False, **settings) -> ExtractSummary:
    """``featx extract``: ``settings`` are :class:`~featx.extract.config.ExtractConfig` fields."""
    man, path = _manifest(manifest)
    return run_extract(
        _config(ExtractConfig, manifest=path, backbone=backbone, store=store, **settings), man, progress=progress
    )


def radiomics(manifest, store, *, progress: bool = False, **settings) -> RadiomicsSummary:
    """``featx radiomics``: ``settings`` are :class:`~featx.radiomics.config.RadiomicsConfig` fields."""
    man, path = _manifest(manifest)
    return run_radiomics(_config(RadiomicsConfig, manifest=path, store=store, **settings), man, progress=progress)


def fit(store, features: str, *, progress: bool = False, **settings) -> FitResult:
    """``featx fit``: ``settings`` are :class:`~featx.evaluate.config.FitConfig` fields."""
    return run_fit(_config(FitConfig, store=store, features=features, **settings), progress=progress)


def bench(
    store, features: list[str] | str, heads: list[str] | str = (), *, progress: bool = False, **settings
) -> BenchResult:
    """``featx bench``: ``settings`` are :class:`~featx.evaluate.config.BenchConfig` fields (a list setting takes
    a list or a comma-separated text). Cells come ranked."""
    return run_bench(_config(BenchConfig, store=store, features=features, heads=heads, **settings), progress=progress)


def finetune(manifest, backbone: str, out, *, progress: bool = False, **settings):
    """``featx finetune``: ``settings`` are :class:`~featx.finetune.config.FinetuneConfig` fields. Returns the
    FitResult (``type`` finetune), or the index of the sequence runs with ``sequence='each'``."""
    man, path = _manifest(manifest)
    return run_finetune(
        _config(FinetuneConfig, manifest=path, backbone=backbone, out=out, **settings), man, progress=progress
    )


def predict(model, source, out, *, progress: bool = False, **options) -> PredictSummary:
    """``featx predict``: see :func:`featx.predict.run_predict` for the options."""
    return run_predict(model, source, out, progress=progress, **options)


def gradcam(model, source, out, **options) -> list:
    """``featx gradcam``: see :func:`featx.finetune.explain.run_gradcam`. Returns (id, predicted, explained, path)."""
    return run_gradcam(model, source, out, **options)


def report(results_json, out=None) -> Path:
    """``featx report``: re-render the page of a saved results.json (any featx version); returns its path."""
    return rerender(results_json, out)


def compare(runs: list, out=None) -> list[dict]:
    """``featx compare``: one row per model of every run under ``runs``; ``out`` writes compare.csv/.md."""
    rows = compare_rows(runs)
    if out is not None:
        write_compare(rows, Path(out))
    return rows


def load_features(store, name: str) -> FeatureSet:
    """A feature set of a store (X, ids, labels, subjects, ...)."""
    with open_store(store) as st:
        return st.load(name)


def load_model(path) -> FeatxModel:
    """A model saved by ``fit(..., save=...)``; ``.predict(feature_set)`` gives class probabilities."""
    return _load_model(path)
