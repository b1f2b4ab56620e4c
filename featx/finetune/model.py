"""The network that is fine-tuned: a backbone's feature module plus a new head; saving and loading it.

A saved model (``model.pt``) is a plain dict of tensors and one JSON string, so it
loads with ``torch.load(weights_only=True)``: no pickled code runs on loading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from featx import __version__
from featx.backbones.registry import get_entry
from featx.backbones.resolve import resolve_backbone
from featx.backbones.spec import BackboneSpec
from featx.backbones.timm_source import is_timm_ref, rebuild_timm
from featx.backbones.weights import match_spec
from featx.config import Choice
from featx.errors import ConfigError, FeatxError
from featx.finetune.blocks import BlockMap, block_map

HEADS = Choice("head", ("linear", "mlp"))
MODEL_FORMAT = "featx-finetune/1"


@dataclass(frozen=True)
class HeadConfig:
    """The new classifier: ``linear`` (dropout -> Linear) or ``mlp`` (dropout -> Linear(hidden) -> ReLU ->
    dropout -> Linear), e.g. GoogLeNet's 1024-128-2 with dropout 0.5."""

    kind: str = "linear"
    hidden: int = 128
    dropout: float = 0.0

    def describe(self, dim: int, n_classes: int) -> str:
        drop = f", dropout {self.dropout:g}" if self.dropout else ""
        if self.kind == "linear":
            return f"linear {dim}-{n_classes}{drop}"
        return f"MLP {dim}-{self.hidden}-{n_classes} (ReLU{drop})"


def make_head(cfg: HeadConfig, dim: int, n_classes: int):
    import torch.nn as nn

    HEADS.check(cfg.kind)
    if not 0 <= cfg.dropout < 1:
        raise ConfigError(f"give a fraction in [0, 1), got {cfg.dropout}.", "dropout")
    if cfg.kind == "linear":
        return nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(dim, n_classes))
    return nn.Sequential(
        nn.Dropout(cfg.dropout),
        nn.Linear(dim, cfg.hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(cfg.dropout),
        nn.Linear(cfg.hidden, n_classes),
    )


def _net_class():
    import torch.nn as nn

    class FinetuneNet(nn.Module):
        """``head(features(x))``: logits of shape (N, C)."""

        def __init__(self, features, head):
            super().__init__()
            self.features = features
            self.head = head

        def forward(self, x):
            return self.head(self.features(x))

    return FinetuneNet


def with_input_size(spec: BackboneSpec, size: int | None) -> BackboneSpec:
    """The spec at another network input side (resize side scaled alike), e.g. for small images on a CPU."""
    if size is None or size == spec.crop_size:
        return spec
    if size < 32:
        raise ConfigError(f"give at least 32 pixels, got {size}.", "input_size")
    return spec.evolve(crop_size=int(size), resize_size=int(round(size * spec.resize_size / spec.crop_size)))


def build_net(
    backbone: str,
    weights: str,
    n_classes: int,
    head: HeadConfig,
    input_size: int | None = None,
    models_dir="models_onnx",
):
    """``(spec, block map, net)``: the backbone (its default layer) with ``weights`` and a new head."""
    import torch

    timm_model = is_timm_ref(backbone)  # a timm ViT is built at the input size (position embeddings interpolated)
    resolved = resolve_backbone(backbone, weights, models_dir=models_dir, input_size=input_size if timm_model else None)
    if not resolved.trainable:
        raise FeatxError(f"{backbone} is an ONNX model: it cannot be fine-tuned; give a registered backbone.")
    spec, features = resolved.spec, resolved.model
    spec = spec if timm_model else with_input_size(spec, input_size)
    bmap = block_map(spec.arch, features)
    torch.manual_seed(0)  # the head's init does not depend on what ran before
    net = _net_class()(features, make_head(head, spec.feature_dim, n_classes))
    check_input_size(net, spec)
    return spec, bmap, net


def check_input_size(net, spec: BackboneSpec) -> None:
    """One forward pass at the spec's input size, so a too small ``--input-size`` fails before training."""
    import torch

    net.eval()
    try:
        with torch.inference_mode():
            net(torch.zeros(1, *spec.input_shape))
    except RuntimeError as exc:
        raise FeatxError(
            f"{spec.arch} does not run on {spec.crop_size}x{spec.crop_size} inputs "
            f"({str(exc).splitlines()[0][:120]}); choose a larger --input-size."
        ) from None


def save_net(path: str | Path, net, meta: dict) -> Path:
    """Write ``{'meta_json', 'state'}`` (atomically)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": MODEL_FORMAT, "featx_version": __version__, **meta}
    tmp = path.with_name(path.name + ".part")
    torch.save(
        {"meta_json": json.dumps(meta), "state": {k: v.detach().cpu() for k, v in net.state_dict().items()}}, tmp
    )
    tmp.replace(path)
    return path


@dataclass
class LoadedNet:
    net: object
    spec: BackboneSpec
    bmap: BlockMap
    meta: dict

    @property
    def classes(self) -> list:
        return self.meta["classes"]


def rebuild_features(spec: BackboneSpec):
    """The feature module ``spec`` describes, randomly initialised, for loading trained weights into."""
    if spec.source == "timm":
        return rebuild_timm(spec)
    entry = get_entry(spec.arch)
    return match_spec(entry.layer(None)[1].cut(entry.build()), spec)


def load_net(path: str | Path) -> LoadedNet:
    """A model saved by :func:`save_net`, rebuilt (architecture from the registry) and in eval mode."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FeatxError(f"Model file not found: {path}. 'featx finetune --out DIR' writes DIR/model.pt.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(obj["meta_json"])
    except Exception as exc:
        raise FeatxError(f"{path} is not a featx fine-tuned model ({type(exc).__name__}: {str(exc)[:160]}).") from None
    if meta.get("format") != MODEL_FORMAT:
        raise FeatxError(f"{path}: format {meta.get('format')!r} is not a featx fine-tuned model ({MODEL_FORMAT}).")
    spec = BackboneSpec.from_dict(meta["spec"])
    features = rebuild_features(spec)
    net = _net_class()(features, make_head(HeadConfig(**meta["head"]), spec.feature_dim, len(meta["classes"])))
    net.load_state_dict(obj["state"])
    return LoadedNet(net.eval(), spec, block_map(spec.arch, features), meta)
