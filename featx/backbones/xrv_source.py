"""``xrv:NAME``: TorchXRayVision's chest X-ray classifiers (e.g. ``xrv:densenet121-res224-all``) as feature extractors.

* **Networks**: the DenseNet-121 weight sets (``densenet121-res224-all``, ``-nih``, ``-pc``, ``-chex``,
  ``-rsna``, ``-mimic_nb``, ``-mimic_ch``; the short names ``all``, ``nih``, ... too), 224 px, 1024-d;
  and ``resnet50-res512-all``, 512 px, 2048-d. The features are what TorchXRayVision's ``features2``
  (DenseNet) and ``features`` (ResNet) give: the last feature map after ReLU, globally averaged.
* **Preprocessing** is TorchXRayVision's own: one grey channel (the mean of R, G and B), scaled to
  [-1024, 1024] (``xrv.utils.normalize(img, 255)``), the centre square, resized to the input side.
  featx's images are 3-channel, so the module averages the channels first; the scaling is the
  spec's mean 0.5 and std 0.5/1024.
* **Weights** (``weights``): ``pretrained`` (or ``imagenet``, the default): the file TorchXRayVision
  keeps in ``~/.torchxrayvision/models_data`` under its published name, loaded by TorchXRayVision
  itself (its files are pickled models); ``--weights DIR``: a folder holding that file; ``random``
  (tests only). Missing weights say which URL to fetch and where to put it; never random.

Needs the ``xrv`` extra: ``pip install "featx[xrv]"``.
"""

from __future__ import annotations

from pathlib import Path

from featx.backbones.sources import check_pool, load_user_weights
from featx.backbones.spec import BackboneSpec
from featx.backbones.weights import RANDOM_SEED, seeded_random, sha256_file
from featx.errors import BackboneError, ConfigError, WeightsError, did_you_mean
from featx.images.raster import CHANNEL_POLICY

PREFIX = "xrv:"
#: the scaling of xrv.utils.normalize(img, 255): (2 * img / 255 - 1) * 1024 = (img / 255 - 0.5) / (0.5 / 1024)
XRV_MEAN, XRV_STD = 0.5, 0.5 / 1024
XRV_CHANNELS = CHANNEL_POLICY + "; then grey again: the mean of R, G and B (TorchXRayVision's 1-channel input)"


def is_xrv_ref(name: str) -> bool:
    return name.startswith(PREFIX)


def load_xrv(name: str, weights: str = "imagenet", pool: str | None = None, input_size: int | None = None):
    """(spec, feature module in eval mode) of ``xrv:NAME`` (see the module docstring)."""
    try:
        import torchxrayvision as xrv
    except ImportError:
        raise ConfigError(f"{name} needs TorchXRayVision: pip install 'featx[xrv]'.", "backbone") from None
    if input_size is not None:
        raise ConfigError(f"{name}: TorchXRayVision's networks run at the side they were trained at.", "input_size")
    key = name[len(PREFIX) :]
    known = [k for k in xrv.models.model_urls if k.startswith(("densenet", "resnet"))]
    full = key if key in known else f"densenet121-res224-{key}"
    if full not in known:
        raise BackboneError(
            f"{name}: TorchXRayVision has no such weights.{did_you_mean(key, known)} Choose one of {', '.join(known)}."
        )
    check_pool(name, pool or "avg", False)
    info = xrv.models.model_urls[full]
    resnet = full.startswith("resnet")
    side = int(info.get("input_resolution", 512 if resnet else 224))
    file = Path(info["weights_url"]).name
    folder = Path(xrv.utils.get_cache_dir()) if weights in ("imagenet", "pretrained") else None
    if weights not in ("imagenet", "pretrained", "random"):
        folder = Path(weights).expanduser()
        folder = folder.parent if folder.is_file() and folder.name == file else folder
        if not folder.is_dir():
            raise WeightsError(f"{name}: --weights {weights}: name the folder that holds {file}.")
    if weights == "random":
        build = xrv.models.ResNet if resnet else xrv.models.DenseNet
        net = seeded_random((lambda: _random_resnet()) if resnet else build, name, "chest X-ray")
        sha = None
    else:
        path = folder / file
        if not path.is_file():
            raise WeightsError(
                f"{name}: its weights are not on this machine. Download {info['weights_url']} on a connected "
                f"machine and put it at {path}" + ("" if weights != "imagenet" else " (or pass --weights DIR)") + "."
            )
        net = load_user_weights(lambda: _load(xrv, full, resnet, folder), path, name)
        sha = sha256_file(path)
    features = XrvFeatures(net.model if resnet else net, resnet).eval()
    for p in features.parameters():
        p.requires_grad_(False)
    label = "random" if weights == "random" else "pretrained"
    spec = BackboneSpec(
        name=f"{PREFIX}{full}.{label}",
        arch=f"{PREFIX}{full}",
        weights_id=f"random(seed={RANDOM_SEED})" if weights == "random" else f"xrv:{file}",
        resize_size=side,
        crop_size=side,
        interpolation="bilinear",
        mean=(XRV_MEAN,) * 3,
        std=(XRV_STD,) * 3,
        cut_layer="last feature map, ReLU, global average pool",
        feature_dim=2048 if resnet else 1024,
        channel_policy=XRV_CHANNELS,
        weights_sha256=sha,
        pool="avg",
        source="xrv",
    )
    return spec, features


def _load(xrv, full: str, resnet: bool, folder: Path):
    """TorchXRayVision's own loader from ``folder`` (it never downloads: the file is there)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # its loader prints on failure; featx says it in one line
        if resnet:
            return xrv.models.ResNet(weights=full, cache_dir=str(folder))
        return xrv.models.DenseNet(weights=full, cache_dir=str(folder))


def _random_resnet():
    """TorchXRayVision's ResNet-50 layout (1 input channel, 18 outputs) with no weights file."""
    import torch
    import torchvision

    class _Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = torchvision.models.resnet50(num_classes=18, weights=None)
            self.model.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)

    return _Holder()


def XrvFeatures(net, resnet: bool):
    """Channel mean, then the network's last feature map, ReLU and global average pool (``features2``)."""
    import torch
    import torch.nn as nn

    class _XrvFeatures(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.resnet = net, resnet

        def forward(self, x):
            x = x.mean(dim=1, keepdim=True)
            if self.resnet:
                m = self.net
                x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
                x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
                return torch.flatten(m.avgpool(x), 1)
            return torch.relu(self.net.features(x)).mean(dim=(2, 3))

    return _XrvFeatures()
