"""Shared fixtures: a small real BreastMNIST subset on disk and backbone exports made once per test run."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent / "data"  # real files, copied from the project's shared data
os.environ.setdefault("COLUMNS", "200")  # in-process CLI output: tables as wide as a terminal's, not 80 columns

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per parallel worker (torch, ONNX Runtime and every featx subprocess read it): without it, two
    # workers of two threads each on two cores spin-wait against each other
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def demo_subset(tmp_path_factory) -> Path:
    """60 train + 20 val + 40 test BreastMNIST images written as PNG, with manifest.csv."""
    from featx.demo.demo import write_demo_images

    out = tmp_path_factory.mktemp("bm")
    manifest = write_demo_images(out, limit_per_split=None)
    keep = {"train": 60, "val": 20, "test": 40}
    counts = {k: 0 for k in keep}
    rows = []
    for s in manifest:
        if counts[s.split] < keep[s.split]:
            counts[s.split] += 1
            rows.append(s)
    from featx.dataset.manifest import Manifest

    Manifest(rows).to_csv(out / "subset.csv")
    return out


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, worker_id) -> Path:
    """One ONNX cache for the whole test run, shared by the parallel workers: an export is made once, by
    whichever worker needs it first (exports are content-addressed and replaced atomically)."""
    root = tmp_path_factory.getbasetemp()
    d = (root if worker_id == "master" else root.parent) / "models_onnx"
    d.mkdir(exist_ok=True)
    return d


@contextlib.contextmanager
def exporting(models_dir: Path, name: str):
    """Hold the run-wide lock of one model's export, so two workers never export the same model at once."""
    from filelock import FileLock

    with FileLock(str(models_dir / f".{name}.lock")):
        yield


def exported(models_dir: Path, backbone: str, weights: str, layer: str | None = None):
    """(spec, torch model, ExportedModel) of a backbone, exported into the shared cache once per test run."""
    from featx.backbones.export import export_onnx
    from featx.backbones.weights import load_backbone

    spec, model = load_backbone(backbone, weights, layer=layer)
    with exporting(models_dir, spec.name):
        return spec, model, export_onnx(spec, model, models_dir)


@pytest.fixture(scope="session")
def lite0(models_dir):
    """(spec, torch model, ExportedModel) of EfficientNet-Lite0 with its real ImageNet weights."""
    return exported(models_dir, "efficientnet_lite0", "imagenet")


@pytest.fixture(scope="session")
def resnet18_random(models_dir):
    """(spec, torch model, ExportedModel) of ResNet-18 with seeded random weights."""
    return exported(models_dir, "resnet18", "random")


@pytest.fixture(scope="session")
def lite0_radiomics(demo_subset, models_dir, lite0, tmp_path_factory):
    """(store, [EfficientNet-Lite0 set, radiomics set], test-rows manifest CSV) of the 120-image subset: real Lite0
    features and pyradiomics ``default`` (2D, whole-image masks), for combined models and ensembles."""
    from featx import api
    from featx.dataset.manifest import Manifest

    tmp = tmp_path_factory.mktemp("lite0_radiomics")
    store = tmp / "f.h5"
    e = api.extract(demo_subset / "subset.csv", "efficientnet_lite0", store, models_dir=models_dir)
    r = api.radiomics(demo_subset / "subset.csv", store, auto_mask="whole", mode="2d", jobs=1)
    test_csv = tmp / "test.csv"
    Manifest([s for s in Manifest.from_csv(demo_subset / "subset.csv") if s.split == "test"]).to_csv(test_csv)
    return store, [e.feature_set, r.feature_set], test_csv


def make_store(
    path,
    name,
    X,
    labels,
    *,
    subjects=None,
    sequences=None,
    splits=None,
    ids=None,
    kind="cnn",
    feature_names=None,
    provenance=None,
    outcomes=None,
):
    """A store holding one feature set ``name`` = ``X`` over samples built from the given columns (``outcomes``:
    outcome column name -> one value per row)."""
    import numpy as np

    from featx.dataset.manifest import Manifest, Sample
    from featx.store.writer import store_writer

    n = len(X)
    ids = ids if ids is not None else [f"s{i:04d}" for i in range(n)]
    col = lambda v, i: None if v is None else (v[i] or None)  # noqa: E731
    man = Manifest(
        [
            Sample(
                sample_id=ids[i],
                path=Path(path).parent / f"{ids[i]}.png",
                label=labels[i],
                subject=col(subjects, i),
                sequence=col(sequences, i),
                split=col(splits, i),
                outcomes=tuple((k, str(v[i])) for k, v in (outcomes or {}).items()),
            )
            for i in range(n)
        ]
    )
    X = np.asarray(X)
    with store_writer(path) as w, w.transaction() as st:
        rows = st.add_samples(man)
        st.create_feature_set(
            name,
            X.shape[1],
            provenance or {"kind": kind},
            "id",
            kind=kind,
            dtype="float64" if feature_names else "float32",
            feature_names=feature_names,
        )
        st.write(name, rows, X)
    return path


@pytest.fixture(scope="session")
def reference(demo_subset, models_dir, lite0, tmp_path_factory):
    """An uninterrupted `featx extract` of the 120-image subset with real EfficientNet-Lite0 weights: (store, X, ids)."""
    from helpers import featx, stored

    store = tmp_path_factory.mktemp("ref") / "ref.h5"
    args = ["-m", demo_subset / "subset.csv", "-b", "efficientnet_lite0", "-s", store, "--models-dir", models_dir]
    proc = featx("extract", *args, "--batch-size", "8")
    assert proc.returncode == 0, proc.stderr
    got = stored(store, "efficientnet_lite0")
    return store, got.X, got.ids.astype(str)


_LONGEST_FIRST = ("test_recipes.py", "test_demo.py", "test_zoo.py", "test_extract_engine.py")


def pytest_collection_modifyitems(items):
    """The longest tests first (the five recipes, the demo, every backbone's export): with work stealing, the
    parallel workers then finish together instead of one waiting on a recipe started last."""
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
