"""Every registered backbone: preprocessing from torchvision, parity of its ONNX export, its layers."""

import numpy as np
import pytest
import skimage.data
import torch
from helpers import featx
from PIL import Image
from torchvision.models import get_weight

from featx.backbones import get_entry, list_entries
from featx.backbones.export import export_onnx
from featx.backbones.weights import load_backbone, sha256_file
from featx.engines.runtime import OrtRuntime
from featx.errors import BackboneError
from featx.images.preprocess import Preprocessor

TORCHVISION = [e.arch for e in list_entries() if e.spec().weights_id.startswith("torchvision:")]
ALL_LAYERS = [(e.arch, layer) for e in list_entries() for layer in e.layers]


def test_zoo_has_the_required_backbones():
    required = {
        "resnet18",
        "resnet50",
        "vgg11_bn",
        "vgg16",
        "googlenet",
        "inception_v3",
        "densenet121",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    }
    assert required <= {e.arch for e in list_entries()}


@pytest.mark.parametrize("arch", TORCHVISION)
def test_preprocessing_equals_weights_transforms(arch):
    spec = get_entry(arch).spec()
    tv = get_weight(spec.weights_id.removeprefix("torchvision:")).transforms()
    pre = Preprocessor.from_spec(spec)
    for img in (skimage.data.chelsea(), skimage.data.camera()):
        im = Image.fromarray(img).convert("RGB")
        np.testing.assert_array_equal(pre(im), tv(im).numpy(), err_msg=arch)


@pytest.mark.slow
@pytest.mark.parametrize("arch,layer", ALL_LAYERS)
def test_export_parity_every_backbone(arch, layer, models_dir):
    spec, model = load_backbone(arch, "random", layer=layer)
    ex = export_onnx(spec, model, models_dir)
    x = np.random.default_rng(1).standard_normal((2, *spec.input_shape)).astype(np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    got = OrtRuntime(ex.onnx_path, provider="cpu").run(x)
    assert got.shape == (2, spec.feature_dim)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_googlenet_and_inception_normalise_inside_the_network():
    for arch in ("googlenet", "inception_v3"):
        spec, model = load_backbone(arch, "random")
        assert spec.transform_input and model.transform_input and model.aux_logits is False
        assert spec.mean == (0.485, 0.456, 0.406)  # torchvision's transforms; the net converts internally
    assert get_entry("inception_v3").spec().crop_size == 299 and not get_entry("resnet50").spec().transform_input


def test_vgg_layers_and_unknown_layer():
    fc7, _ = load_backbone("vgg11_bn", "random")
    pool5, _ = load_backbone("vgg11_bn", "random", layer="pool5")
    assert (fc7.feature_dim, fc7.cut_layer, fc7.name) == (4096, "fc7", "vgg11_bn.random")
    assert (pool5.feature_dim, pool5.name) == (512, "vgg11_bn.random@pool5")
    with pytest.raises(BackboneError, match="vgg11_bn has no layer 'fc6'; choose one of fc7, pool5"):
        load_backbone("vgg11_bn", "random", layer="fc6")


def test_densenet_published_key_names_load(tmp_path):
    """torchvision's DenseNet checkpoints use 'norm.1'-style keys; they must load like torchvision loads them."""
    import re

    full = get_entry("densenet121").build()
    old_style = {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v for k, v in full.state_dict().items()
    }
    assert any(".norm.1." in k for k in old_style)
    torch.save(old_style, tmp_path / "densenet121-old.pth")
    spec, model = load_backbone("densenet121", str(tmp_path / "densenet121-old.pth"))
    full.classifier = torch.nn.Identity()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(model(x), full.eval()(x))


def test_cli_export_reuses_cache(tmp_path):
    args = ("export", "--backbone", "resnet18", "--weights", "random", "--models-dir", tmp_path)
    first = featx(*args)
    assert first.returncode == 0, first.stderr
    onnx = tmp_path / "resnet18.random.onnx"
    assert str(onnx) in first.stdout and sha256_file(onnx) in first.stdout and "parity" in first.stdout
    mtime = onnx.stat().st_mtime_ns
    assert featx(*args).returncode == 0 and onnx.stat().st_mtime_ns == mtime
