"""Logical blocks per backbone, lowest first, for ``--freeze N``; and each backbone's Grad-CAM layer.

Names are module paths inside the *feature module* that :func:`featx.backbones.weights.load_backbone`
returns (the network cut at its default layer). A block is a list of path prefixes.
The blocks follow the network's resolution stages, as the fine-tuning studies count
them ("lock0" .. "lock5" on ResNet-18: stem + layer1..layer4; VGG: its conv stages):

============================  ==================================================================
backbone                      blocks (lowest first)
============================  ==================================================================
resnet18, resnet50            stem (conv1, bn1), layer1, layer2, layer3, layer4
vgg11_bn, vgg16               conv stages 1-5 (each ending in its max-pool), fc6-fc7
googlenet                     stem (conv1-conv3), inception3, inception4, inception5
inception_v3                  stem (Conv2d_1a..Conv2d_4a), Mixed_5, Mixed_6, Mixed_7
densenet121                   stem (conv0), denseblock1+transition1 .. denseblock3+transition3, denseblock4+norm5
efficientnet_lite0/1/2        stem + stage 1 (112 px), stage 2 (56), stage 3 (28), stages 4-5 (14), stages 6-7 + head conv (7)
efficientnet_b0               same stages as Lite0 (torchvision ``features`` 0-1, 2, 3, 4-5, 6-8)
mobilenet_v3_large            ``features`` 0-1 (112 px), 2-3 (56), 4-6 (28), 7-12 (14), 13-16 + pre-logits (7)
timm:NAME                     timm's own coarse parameter groups (``group_matcher``): the stem, each stage
                              (CNNs) or transformer block (ViTs; the last with the final norm)
============================  ==================================================================

``--freeze all`` freezes every block: only the new head trains (the linear probe).
"""

from __future__ import annotations

from dataclasses import dataclass

from featx.backbones.timm_source import timm_blocks
from featx.backbones.weights import load_backbone
from featx.errors import FeatxError


@dataclass(frozen=True)
class BlockMap:
    """Blocks (name, module-path prefixes) lowest first, the Grad-CAM layer and the export key prefix."""

    blocks: tuple
    gradcam_layer: str
    state_prefix: str = ""  # prefix the feature module adds to the architecture's own state-dict keys

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.blocks]


def _seq(prefix: str, groups) -> tuple:
    return tuple((name, tuple(f"{prefix}{i}." for i in idx)) for name, idx in groups)


_RESNET = BlockMap(
    (
        ("stem", ("conv1.", "bn1.")),
        ("layer1", ("layer1.",)),
        ("layer2", ("layer2.",)),
        ("layer3", ("layer3.",)),
        ("layer4", ("layer4.",)),
    ),
    "layer4",
)
#: EfficientNet-Lite blocks by output resolution (112, 56, 28, 14, 7 px): the stride-2 blocks start a group
#: (Lite0: blocks 1, 3, 5, 11 of 16; Lite1/2: 1, 4, 7, 15 of 21)
_LITE = ((0,), (1, 2), (3, 4), tuple(range(5, 11)), tuple(range(11, 16)))
_LITE12 = ((0,), (1, 2, 3), (4, 5, 6), tuple(range(7, 15)), tuple(range(15, 21)))
_LITE_GROUPS = {0: _LITE, 1: _LITE12, 2: _LITE12}


def _lite_map(groups) -> BlockMap:
    return BlockMap(
        (
            ("stem+stage1", ("m._conv_stem.", "m._bn0.", "m._blocks.0.")),
            *((f"stage{n}", tuple(f"m._blocks.{i}." for i in idx)) for n, idx in zip(("2", "3", "4-5"), groups[1:4])),
            ("stage6-7+head", tuple(f"m._blocks.{i}." for i in groups[4]) + ("m._conv_head.", "m._bn1.")),
        ),
        "m._bn1",
        state_prefix="m.",
    )


BLOCK_MAPS: dict[str, BlockMap] = {
    "resnet18": _RESNET,
    "resnet50": _RESNET,
    "googlenet": BlockMap(
        (
            ("stem", ("conv1.", "conv2.", "conv3.")),
            ("inception3", ("inception3a.", "inception3b.")),
            ("inception4", tuple(f"inception4{c}." for c in "abcde")),
            ("inception5", ("inception5a.", "inception5b.")),
        ),
        "inception5b",
    ),
    "inception_v3": BlockMap(
        (
            ("stem", ("Conv2d_1a_3x3.", "Conv2d_2a_3x3.", "Conv2d_2b_3x3.", "Conv2d_3b_1x1.", "Conv2d_4a_3x3.")),
            ("Mixed_5", ("Mixed_5b.", "Mixed_5c.", "Mixed_5d.")),
            ("Mixed_6", tuple(f"Mixed_6{c}." for c in "abcde")),
            ("Mixed_7", ("Mixed_7a.", "Mixed_7b.", "Mixed_7c.")),
        ),
        "Mixed_7c",
    ),
    "densenet121": BlockMap(
        (
            ("stem", ("features.conv0.", "features.norm0.")),
            *((f"denseblock{i}", (f"features.denseblock{i}.", f"features.transition{i}.")) for i in (1, 2, 3)),
            ("denseblock4", ("features.denseblock4.", "features.norm5.")),
        ),
        "features",
    ),
    **{f"efficientnet_lite{k}": _lite_map(groups) for k, groups in _LITE_GROUPS.items()},
    "efficientnet_b0": BlockMap(
        _seq(
            "features.",
            (
                ("stem+stage1", (0, 1)),
                ("stage2", (2,)),
                ("stage3", (3,)),
                ("stage4-5", (4, 5)),
                ("stage6-7+head", (6, 7, 8)),
            ),
        ),
        "features",
    ),
    "mobilenet_v3_large": BlockMap(
        _seq(
            "features.", (("stem+112px", (0, 1)), ("56px", (2, 3)), ("28px", (4, 5, 6)), ("14px", tuple(range(7, 13))))
        )
        + (("7px+pre-logits", tuple(f"features.{i}." for i in range(13, 17)) + ("classifier.",)),),
        "features",
    ),
}


def block_map(arch: str, features=None) -> BlockMap:
    """The block map of ``arch``; VGGs are read from ``features`` (their layout depends on batch norm).

    Raises
    ------
    FeatxError
        For a backbone with no block map (fine-tuning is not defined for it).
    """
    if arch.startswith("timm:"):  # timm's own parameter groups (group_matcher)
        if features is None:
            raise FeatxError(f"{arch}: its block map is read from the model; build it first.")
        return BlockMap(*timm_blocks(features), state_prefix="m.")
    if arch in ("vgg11_bn", "vgg16"):
        if features is None:
            features = load_backbone(arch, "random")[1]
        return _vgg_map(features)
    if arch not in BLOCK_MAPS:
        raise FeatxError(
            f"featx has no block map for {arch!r}, so it cannot fine-tune it; fine-tunable backbones: "
            f"{', '.join(sorted([*BLOCK_MAPS, 'vgg11_bn', 'vgg16']))}, and any timm:NAME."
        )
    return BLOCK_MAPS[arch]


def _vgg_map(features) -> BlockMap:
    import torch.nn as nn

    stages, current = [], []
    for i, m in enumerate(features.features):
        current.append(f"features.{i}.")
        if isinstance(m, nn.MaxPool2d):
            stages.append((f"conv{len(stages) + 1}", tuple(current)))
            current = []
    return BlockMap(tuple(stages) + (("fc6-fc7", ("classifier.",)),), "features")


def parse_freeze(value: str | int, bmap: BlockMap) -> int:
    """``--freeze`` (``0`` .. number of blocks, or ``all``) -> number of lowest blocks to freeze."""
    n_blocks = len(bmap.blocks)
    if str(value).strip().lower() == "all":
        return n_blocks
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if not 0 <= n <= n_blocks:
        raise FeatxError(
            f"--freeze {value!r}: give 0..{n_blocks} (blocks: {', '.join(bmap.names)}) or 'all' "
            "(train only the new head)."
        )
    return n


def frozen_prefixes(bmap: BlockMap, n: int) -> tuple:
    """Module-path prefixes of the lowest ``n`` blocks."""
    return tuple(p for _, prefixes in bmap.blocks[:n] for p in prefixes)


def apply_freeze(features, bmap: BlockMap, n: int) -> list[str]:
    """Freeze the lowest ``n`` blocks of ``features`` (``requires_grad``), unfreeze the rest; returns the frozen
    parameter names. Parameters in no block (an unused original classifier) are always frozen."""
    prefixes = frozen_prefixes(bmap, n)
    every = tuple(p for _, ps in bmap.blocks for p in ps)
    frozen = []
    for name, p in features.named_parameters():
        freeze = n >= len(bmap.blocks) or name.startswith(prefixes) or not name.startswith(every)
        p.requires_grad_(not freeze)
        if freeze:
            frozen.append(name)
    return frozen


def set_train_mode(features, bmap: BlockMap, n: int) -> None:
    """Training mode for the trainable blocks; frozen blocks stay in eval mode, so their batch-norm
    statistics stay the pretrained ones (a frozen block must not change at all)."""
    features.train()
    if n >= len(bmap.blocks):
        features.eval()
        return
    prefixes = tuple(p.rstrip(".") for p in frozen_prefixes(bmap, n))
    for name, m in features.named_modules():
        if name and (name in prefixes or name.startswith(tuple(p + "." for p in prefixes))):
            m.eval()


def unmapped_parameters(features, bmap: BlockMap) -> list[str]:
    """Parameters of ``features`` in no block (a block map must cover the whole backbone)."""
    every = tuple(p for _, prefixes in bmap.blocks for p in prefixes)
    return [n for n, _ in features.named_parameters() if not n.startswith(every)]
