"""Engines on the CPU: OpenVINO (f32, bf16), int8 calibrated on the manifest, and ``--precision auto``.

EfficientNet-Lite0 with its real ImageNet weights on real BreastMNIST images. The fidelity gate is
set where each test needs it; its default is measured in benchmarks/fidelity.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import stored

from featx.dataset.manifest import Manifest
from featx.engines.fidelity import FidelityError
from featx.engines.openvino_runtime import cpu_capabilities
from featx.engines.runtime import choose_runtime
from featx.errors import ConfigError, FeatxError
from featx.extract.config import ExtractConfig
from featx.extract.run import run_extract

LITE = "efficientnet_lite0"


@pytest.fixture(autouse=True)
def _time_every_candidate(monkeypatch):
    """These tests measure --precision auto itself on a 120-image subset: no job-size budget (tested in
    test_new_user.py)."""
    from featx.engines import choose as engines

    monkeypatch.setattr(engines, "AUTO_COST_IMAGES", 0)
    monkeypatch.setattr(engines, "AUTO_INT8_MIN_ROWS", 0)


def _extract(manifest, store, models_dir, **settings):
    cfg = ExtractConfig(manifest=manifest, backbone=LITE, store=store, models_dir=models_dir, **settings)
    return run_extract(cfg, progress=False)


def _prov(store, name=LITE):
    got = stored(store, name)
    return got.provenance, got.X


def test_openvino_fp32_is_onnx_runtimes_feature_set(demo_subset, models_dir, lite0, reference, tmp_path):
    store = tmp_path / "s.h5"
    s = _extract(demo_subset / "subset.csv", store, models_dir, runtime="openvino")
    assert s.provider == "openvino-cpu-fp32" and s.n_extracted == 120
    prov, X = _prov(store)
    assert prov["engine"] == {"runtime": "openvino", "precision": "fp32"}
    _, ref, _ = reference
    cos = (X * ref).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.99999 and np.abs(X - ref).max() < 1e-3 * np.abs(ref).max()
    # the same numbers: ONNX Runtime continues the same feature set (nothing to redo, nothing refused)
    assert _extract(demo_subset / "subset.csv", store, models_dir, runtime="onnx").n_already == 120


def test_openvino_bf16_where_the_cpu_has_it_and_refused_where_not(demo_subset, models_dir, lite0, tmp_path):
    store = tmp_path / "s.h5"
    if "BF16" not in cpu_capabilities():
        with pytest.raises(FeatxError, match="this CPU has no native bf16"):
            _extract(demo_subset / "subset.csv", store, models_dir, runtime="openvino", precision="bf16")
        return
    s = _extract(demo_subset / "subset.csv", store, models_dir, precision="bf16")  # auto: OpenVINO on a CPU
    assert s.provider == "openvino-cpu-bf16" and s.fidelity["passed"] and s.fidelity["mean_cosine"] >= 0.99
    prov, _ = _prov(store)
    assert prov["precision"] == "bf16" and prov["fidelity"]["n"] == 32


@pytest.fixture(scope="module")
def int8_store(demo_subset, models_dir, lite0, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("int8")
    rows = list(Manifest.load(demo_subset / "subset.csv"))
    Manifest(rows[:100]).to_csv(tmp / "first.csv")
    store = tmp / "s.h5"
    s = _extract(tmp / "first.csv", store, models_dir, precision="int8", calibration=24, min_fidelity=0.9)
    return tmp, store, s


def test_int8_is_calibrated_on_the_manifest_and_recorded(int8_store, models_dir, reference):
    tmp, store, s = int8_store
    assert s.n_extracted == 100 and s.fidelity["passed"]
    prov, X = _prov(store)
    q = prov["int8"]
    assert q["calibration_images"] == 24 and len(q["calibration_ids"]) == 24
    assert (models_dir / "int8" / q["model"]).is_file() and prov["engine"]["precision"] == "int8"
    _, ref, _ = reference
    cos = (X * ref[:100]).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(ref[:100], axis=1)
    assert 0.9 < cos.mean() < 0.9999  # int8: close to fp32, and not fp32


def test_int8_rerun_on_a_grown_manifest_keeps_its_model(int8_store, demo_subset, models_dir, monkeypatch):
    tmp, store, _ = int8_store
    import featx.engines.choose as engines

    monkeypatch.setattr(engines, "quantize_int8", lambda *a, **k: pytest.fail("quantized again"))
    s = _extract(demo_subset / "subset.csv", store, models_dir, precision="int8", calibration=24, min_fidelity=0.9)
    assert s.n_already == 100 and s.n_extracted == 20  # same identity: the feature set grows


def test_int8_model_missing_elsewhere_is_named(int8_store, models_dir, tmp_path):
    from featx.engines.choose import build_engine  # noqa: F401 - the path predict takes

    tmp, store, _ = int8_store
    prov, _ = _prov(store)
    other = tmp_path / "models"
    other.mkdir()
    import shutil

    shutil.copytree(models_dir, other, dirs_exist_ok=True, ignore=shutil.ignore_patterns("int8", "*.lock"))
    foreign = Manifest(list(Manifest.load(tmp / "first.csv"))[:5])
    cfg = ExtractConfig(backbone=LITE, store=tmp_path / "p.h5", models_dir=other, precision="int8", min_fidelity=0.9)
    with pytest.raises(FeatxError, match=r"int8 model .* is not in .*copy that file"):
        run_extract(cfg, foreign, progress=False, made_like=prov)


def test_auto_measures_gates_chooses_and_remembers(demo_subset, models_dir, lite0, tmp_path):
    models = tmp_path / "models"
    import shutil

    shutil.copytree(models_dir, models, ignore=shutil.ignore_patterns("*.lock", "auto"))
    s = _extract(demo_subset / "subset.csv", tmp_path / "a.h5", models, precision="auto", calibration=24)
    prov, _ = _prov(tmp_path / "a.h5")
    auto = prov["auto"]
    assert auto["source"] == "measured now" and prov["precision_requested"] == "auto"
    tried = {(c["runtime"], c["precision"]) for c in auto["candidates"]}
    assert {("onnx", "fp32"), ("onnx", "int8")} <= tried
    fastest_passing = max(
        (c for c in auto["candidates"] if "img_per_s" in c and (c["precision"] == "fp32" or c["fidelity"]["passed"])),
        key=lambda c: c["img_per_s"],
    )
    assert auto["chosen"] == [fastest_passing["runtime"], fastest_passing["precision"]]
    assert prov["precision"] == auto["chosen"][1] and s.n_extracted == 120
    # another store on this machine: the remembered choice, gated again on these images
    _extract(demo_subset / "subset.csv", tmp_path / "b.h5", models, precision="auto", calibration=24)
    assert _prov(tmp_path / "b.h5")[0]["auto"]["source"].startswith("measured before")
    # the same feature set again: the engine it was made with
    again = _extract(demo_subset / "subset.csv", tmp_path / "a.h5", models, precision="auto", calibration=24)
    assert again.n_already == 120


def test_a_gate_that_int8_cannot_pass_is_refused_and_auto_falls_back(demo_subset, models_dir, lite0, tmp_path):
    with pytest.raises(FidelityError, match=r"int8 engine fails the fidelity gate"):
        _extract(demo_subset / "subset.csv", tmp_path / "s.h5", models_dir, precision="int8", min_fidelity=0.9999)
    assert not (tmp_path / "s.h5").exists()
    s = _extract(demo_subset / "subset.csv", tmp_path / "t.h5", models_dir, precision="auto", min_fidelity=1.0)
    prov, _ = _prov(tmp_path / "t.h5")
    assert prov["precision"] == "fp32" and s.n_extracted == 120  # nothing faster passes a perfect gate


@pytest.mark.parametrize(
    "runtime, precision, match",
    [
        ("torch", "int8", "int8 runs on ONNX Runtime or OpenVINO"),
        ("onnx", "bf16", "bf16 runs on OpenVINO"),
        ("torch", "auto", "--precision auto chooses"),
        ("openvino", "fp16", "OpenVINO runs fp32, bf16, int8"),
    ],
)
def test_impossible_combinations_are_refused(runtime, precision, match):
    with pytest.raises((ConfigError, FeatxError), match=match):
        ExtractConfig(backbone=LITE, store="s.h5", runtime=runtime, precision=precision)
        choose_runtime(runtime, "auto", precision)


def test_openvino_takes_8bit_pixels_normalised_in_its_graph(demo_subset, models_dir, lite0):
    """The compiled graph scales and normalises uint8 NHWC pixels: the float path's numbers, a quarter of the bytes."""
    from featx.engines.openvino_runtime import OpenVinoRuntime
    from featx.images.loader import SampleReader
    from featx.images.preprocess import Preprocessor

    spec, _, exported = lite0
    pre, reader = Preprocessor.from_spec(spec), SampleReader(keep_grey=True)
    ims = [reader(s) for s in list(Manifest.load(demo_subset / "subset.csv"))[:6]]
    floats, pixels = np.stack([pre(im) for im in ims]), np.stack([pre.pixels(im) for im in ims])
    assert pixels.dtype == np.uint8 and pixels.shape == (6, 224, 224, 3)
    plain = OpenVinoRuntime(exported.onnx_path, threads=1).run(floats)
    rt = OpenVinoRuntime(exported.onnx_path, threads=1, pixels=(spec.mean, spec.std))
    via_pixels = rt.run_pixels(pixels)
    np.testing.assert_allclose(via_pixels, plain, rtol=1e-4, atol=1e-4 * np.abs(plain).max())
    np.testing.assert_array_equal(rt.run(floats), via_pixels)  # the gate's float batch: back to the same pixels
    with pytest.raises(ValueError, match="not normalised 8-bit pixels"):
        rt.run(floats + 0.003)


def test_pixel_engines_mirror_the_width_axis_for_tta(demo_subset, models_dir, lite0, tmp_path):
    """OpenVINO's batches are NHWC: hflip TTA must mirror their width (axis 2), as ONNX Runtime's NCHW axis 3."""
    ov = _extract(demo_subset / "subset.csv", tmp_path / "ov.h5", models_dir, runtime="openvino", tta="hflip")
    ort = _extract(demo_subset / "subset.csv", tmp_path / "ort.h5", models_dir, runtime="onnx", tta="hflip")
    assert ov.n_extracted == ort.n_extracted == 120
    (_, X_ov), (_, X_ort) = _prov(tmp_path / "ov.h5", ov.feature_set), _prov(tmp_path / "ort.h5", ort.feature_set)
    cos = (X_ov * X_ort).sum(1) / np.linalg.norm(X_ov, axis=1) / np.linalg.norm(X_ort, axis=1)
    assert cos.min() > 0.99999
