"""The embedded demo: BreastMNIST -> PNG files + manifest -> extract -> fit -> report.

It writes real files and calls the same library functions as ``featx extract``
and ``featx fit``, so it exercises the path a user's own data takes.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from featx.dataset.manifest import Manifest, Sample
from featx.evaluate.config import FitConfig
from featx.evaluate.runs.fit import run_fit
from featx.extract.config import ExtractConfig
from featx.extract.run import run_extract
from featx.radiomics.config import RadiomicsConfig
from featx.radiomics.run import run_radiomics
from featx.results.codec import to_json
from featx.results.io import write_results
from featx.results.runs import FitResult

log = logging.getLogger(__name__)

BACKBONE = "efficientnet_lite0"
HEAD = "logreg"
CV_FOLDS = 10
SEED = 0
LABELS = {0: "malignant", 1: "normal_benign"}  # BreastMNIST's label 0/1
POSITIVE = "malignant"
#: Published reference on BreastMNIST's test split (MedMNIST v2, Table 3)
RADIOMICS_PARAMS = "default"
REFERENCE = {"ResNet-18 (28), trained end to end": {"auc": 0.901, "accuracy": 0.863}}


def write_demo_images(out: Path, limit_per_split: int | None = None) -> Manifest:
    """Write BreastMNIST as ``out/images/<split>/<label>/<split>_NNNN.png`` plus ``out/manifest.csv``.

    Parameters
    ----------
    out : Path
        Output folder.
    limit_per_split : int, optional
        Keep only the first N images of each split (for quick tests).
    """
    with resources.files("featx.demo").joinpath("data", "breastmnist.npz").open("rb") as fh:
        data = dict(np.load(fh))
    samples = []
    for split in ("train", "val", "test"):
        images, labels = data[f"{split}_images"], data[f"{split}_labels"][:, 0]
        n = len(images) if limit_per_split is None else min(limit_per_split, len(images))
        for i in range(n):
            label = LABELS[int(labels[i])]
            path = out / "images" / split / label / f"{split}_{i:04d}.png"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(images[i]).save(path)
            samples.append(Sample(sample_id=f"{split}_{i:04d}", path=path.resolve(), label=label, split=split))
    manifest_path = Manifest(samples).to_csv(out / "manifest.csv")
    return Manifest.from_csv(manifest_path)


def run_demo(
    out: str | Path = "featx-demo", progress: bool = True, limit_per_split: int | None = None, radiomics: bool = True
) -> FitResult:
    """Run the whole demo into ``out``; returns the CNN fit result (``extract`` summary in its ``extra``).

    With ``radiomics``, pyradiomics features of the same images (whole-image masks:
    BreastMNIST has no lesion masks) go through the same head and folds into
    ``out/results_radiomics``, and the combined model (CNN + radiomics, early fusion) into
    ``out/results_combined``; the CNN result gets ``radiomics`` and ``combined`` entries summarising them.
    """
    out = Path(out)
    manifest = write_demo_images(out, limit_per_split)
    store = out / "features.h5"
    summary = run_extract(
        ExtractConfig(backbone=BACKBONE, store=store, models_dir=out / "models_onnx"), manifest, progress=progress
    )
    extracted = {
        "n": summary.n_samples,
        "extracted": summary.n_extracted,
        "already": summary.n_already,
        "failed": len(summary.failures),
        "wall_s": summary.wall_s,
        "images_per_s": summary.images_per_s,
    }
    result = run_fit(
        _fit_config(store, summary.feature_set, out / "results"), progress=progress, extra={"extract": extracted}
    )
    if radiomics:
        row = run_radiomics_row(manifest, store, out / "results_radiomics", progress)
        combined = run_combined_row(
            store, f"{summary.feature_set}+{row['feature_set']}", out / "results_combined", progress
        )
        result = replace(result, extra={**result.extra, "radiomics": row, "combined": combined})
        write_results(result, result.outputs["results"])  # the rows beside the CNN's
    return result


def _fit_config(store: Path, features: str, out: Path) -> FitConfig:
    return FitConfig(store=store, features=features, head=HEAD, cv=CV_FOLDS, seed=SEED, out=out, positive=POSITIVE)


def run_combined_row(store: Path, features: str, out: Path, progress: bool) -> dict:
    """The CNN and radiomics features side by side (``A+B``), each block standardised on its own, same head and folds."""
    res = run_fit(_fit_config(store, features, out), progress=progress)
    return {
        "feature_set": features,
        "n_features": res.n_features,
        "cv_auc": res.cv.pooled.auc,
        "test": to_json(res.test),
        "results": str(out / "results.json"),
    }


def run_radiomics_row(manifest: Manifest, store: Path, out: Path, progress: bool) -> dict:
    """pyradiomics (preset ``default``, 2D, whole-image masks) + the same head, CV and test split."""
    s = run_radiomics(
        RadiomicsConfig(store=store, params=RADIOMICS_PARAMS, mode="2d", auto_mask="whole"), manifest, progress=progress
    )
    res = run_fit(_fit_config(store, s.feature_set, out), progress=progress)
    return {
        "feature_set": s.feature_set,
        "masks": "whole image (BreastMNIST has no lesion masks)",
        "n_features": s.n_features,
        "computed": s.n_computed,
        "failed": len(s.failures),
        "wall_s": s.wall_s,
        "cv_auc": res.cv.pooled.auc,
        "test": to_json(res.test),
        "results": str(out / "results.json"),
    }
