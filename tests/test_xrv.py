"""``xrv:``: TorchXRayVision's chest X-ray networks, with their own 1-channel [-1024, 1024] preprocessing.

Their weights cannot be downloaded here, so the tests save random weights the way TorchXRayVision
publishes them (a pickled model under the release's file name in ``~/.torchxrayvision/models_data``)
and load them through TorchXRayVision's own loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchxrayvision as xrv
from helpers import stored
from PIL import Image

from featx.backbones.resolve import resolve_backbone
from featx.dataset.manifest import Manifest
from featx.errors import BackboneError, WeightsError
from featx.extract.config import ExtractConfig
from featx.extract.run import run_extract

ALL = "densenet121-res224-all"


@pytest.fixture(scope="module")
def xrv_home(tmp_path_factory):
    """A home folder whose ~/.torchxrayvision holds random DenseNet 'all' weights in the release's form."""
    home = tmp_path_factory.mktemp("home")
    cache = home / ".torchxrayvision" / "models_data"
    cache.mkdir(parents=True)
    torch.manual_seed(3)
    net = xrv.models.DenseNet()
    with torch.no_grad():  # non-trivial batch-norm statistics, as trained weights have
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
    torch.save(net, cache / Path(xrv.models.model_urls[ALL]["weights_url"]).name)
    return home


def _xrv_own_features(net, path: Path) -> np.ndarray:
    """TorchXRayVision's README pipeline: normalize to [-1024, 1024], grey, centre crop, resize 224, features2."""
    import torchvision

    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    img = xrv.datasets.normalize(img, 255).mean(2)[None, ...]
    img = torchvision.transforms.Compose([xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(224)])(img)
    with torch.inference_mode():
        return net.features2(torch.from_numpy(img)[None]).numpy()[0]


def test_features_equal_torchxrayvisions_own_pipeline(xrv_home, demo_subset, models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(xrv_home))
    manifest = Manifest(Manifest.load(demo_subset / "subset.csv").samples[:12])
    store = tmp_path / "s.h5"
    cfg = ExtractConfig(backbone=f"xrv:{ALL}", store=store, models_dir=models_dir)
    s = run_extract(cfg, manifest, progress=False)  # ONNX Runtime on the export: parity checked there
    assert s.n_extracted == 12 and s.feature_set == f"xrv:{ALL}.pretrained"
    X = stored(store, f"xrv:{ALL}.pretrained").X
    net = xrv.models.DenseNet(weights=ALL, cache_dir=str(xrv_home / ".torchxrayvision" / "models_data"))
    want = np.stack([_xrv_own_features(net, s_.path) for s_ in manifest])
    cos = (X * want).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(want, axis=1)
    # featx resizes with Pillow, TorchXRayVision with scikit-image: the same geometry and scaling
    assert cos.min() >= 0.999, cos.min()


def test_names_weights_and_messages(xrv_home, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(xrv_home))
    r = resolve_backbone("xrv:all")  # the short name of the same weights
    assert r.spec.arch == f"xrv:{ALL}" and r.spec.feature_dim == 1024 and r.spec.crop_size == 224
    assert r.spec.std[0] == pytest.approx(0.5 / 1024) and r.spec.weights_sha256
    grey = torch.full((1, 3, 224, 224), 0.3)
    one = torch.full((1, 1, 224, 224), 0.3)
    with torch.inference_mode():  # the three channels become TorchXRayVision's one
        np.testing.assert_allclose(r.model(grey), r.model.net.features2(one), rtol=1e-5, atol=1e-6)
    folder = xrv_home / ".torchxrayvision" / "models_data"
    assert resolve_backbone("xrv:all", str(folder)).spec.weights_sha256 == r.spec.weights_sha256
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(WeightsError, match=r"Download https://github.com/mlmed/torchxrayvision/.*\.pt on a connected"):
        resolve_backbone("xrv:nih")
    with pytest.raises(BackboneError, match=r"no such weights.*Did you mean.*densenet121-res224-chex"):
        resolve_backbone("xrv:densenet121-res224-chexx")
    with pytest.raises(WeightsError, match="name the folder that holds"):
        resolve_backbone("xrv:all", str(tmp_path / "nowhere"))


def test_resnet50_res512_random_shape():
    r = resolve_backbone("xrv:resnet50-res512-all", "random")
    assert r.spec.crop_size == 512 and r.spec.feature_dim == 2048
    with torch.inference_mode():
        assert r.model(torch.zeros(1, 3, 512, 512)).shape == (1, 2048)
