"""Other weights for a registered architecture, named ``arch.tag``: RadImageNet's medical-pretrained CNNs.

RadImageNet (Mei et al. 2022, 1.35 M CT, MRI and ultrasound images) publishes ResNet-50,
DenseNet-121 and Inception-v3 weights after a request form, so featx cannot fetch them: the user
puts the downloaded file in torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``, or
``$FEATX_WEIGHTS_DIR``) under its published name, or names it with ``--weights FILE``.

Their PyTorch release saves the torchvision model's layers as one ``nn.Sequential`` called
``backbone`` (keys ``backbone.0.weight``, ``backbone.4.0.conv1.weight``, ...). featx maps each index
back to the torchvision child it came from, so the same file also loads when it holds plain
torchvision keys. Keras ``.h5`` files are refused: Keras' ResNet-50 is the v1 network (stride in
the first 1x1 convolution), which torchvision's v1.5 layout would silently change.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from featx.backbones.status import torch_hub_dir
from featx.errors import BackboneError, WeightsError


@dataclass(frozen=True)
class WeightsVariant:
    """Weights other than the architecture's own default, selected by the name's tag.

    Attributes
    ----------
    arch, tag : str
        The registered architecture and the tag: ``resnet50.radimagenet``.
    files : tuple of str
        The names the published files have (looked up in :func:`weights_dir`).
    origin : str
        Where a user gets them (said when they are missing).
    transform_input : bool or None
        Override of the torchvision builder's ``transform_input`` (Inception: the RadImageNet
        weights were trained without Google's [-1, 1] re-normalisation).
    """

    arch: str
    tag: str
    files: tuple[str, ...]
    origin: str
    transform_input: bool | None = None

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.tag}"


_RADIMAGENET = "https://github.com/BMEII-AI/RadImageNet (weights after their request form; the PyTorch release)"
_VARIANTS = {
    v.name: v
    for v in (
        WeightsVariant("resnet50", "radimagenet", ("ResNet50.pt", "RadImageNet-ResNet50_notop.pth"), _RADIMAGENET),
        WeightsVariant(
            "densenet121", "radimagenet", ("DenseNet121.pt", "RadImageNet-DenseNet121_notop.pth"), _RADIMAGENET
        ),
        WeightsVariant(
            "inception_v3",
            "radimagenet",
            ("InceptionV3.pt", "RadImageNet-InceptionV3_notop.pth"),
            _RADIMAGENET,
            transform_input=False,
        ),
    )
}


def variants_of(arch: str) -> list[WeightsVariant]:
    """The variants registered for ``arch``."""
    return [v for v in _VARIANTS.values() if v.arch == arch]


def is_variant(name: str) -> bool:
    """Whether ``name`` is a registered ``arch.tag`` of other weights."""
    return name in _VARIANTS


def get_variant(name: str, own_tag: str) -> WeightsVariant | None:
    """The variant ``name`` (``arch.tag``) names; None for the architecture's own tag or none.

    Raises
    ------
    BackboneError
        An unknown tag: never silently the default weights under another name.
    """
    arch, _, tag = name.partition(".")
    if not tag or tag == own_tag:
        return None
    if name in _VARIANTS:
        return _VARIANTS[name]
    known = [f"{arch}.{own_tag}"] + [v.name for v in variants_of(arch)]
    raise BackboneError(
        f"{name}: {arch} has no weights tagged {tag!r}; choose {', '.join(known)}, or {arch} with --weights FILE."
    )


def weights_dir() -> Path:
    """Where user-downloaded weights are looked up: ``$FEATX_WEIGHTS_DIR``, else torch hub's checkpoint folder."""
    if os.environ.get("FEATX_WEIGHTS_DIR"):
        return Path(os.environ["FEATX_WEIGHTS_DIR"]).expanduser()
    return torch_hub_dir() / "checkpoints"


def present(variant: WeightsVariant) -> Path | None:
    """The variant's file in :func:`weights_dir`, when it is there."""
    return next((weights_dir() / f for f in variant.files if (weights_dir() / f).is_file()), None)


def variant_file(variant: WeightsVariant, weights: str) -> Path:
    """The file to load: ``--weights FILE``, or the published file in :func:`weights_dir`."""
    if weights == "random":
        raise WeightsError(
            f"{variant.name} means {variant.tag} weights; for random weights use {variant.arch} --weights random."
        )
    if weights not in ("imagenet", "pretrained"):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"{variant.name}: weights file not found: {path}.")
    else:
        path = present(variant) or weights_dir() / variant.files[0]
        if not path.is_file():
            raise WeightsError(
                f"{variant.name}: its weights are not on this machine. Get {variant.files[0]} from {variant.origin}, "
                f"put it at {path} (or set FEATX_WEIGHTS_DIR to its folder), or pass --weights /path/to/the/file."
            )
    if path.suffix.lower() in (".h5", ".hdf5", ".keras"):
        raise WeightsError(
            f"{path}: a Keras file. featx loads the PyTorch release of {variant.name} ({', '.join(variant.files)}); "
            "Keras' networks differ from torchvision's in layout (ResNet-50 v1 vs v1.5), so a converted file "
            "would silently change the network."
        )
    return path


_SEQUENTIAL = re.compile(r"^backbone\.(\d+)\.(.+)$")


def sequential_keys(state: dict, model) -> dict:
    """Keys of a ``backbone = nn.Sequential(*model.children()[:k])`` save mapped back to ``model``'s children.

    Keys not under ``backbone.`` (a classifier saved beside it) are dropped when the save has a
    backbone; a plain torchvision state dict passes unchanged.
    """
    if not any(k.startswith("backbone.") for k in state):
        return state
    children = [name for name, _ in model.named_children()]
    out = {}
    for k, v in state.items():
        if not k.startswith("backbone."):
            continue
        m = _SEQUENTIAL.match(k)
        if m and int(m.group(1)) < len(children):
            out[f"{children[int(m.group(1))]}.{m.group(2)}"] = v
        else:
            out[k.removeprefix("backbone.")] = v
    return out
