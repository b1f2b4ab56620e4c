"""RadImageNet weights (``resnet50.radimagenet`` etc.): the PyTorch release's files, found where users keep them.

The real files need RadImageNet's request form, so these tests save random weights in the release's
own layout (the torchvision layers as one ``nn.Sequential`` named ``backbone``) and check that featx
computes exactly what that saved network computes.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import torchvision
from helpers import stored

from featx.backbones.resolve import resolve_backbone
from featx.errors import BackboneError, WeightsError


class _Release(torch.nn.Module):
    """How RadImageNet's PyTorch example holds a network: its first ``k`` torchvision children, in sequence."""

    def __init__(self, model, k):
        super().__init__()
        self.backbone = torch.nn.Sequential(*list(model.children())[:k])


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("radimagenet")
    torch.manual_seed(1)
    torch.save(_Release(torchvision.models.resnet50(), 9).state_dict(), d / "ResNet50.pt")  # conv1 .. avgpool
    torch.save(_Release(torchvision.models.densenet121(), 1).state_dict(), d / "DenseNet121.pt")  # features
    inception = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    torch.save({k: v for k, v in inception.state_dict().items() if not k.startswith("fc.")}, d / "InceptionV3.pt")
    return d


def _saved(path):
    return torch.load(path, weights_only=True)


def _images(side, n=2):
    return torch.from_numpy(np.random.default_rng(0).normal(size=(n, 3, side, side)).astype(np.float32))


def test_resnet50_release_layout_computes_the_saved_network(weights_dir, monkeypatch):
    monkeypatch.setenv("FEATX_WEIGHTS_DIR", str(weights_dir))
    r = resolve_backbone("resnet50.radimagenet")
    assert r.spec.name == "resnet50.radimagenet" and r.spec.weights_id == "radimagenet:ResNet50.pt"
    assert r.spec.weights_sha256 and r.spec.feature_dim == 2048
    release = _Release(torchvision.models.resnet50(), 9)
    release.load_state_dict(_saved(weights_dir / "ResNet50.pt"))
    x = _images(224)
    with torch.inference_mode():
        np.testing.assert_allclose(r.model(x), release.eval().backbone(x).flatten(1), rtol=1e-5, atol=1e-5)


def test_densenet121_release_layout(weights_dir, monkeypatch):
    monkeypatch.setenv("FEATX_WEIGHTS_DIR", str(weights_dir))
    r = resolve_backbone("densenet121.radimagenet")
    release = _Release(torchvision.models.densenet121(), 1)
    release.load_state_dict(_saved(weights_dir / "DenseNet121.pt"))
    x = _images(224)
    with torch.inference_mode():
        want = torch.nn.functional.adaptive_avg_pool2d(torch.relu(release.eval().backbone(x)), 1).flatten(1)
        np.testing.assert_allclose(r.model(x), want, rtol=1e-5, atol=1e-5)


def test_inception_v3_plain_layout_without_googles_renormalisation(weights_dir, monkeypatch):
    monkeypatch.setenv("FEATX_WEIGHTS_DIR", str(weights_dir))
    r = resolve_backbone("inception_v3.radimagenet")
    assert r.spec.transform_input is False and r.model.transform_input is False
    ref = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    ref.load_state_dict(_saved(weights_dir / "InceptionV3.pt"), strict=False)
    ref.fc = torch.nn.Identity()
    x = _images(299)
    with torch.inference_mode():
        np.testing.assert_allclose(r.model(x), ref.eval()(x), rtol=1e-4, atol=1e-4)
    # the ImageNet entry keeps Google's re-normalisation
    assert resolve_backbone("inception_v3", "random").spec.transform_input is True


def test_what_is_refused_and_what_to_do(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FEATX_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match=rf"Get ResNet50.pt from .*RadImageNet.*put it at {tmp_path}/ResNet50.pt"):
        resolve_backbone("resnet50.radimagenet")
    with pytest.raises(WeightsError, match="resnet50 --weights random"):
        resolve_backbone("resnet50.radimagenet", "random")
    keras = tmp_path / "RadImageNet-ResNet50_notop.h5"
    with h5py.File(keras, "w") as h5:
        h5["model_weights"] = np.zeros(1)
    with pytest.raises(WeightsError, match=r"a Keras file.*v1 vs v1.5"):
        resolve_backbone("resnet50.radimagenet", str(keras))
    with pytest.raises(BackboneError, match=r"no weights tagged 'radimagenett'; choose resnet50.tv_in1k"):
        resolve_backbone("resnet50.radimagenett")
    # a file named explicitly is used wherever it lies
    r = resolve_backbone("resnet50.radimagenet", str(weights_dir / "ResNet50.pt"))
    assert r.spec.weights_id == "radimagenet:ResNet50.pt"
    # a DenseNet file given to the ResNet name does not fit: said, never half-loaded
    with pytest.raises(WeightsError, match="do not fit resnet50"):
        resolve_backbone("resnet50.radimagenet", str(weights_dir / "DenseNet121.pt"))


@pytest.mark.slow
def test_extract_names_the_feature_set_after_the_weights(weights_dir, demo_subset, models_dir, tmp_path, monkeypatch):
    from helpers import featx

    monkeypatch.setenv("FEATX_WEIGHTS_DIR", str(weights_dir))
    store = tmp_path / "s.h5"
    args = ["-m", demo_subset / "subset.csv", "-b", "resnet50.radimagenet", "-s", store, "--models-dir", models_dir]
    proc = featx("extract", *args)
    assert proc.returncode == 0, proc.stderr
    got = stored(store, "resnet50.radimagenet")
    assert got.names == ["resnet50.radimagenet"] and got.X.shape == (120, 2048)
