"""Lesion rows: `manifest build --unit lesion` (mask values, connected components, a minimum size), the same rows
for 3D radiomics (each row its own lesion) and a 3D backbone, and rows a 3D backbone cannot take refused before any
model work."""

from __future__ import annotations

import numpy as np
import pytest

from featx.dataset.ingest import build_from_volumes
from featx.dataset.manifest import Manifest
from featx.errors import ConfigError
from featx.store.open import open_store

A, B, C = (10, 20, 20), (10, 20, 34), (4, 8, 8)  # (z, y, x) voxel centres: a big and a tiny label-1 lesion, label 2


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    """One CT-like NIfTI volume (1 x 1 x 2 mm) with a mask: label 1 = a ball at A and a 2-voxel speck at B, label 2 =
    a ball at C; and its volume-level CSV."""
    import SimpleITK as sitk

    d = tmp_path_factory.mktemp("lesions")
    z, y, x = np.mgrid[:20, :40, :40]
    rng = np.random.default_rng(0)
    img = rng.normal(40, 10, (20, 40, 40)).astype(np.int16)
    mask = np.zeros((20, 40, 40), np.uint8)
    ball = lambda c, r: (z - c[0]) ** 2 * 4 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r**2  # noqa: E731 (2 mm slices)
    mask[ball(A, 5)] = 1
    img[ball(A, 5)] += 200
    mask[B[0], B[1], B[2] : B[2] + 2] = 1
    mask[ball(C, 3)] = 2
    for arr, name in ((img, "ct.nii.gz"), (mask, "ct_seg.nii.gz")):
        im = sitk.GetImageFromArray(arr)
        im.SetSpacing((1.0, 1.0, 2.0))
        sitk.WriteImage(im, str(d / name))
    (d / "volumes.csv").write_text("path,mask,label,subject\nct.nii.gz,ct_seg.nii.gz,high,p1\n")
    return d, int(ball(A, 5).sum()), int(ball(C, 3).sum())


def test_one_row_per_mask_value_or_per_connected_component(volumes, tmp_path):
    d, *_ = volumes
    by_value = build_from_volumes(d / "volumes.csv", "mask", tmp_path / "a.csv", unit="lesion", progress=False)
    assert [(s.sample_id, s.mask_label, s.slice) for s in by_value] == [
        ("p1/ct.nii.gz@label1", 1, None),
        ("p1/ct.nii.gz@label2", 2, None),
    ]
    parts = build_from_volumes(
        d / "volumes.csv",
        "mask",
        tmp_path / "b.csv",
        unit="lesion",
        lesions={"components": True, "min_voxels": 5},
        progress=False,
    )
    assert [s.sample_id for s in parts] == ["p1/ct.nii.gz@lesion1", "p1/ct.nii.gz@lesion2"]  # the speck is left out
    assert all(s.mask.parent.name == "lesion_masks" and s.mask.is_file() for s in parts)
    assert list(Manifest.load(tmp_path / "b.csv")) == list(parts)  # the CSV reads back to the same rows


def test_radiomics_and_a_3d_backbone_share_the_lesion_rows(volumes, tmp_path, models_dir):
    from featx.extract.config import ExtractConfig
    from featx.extract.run import run_extract
    from featx.radiomics.config import RadiomicsConfig
    from featx.radiomics.run import run_radiomics

    pytest.importorskip("monai")
    d, big, small = volumes
    rows = build_from_volumes(d / "volumes.csv", "mask", tmp_path / "l.csv", unit="lesion", progress=False)
    store = tmp_path / "f.h5"
    (tmp_path / "shape.yaml").write_text("featureClass:\n  shape:\nsetting:\n  label: 1\n")
    run_radiomics(RadiomicsConfig(store=store, mode="3d", params=str(tmp_path / "shape.yaml")), rows, progress=False)
    run_extract(
        ExtractConfig(backbone="medicalnet:resnet10", weights="random", store=store, models_dir=models_dir),
        rows,
        progress=False,
    )
    with open_store(store) as st:
        names = st.feature_names()
        rad = st.load(next(n for n in names if n.startswith("radiomics")))
        deep = st.load("medicalnet:resnet10.random")
    assert list(rad.ids) == list(deep.ids) == [s.sample_id for s in rows]
    voxels = rad.X[:, list(rad.feature_names).index("original_shape_VoxelVolume")]
    np.testing.assert_allclose(voxels, [(big + 2) * 2.0, small * 2.0])  # each row measures its own lesion (mm^3)
    assert deep.X.shape == (2, 512) and not np.allclose(deep.X[0], deep.X[1])


def test_a_3d_backbone_refuses_slice_rows_before_any_model_work(volumes, tmp_path, models_dir):
    from featx.extract.config import ExtractConfig
    from featx.extract.run import run_extract

    d, *_ = volumes
    slices = build_from_volumes(d / "volumes.csv", "mask", tmp_path / "s.csv", progress=False)
    with pytest.raises(
        ConfigError,
        match=r"a 3D backbone, needs a lesion in every row, and \d+ row\(s\) are none: row .* names slice .*--unit lesion",
    ):
        run_extract(
            ExtractConfig(
                backbone="medicalnet:resnet10", weights="random", store=tmp_path / "f.h5", models_dir=models_dir
            ),
            slices,
            progress=False,
        )
    assert not (tmp_path / "f.h5").exists()


def test_3d_engines_run_behind_the_fidelity_gate(volumes, tmp_path, models_dir):
    """OpenVINO int8 (calibrated on the manifest's own lesions) and torch run a 3D network; the reduced precision is
    checked against fp32 before any row, and recorded."""
    from featx.extract.config import ExtractConfig
    from featx.extract.run import run_extract

    pytest.importorskip("monai")
    d, *_ = volumes
    rows = build_from_volumes(d / "volumes.csv", "mask", tmp_path / "l.csv", unit="lesion", progress=False)
    common = dict(backbone="medicalnet:resnet10", weights="random", store=tmp_path / "f.h5", models_dir=models_dir)
    sets = {}
    for name, kw in {
        "ort": {},
        "ov8": {"runtime": "openvino", "precision": "int8"},
        "torch": {"runtime": "torch"},
    }.items():
        s = run_extract(ExtractConfig(name=name, **common, **kw), rows, progress=False)
        assert s.n_extracted == 2 and not s.failures
        sets[name] = s
    assert sets["ov8"].fidelity["engine"] == "openvino-cpu-int8" and sets["ov8"].fidelity["mean_cosine"] >= 0.99
    with open_store(tmp_path / "f.h5") as st:
        x = {n: st.load(n).X for n in sets}
        assert st.provenance("ov8")["fidelity"]["n"] == 2
    cos = lambda a, b: np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)  # noqa: E731
    assert cos(x["torch"], x["ort"]).min() > 0.9999 and cos(x["ov8"], x["ort"]).min() > 0.99


def test_2d_backbones_on_lesions_in_2_5d(volumes, tmp_path, models_dir, lite0):
    """--planes makes its own feature set (name, identity, provenance) on the same lesion rows; orthogonal planes
    refuse slice rows before any model work."""
    from featx.extract.config import ExtractConfig
    from featx.extract.run import run_extract

    d, *_ = volumes
    rows = build_from_volumes(d / "volumes.csv", "mask", tmp_path / "l.csv", unit="lesion", progress=False)
    store = tmp_path / "f.h5"
    cfg = dict(backbone="efficientnet_lite0", store=store, models_dir=models_dir, window="minmax")
    names = [
        run_extract(ExtractConfig(planes=p, **cfg), rows, progress=False).feature_set
        for p in ("orthogonal", "adjacent")
    ]
    assert names == ["efficientnet_lite0~orthogonal", "efficientnet_lite0~adjacent"]
    with open_store(store) as st:
        a, b = (st.load(n).X for n in names)
        assert "axial, coronal and sagittal planes" in st.provenance(names[0])["planes"]
        assert st.identity(names[0]) != st.identity(names[1])
    assert a.shape == b.shape == (2, 1280) and not np.allclose(a, b)
    slices = build_from_volumes(d / "volumes.csv", "mask", tmp_path / "s.csv", progress=False)
    with pytest.raises(ConfigError, match="--planes orthogonal needs a lesion in every row"):
        run_extract(ExtractConfig(planes="orthogonal", **cfg), slices, progress=False)
