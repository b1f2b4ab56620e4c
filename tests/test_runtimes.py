"""Runtimes and provider choice, user ONNX models (onnx:PATH), multi-layer features, extract on torch."""

import json
import shutil

import numpy as np
import onnxruntime
import pytest
import torch
from helpers import assert_one_line_error, featx, stored

from featx.backbones.external import load_onnx_backbone
from featx.backbones.weights import load_backbone
from featx.engines import runtime
from featx.engines.runtime import OrtRuntime, TorchRuntime, provider_candidates
from featx.errors import BackboneError, ConfigError, RuntimeUnavailableError


def test_torch_runtime_matches_onnx(resnet18_random):
    spec, model, ex = resnet18_random
    x = np.random.default_rng(3).standard_normal((4, *spec.input_shape)).astype(np.float32)
    a = TorchRuntime(model, "cpu", "fp32", channels_last=True).run(x)
    b = OrtRuntime(ex.onnx_path, provider="cpu").run(x)
    assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()
    with pytest.raises(RuntimeUnavailableError, match="fp16 on CPU"):
        TorchRuntime(model, "cpu", "fp16")


def test_provider_order_and_refusals(monkeypatch):
    monkeypatch.setattr(runtime, "gpu_present", lambda: True)
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert provider_candidates("auto") == ["tensorrt", "cuda", "cpu"]
    assert provider_candidates("auto", "fp16") == ["tensorrt"]
    with pytest.raises(RuntimeUnavailableError, match="fp16 runs on --provider tensorrt"):
        provider_candidates("cuda", "fp16")
    monkeypatch.setattr(runtime, "gpu_present", lambda: False)
    assert provider_candidates("auto") == ["cpu"]
    with pytest.raises(RuntimeUnavailableError, match="--provider tensorrt: no NVIDIA GPU"):
        provider_candidates("tensorrt")
    with pytest.raises(ConfigError, match="precision: unknown value 'int4'. Did you mean 'int8'"):
        provider_candidates("cpu", "int4")
    assert provider_candidates("auto", "int8") == ["cpu"]  # the QDQ model runs on the CPU kernels
    with pytest.raises(RuntimeUnavailableError, match="int8 runs on the CPU"):
        provider_candidates("cuda", "int8")


def test_listed_gpu_provider_that_cannot_start_falls_back(monkeypatch, resnet18_random, caplog):
    """On this CPU machine the GPU build lists CUDA, but a CUDA session cannot start: auto keeps what works."""
    monkeypatch.setattr(runtime, "gpu_present", lambda: True)
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        monkeypatch.setattr(
            onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
        )
    rt = OrtRuntime(resnet18_random[2].onnx_path, provider="auto")
    assert rt.provider == "CPUExecutionProvider"
    assert "could not start here; running on CPUExecutionProvider" in caplog.text


def test_multi_layer_pooled_features():
    spec, model = load_backbone("resnet18", "random", layer="layer2+layer3+layer4")
    assert spec.feature_dim == 128 + 256 + 512 and spec.name == "resnet18.random@layer2+layer3+layer4"
    _, base = load_backbone("resnet18", "random")
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        out = model(x)
        np.testing.assert_allclose(out[:, -512:].numpy(), base(x).numpy(), rtol=1e-5, atol=1e-6)  # layer4 GAP = avgpool
    with pytest.raises(BackboneError, match=r"Unknown stage\(s\) \['layer9'\]; .*layer1, layer2"):
        load_backbone("resnet18", "random", layer="layer3+layer9")


def test_user_onnx_model_with_sidecar(resnet18_random, tmp_path):
    spec, _, ex = resnet18_random
    user = tmp_path / "my_model.onnx"
    shutil.copy(ex.onnx_path, user)
    (tmp_path / "my_model.json").write_text(
        json.dumps(
            {
                "spec": {
                    "resize_size": 256,
                    "crop_size": 224,
                    "interpolation": "bilinear",
                    "mean": [0.485, 0.456, 0.406],
                    "std": [0.229, 0.224, 0.225],
                    "feature_dim": 512,
                }
            }
        )
    )
    m = load_onnx_backbone(f"onnx:{user}")
    assert m.spec.name == "onnx.my_model" and m.spec.feature_dim == 512 and m.spec.weights_sha256 == m.onnx_sha256
    # featx's own exports carry a sidecar: they work as onnx:PATH directly
    assert load_onnx_backbone(f"onnx:{ex.onnx_path}").spec == spec
    side = json.loads((tmp_path / "my_model.json").read_text())
    side["onnx_sha256"] = "0" * 64
    (tmp_path / "my_model.json").write_text(json.dumps(side))
    with pytest.raises(BackboneError, match="my_model.onnx: sha256 .* differs from its sidecar"):
        load_onnx_backbone(f"onnx:{user}")
    side.pop("onnx_sha256")
    side["spec"]["feature_dim"] = 100
    (tmp_path / "my_model.json").write_text(json.dumps(side))
    with pytest.raises(BackboneError, match="output shape \\(1, 512\\), but the sidecar says feature_dim 100"):
        load_onnx_backbone(f"onnx:{user}")
    (tmp_path / "my_model.json").unlink()
    with pytest.raises(BackboneError, match="no sidecar"):
        load_onnx_backbone(f"onnx:{user}")


def test_extract_with_user_onnx_and_with_torch_runtime(resnet18_random, demo_subset, models_dir, tmp_path):
    spec, _, ex = resnet18_random
    csv = demo_subset / "subset.csv"
    onnx_store, torch_store = tmp_path / "o.h5", tmp_path / "t.h5"
    proc = featx("extract", "-m", csv, "-b", f"onnx:{ex.onnx_path}", "-s", onnx_store)
    assert proc.returncode == 0, proc.stderr
    proc = featx("extract", "-m", csv, "-b", "resnet18", "--weights", "random", "-s", torch_store, "--runtime", "torch")
    assert proc.returncode == 0, proc.stderr
    assert "torch-cpu-fp32" in proc.stdout
    a, b = stored(onnx_store, "resnet18.random"), stored(torch_store, "resnet18.random")
    xa, xb = a.X, b.X
    assert b.provenance["runtime"].startswith("torch")
    assert np.abs(xa - xb).max() <= 1e-4 * np.abs(xb).max()  # same features whichever runtime
    assert_one_line_error(
        featx("extract", "-m", csv, "-b", "resnet18", "-s", tmp_path / "x.h5", "--precision", "fp16"), "fp16"
    )
