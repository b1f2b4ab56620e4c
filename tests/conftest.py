"""Shared fixtures: a small real BreastMNIST subset on disk and cached backbone exports."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent / "data"  # real files, copied from the project's shared data


@pytest.fixture(scope="session")
def demo_subset(tmp_path_factory) -> Path:
    """60 train + 20 val + 40 test BreastMNIST images written as PNG, with manifest.csv."""
    from featx.demo import write_demo_images

    out = tmp_path_factory.mktemp("bm")
    manifest = write_demo_images(out, limit_per_split=None)
    keep = {"train": 60, "val": 20, "test": 40}
    counts = {k: 0 for k in keep}
    rows = []
    for s in manifest:
        if counts[s.split] < keep[s.split]:
            counts[s.split] += 1
            rows.append(s)
    from featx.manifest import Manifest

    Manifest(rows).to_csv(out / "subset.csv")
    return out


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """One ONNX cache folder for the whole session (exports take seconds)."""
    return tmp_path_factory.mktemp("models_onnx")


@pytest.fixture(scope="session")
def lite0(models_dir):
    """(spec, torch model, ExportedModel) of EfficientNet-Lite0 with its real ImageNet weights."""
    from featx.backbones.export import export_onnx
    from featx.backbones.weights import load_backbone

    spec, model = load_backbone("efficientnet_lite0", "imagenet")
    return spec, model, export_onnx(spec, model, models_dir)


@pytest.fixture(scope="session")
def resnet18_random(models_dir):
    """(spec, torch model, ExportedModel) of ResNet-18 with seeded random weights."""
    from featx.backbones.export import export_onnx
    from featx.backbones.weights import load_backbone

    spec, model = load_backbone("resnet18", "random")
    return spec, model, export_onnx(spec, model, models_dir)
