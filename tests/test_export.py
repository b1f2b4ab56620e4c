"""ONNX export: checker, parity with torch, dynamic batch, content-addressed cache."""

import json
import os

import numpy as np
import onnx
import pytest
import torch

from featx.backbones.export import PARITY_RTOL, export_onnx, parity
from featx.backbones.weights import sha256_file
from featx.engines.runtime import OrtRuntime
from featx.errors import BackboneError, ConfigError, RuntimeUnavailableError


@pytest.mark.parametrize("which", ["lite0", "resnet18_random"])
def test_export_parity_and_sidecar(which, request):
    spec, model, exported = request.getfixturevalue(which)
    side = json.loads(exported.onnx_path.with_suffix(".json").read_text())
    assert side["onnx_sha256"] == sha256_file(exported.onnx_path)
    assert side["spec"] == spec.to_dict() and side["weights_sha256"] == spec.weights_sha256
    assert side["versions"]["torch"] == torch.__version__ and side["opset"] >= 17
    onnx.checker.check_model(str(exported.onnx_path))
    # independent parity on another batch size: the batch axis is dynamic
    x = np.random.default_rng(7).standard_normal((5, *spec.input_shape)).astype(np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    got = OrtRuntime(exported.onnx_path, provider="cpu").run(x)
    assert got.shape == (5, spec.feature_dim) and got.dtype == np.float32
    assert np.abs(got - ref).max() <= PARITY_RTOL * np.abs(ref).max()


def test_cache_reuses_identical_export(resnet18_random, models_dir):
    spec, model, exported = resnet18_random
    mtime = os.stat(exported.onnx_path).st_mtime_ns
    again = export_onnx(spec, model, models_dir)
    assert again.onnx_path == exported.onnx_path and os.stat(again.onnx_path).st_mtime_ns == mtime


def test_cache_reexports_on_corruption_and_on_changed_inputs(resnet18_random, tmp_path):
    spec, model, _ = resnet18_random
    first = export_onnx(spec, model, tmp_path)
    first.onnx_path.write_bytes(first.onnx_path.read_bytes()[:-10] + b"0123456789")  # corrupt
    second = export_onnx(spec, model, tmp_path)
    assert sha256_file(second.onnx_path) == second.onnx_sha256 == first.onnx_sha256
    third = export_onnx(spec, model, tmp_path, opset=17)  # other opset: other cache key
    assert third.sidecar["opset"] == 17 and third.sidecar["cache_key"] != second.sidecar["cache_key"]


def test_parity_failure_is_an_error(resnet18_random):
    """A graph that no longer matches its torch model is caught."""
    import copy

    spec, model, exported = resnet18_random
    wrong = copy.deepcopy(model)
    with torch.no_grad():
        wrong.layer4[1].bn2.bias.add_(1.0)
    with pytest.raises(BackboneError, match="ONNX output differs from torch"):
        parity(wrong, exported.onnx_path, spec)


def test_cuda_provider_refused_without_gpu(resnet18_random, monkeypatch):
    from featx.engines import runtime

    monkeypatch.setattr(runtime, "gpu_present", lambda: False)  # the same answer on any machine
    with pytest.raises(RuntimeUnavailableError, match="--provider cuda: no NVIDIA GPU found"):
        OrtRuntime(resnet18_random[2].onnx_path, provider="cuda")
    with pytest.raises(ConfigError, match="provider: unknown value 'tpu'. Did you mean 'cpu'?"):
        OrtRuntime(resnet18_random[2].onnx_path, provider="tpu")
    assert OrtRuntime(resnet18_random[2].onnx_path, provider="auto").provider == "CPUExecutionProvider"


def test_cuda_without_cuda_build_says_how_to_install(monkeypatch):
    """On a GPU machine whose ONNX Runtime lacks CUDA (seen on the H100 device), the error names the fix."""
    import onnxruntime

    from featx.engines import runtime

    monkeypatch.setattr(runtime, "gpu_present", lambda: True)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(RuntimeUnavailableError, match="pip install onnxruntime-gpu"):
        runtime.resolve_provider("cuda")
    assert runtime.resolve_provider("auto") == "cpu"
