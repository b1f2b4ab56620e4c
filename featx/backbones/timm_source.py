"""``timm:NAME``: any timm model (``hf_hub:`` names included) as a frozen feature extractor.

* **Weights** (``weights``): ``imagenet`` or ``pretrained``: the model's pretrained weights the standard
  way (the Hugging Face cache; ``HF_HUB_OFFLINE=1`` with a populated cache just works); a folder written
  by ``timm.models.save_for_hf`` or a Hugging Face snapshot (``config.json`` plus ``model.safetensors``
  or ``pytorch_model.bin``); a ``.safetensors``/``.pth`` file for the named architecture; ``random``
  (tests only). Weights that cannot be found say what to fetch and where to put it; never random.
* **Preprocessing** comes from timm (``resolve_model_data_config``: input size, interpolation, crop_pct,
  crop mode, mean, std) of the model **as built**: a ViT built at another ``input_size`` (position
  embeddings interpolated by timm) is described at that size, never at its pretrained one.
* **Pooling** (``pool``): a ViT's tokens as ``cls``, ``mean`` (patch tokens; register tokens such as
  DINOv2 ``reg4``'s are excluded) or ``cls+mean`` (DINOv2's linear evaluation); CNNs ``avg``. The
  default is the model's own (timm's pre-logits output, e.g. DINOv2's class token).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from featx.backbones.hub import offline_unless_reachable
from featx.backbones.sources import VIT_POOLS, check_pool, file_safe, hf_fetch_hint, load_user_weights, pool_tokens
from featx.backbones.spec import BackboneSpec
from featx.backbones.weights import RANDOM_SEED, seeded_random, sha256_file
from featx.errors import ConfigError, WeightsError
from featx.images.raster import CHANNEL_POLICY

PREFIX = "timm:"
_PRETRAINED = ("imagenet", "pretrained")


def is_timm_ref(name: str) -> bool:
    return name.startswith(PREFIX)


def load_timm(
    name: str,
    weights: str = "imagenet",
    pool: str | None = None,
    input_size: int | None = None,
    layer: str | None = None,
):
    """(spec, feature module in eval mode) of ``timm:NAME`` (see the module docstring).

    ``layer`` on a ViT: block indices, a Python slice (``-4:``: the last four blocks) or a comma list
    (``8,11``); each block's tokens (final norm applied, as DINOv2's linear evaluation does) are pooled
    by ``pool`` and the vectors concatenated in block order.

    Raises
    ------
    FeatxError
        timm missing, an unknown model, weights that cannot be found or do not fit, a pool the model
        cannot give.
    """
    if weights != "random":
        offline_unless_reachable()  # no minute of retries on a machine without network
    try:
        import timm
        import torch
    except ImportError:  # a dependency; said plainly if an installation lacks it
        raise ConfigError("timm: sources need the timm package: pip install timm", "backbone") from None
    model_name = name[len(PREFIX) :]
    if not model_name:
        raise ConfigError("timm: needs a model name, e.g. timm:vit_small_patch14_dinov2.lvd142m", "backbone")
    kwargs = {"num_classes": 0}
    if input_size is not None:
        kwargs["img_size"] = input_size
    model, weights_id, sha = _create(timm, torch, model_name, weights, kwargs)
    model.eval()
    cfg = timm.data.resolve_model_data_config(model)
    side = _built_side(model, cfg, input_size)
    own_pool = _own_pool(model)
    pool = pool or own_pool
    check_pool(name, pool, own_pool in VIT_POOLS)
    if pool in ("cls", "cls+mean") and getattr(model, "cls_token", None) is None:
        raise ConfigError(f"{name} has no class token: choose pool mean.", "pool")
    blocks = None
    if layer is not None:
        if own_pool not in VIT_POOLS:
            raise ConfigError(f"{name}: --layers takes a transformer's block indices; this is a CNN.", "layer")
        blocks = parse_blocks(layer, len(model.blocks))
    features = TimmFeatures(model, pool, own_pool, int(getattr(model, "num_prefix_tokens", 0)), blocks)
    for p in features.parameters():
        p.requires_grad_(False)
    with torch.inference_mode():
        dim = int(features(torch.zeros(1, 3, side, side)).shape[1])
    crop_pct = float(cfg.get("crop_pct") or 1.0)
    mode = cfg.get("crop_mode", "center")
    if mode not in ("center", "squash"):
        raise ConfigError(f"{name}: timm crop mode {mode!r} is not supported by featx (center, squash).", "backbone")
    tag = model.pretrained_cfg.get("tag") if weights in _PRETRAINED else None
    spec = BackboneSpec(
        name=_spec_name(model_name, weights, sha, tag, side, cfg, input_size, pool, own_pool)
        + (f"@blocks{_blocks_label(blocks)}" if blocks else ""),
        arch=f"{PREFIX}{model_name.split('.')[0]}",
        weights_id=weights_id,
        resize_size=math.floor(side / crop_pct),
        crop_size=side,
        interpolation=cfg.get("interpolation", "bicubic"),
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
        cut_layer=f"blocks {blocks} ({pool})" if blocks else f"pre-logits ({pool})",
        feature_dim=dim,
        channel_policy=CHANNEL_POLICY,
        weights_sha256=sha,
        fit="stretch" if mode == "squash" else "crop",
        pool=pool,
        source="timm",
    )
    return spec, features


def _create(timm, torch, model_name: str, weights: str, kwargs: dict):
    """(model, weights id, weights sha256 or None) for one ``--weights`` value."""
    if weights == "random":
        model = seeded_random(lambda: _build(timm, model_name, False, kwargs), model_name)
        return model, f"random(seed={RANDOM_SEED})", None
    if weights in _PRETRAINED:
        try:
            model = _build(timm, model_name, True, kwargs)
        except (OSError, RuntimeError, ValueError) as exc:
            raise WeightsError(_missing(timm, model_name, exc)) from None
        cfg = model.pretrained_cfg
        return model, f"timm:{cfg.get('hf_hub_id') or cfg.get('url') or model_name}", _cached_sha(cfg)
    path = Path(weights).expanduser()
    if path.is_dir():
        files = [path / f for f in ("model.safetensors", "pytorch_model.bin") if (path / f).is_file()]
        if not (path / "config.json").is_file() or not files:
            raise WeightsError(
                f"{path}: not a timm/Hugging Face model folder (it needs config.json and model.safetensors or "
                "pytorch_model.bin, as timm.models.save_for_hf writes them)."
            )
        import json

        arch = json.loads((path / "config.json").read_text()).get("architecture")
        if arch and arch != model_name.split(".")[0] and not model_name.startswith("hf_hub:"):
            raise WeightsError(f"{path} holds a {arch} model, not {model_name.split('.')[0]}: name timm:{arch}.")
        model = load_user_weights(lambda: _build(timm, f"local-dir:{path}", True, kwargs), path, f"timm {model_name}")
        return model, f"dir:{path.name}", sha256_file(files[0])
    if path.is_file():
        overlay = {**kwargs, "pretrained_cfg_overlay": {"file": str(path)}}
        model = load_user_weights(lambda: _build(timm, model_name, True, overlay), path, f"timm {model_name}")
        return model, f"file:{path.name}", sha256_file(path)
    raise WeightsError(
        f"Weights not found: {path}. Pass --weights pretrained (the Hugging Face cache), a folder written by "
        "timm.models.save_for_hf, a .safetensors/.pth file, or random."
    )


def _build(timm, model_name: str, pretrained: bool, kwargs: dict):
    try:
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except TypeError as exc:
        if "img_size" in kwargs and "img_size" in str(exc):  # a CNN: any input size, no img_size argument
            return _build(timm, model_name, pretrained, {k: v for k, v in kwargs.items() if k != "img_size"})
        raise
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            close = timm.list_models(f"*{model_name.split('.')[0][:6]}*")[:5]
            raise ConfigError(
                f"timm has no model {model_name!r}" + (f" (close: {', '.join(close)})" if close else "") + ".",
                "backbone",
            ) from None
        if "Error(s) in loading state_dict" in str(exc) or "size mismatch" in str(exc):
            first = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc)[:200])
            raise WeightsError(f"the weights do not fit timm {model_name} ({first}).") from None
        raise


def _missing(timm, model_name: str, exc: Exception) -> str:
    """What to fetch, and where to put it, when pretrained weights are not on this machine."""
    try:
        cfg = timm.models.get_pretrained_cfg(model_name.removeprefix("hf_hub:"))
        repo = getattr(cfg, "hf_hub_id", None) or (model_name.removeprefix("hf_hub:") if "/" in model_name else None)
        url = getattr(cfg, "url", None)
    except Exception:  # an unknown tag: say what timm said
        repo, url = (model_name.removeprefix("hf_hub:") if "/" in model_name else None), None
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    first = first.split(". ")[0].rstrip(".")[:160]
    if repo:
        where = hf_fetch_hint(repo, "model.safetensors and config.json") + ", "
    elif url:
        where = f"download {url} on a connected machine, "
    else:
        where = "fetch its weights on a connected machine, "
    return (
        f"timm:{model_name}: the pretrained weights are not on this machine ({first}). To run offline, {where}"
        "or save the model with timm.models.save_for_hf and pass that folder as --weights DIR."
    )


def _cached_sha(cfg) -> str | None:
    """sha256 of the weights file timm loaded from the Hugging Face cache, when it is there."""
    repo = cfg.get("hf_hub_id")
    if not repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            hit = try_to_load_from_cache(repo.split("@")[0], f)
            if isinstance(hit, str):
                return sha256_file(hit)
    except Exception:  # the hash is provenance, not a requirement
        return None
    return None


def _built_side(model, cfg: dict, input_size: int | None) -> int:
    """The input side of the model as built (a ViT's patch grid), not its pretrained config's."""
    pe = getattr(model, "patch_embed", None)
    img = getattr(pe, "img_size", None)
    if img is not None and getattr(pe, "dynamic_img_size", False) is False:
        h, w = (img, img) if isinstance(img, int) else tuple(img)
        if h != w:
            raise ConfigError(f"{model.default_cfg.get('architecture')}: a non-square input {h}x{w}.", "input_size")
        return int(h)
    return int(input_size or cfg["input_size"][-1])


def _own_pool(model) -> str:
    """The model's own pooling, in featx's words."""
    gp = str(getattr(model, "global_pool", "") or "")
    if getattr(model, "num_prefix_tokens", None) is not None and hasattr(model, "blocks"):  # a ViT
        return "cls" if gp == "token" else "mean"
    return "avg"


def _spec_name(model_name, weights, sha, tag, side, cfg, input_size, pool, own_pool) -> str:
    """``timm:arch.tag`` (the weights) with ``-SIDE`` when built at another size and ``@pool`` when not the
    model's own; file-safe: ``hf_hub:org/repo`` becomes ``hf_hub-org--repo``."""
    base = model_name.split(".")[0]
    if weights in _PRETRAINED:
        label = tag or "pretrained"
    elif weights == "random":
        label = "random"
    else:
        label = f"{'dir' if Path(weights).expanduser().is_dir() else 'file'}-{(sha or '')[:8]}"
    name = f"{PREFIX}{base}.{label}"
    if input_size is not None:
        name += f"-{side}"
    if pool != own_pool:
        name += f"@{pool}"
    return file_safe(name.replace("hf_hub:", "hf_hub-"))


def _blocks_label(blocks: list[int]) -> str:
    contiguous = blocks == list(range(blocks[0], blocks[-1] + 1))
    return f"{blocks[0]}-{blocks[-1]}" if contiguous and len(blocks) > 1 else "+".join(map(str, blocks))


def parse_blocks(text: str, depth: int) -> list[int]:
    """``-4:`` (a slice), ``8,11`` or ``-1`` -> sorted block indices in ``0..depth-1``."""
    try:
        if ":" in text:
            parts = [int(p) if p.strip() else None for p in text.split(":")]
            if len(parts) > 3:
                raise ValueError
            chosen = list(range(depth))[slice(*parts)]
        else:
            chosen = sorted({int(p) % depth if -depth <= int(p) < depth else depth for p in text.split(",")})
    except ValueError:
        chosen = []
    if not chosen or max(chosen) >= depth:
        raise ConfigError(
            f"--layers {text!r}: give block indices of the {depth} blocks, a slice such as -4: (the last four) or "
            "a list such as 8,11.",
            "layer",
        )
    return chosen


def rebuild_timm(spec: BackboneSpec):
    """The feature module ``spec`` describes (a ``timm:`` spec), randomly initialised and without the warning of
    ``--weights random``: for loading a fine-tuned model's own weights into it."""
    import timm

    model_name = spec.arch[len(PREFIX) :]
    model = _build(timm, model_name, False, {"num_classes": 0, "img_size": spec.crop_size})
    return TimmFeatures(model, spec.pool, _own_pool(model), int(getattr(model, "num_prefix_tokens", 0)))


def timm_blocks(features) -> tuple[tuple, str]:
    """``(blocks, Grad-CAM layer)`` of a timm feature module for fine-tuning: timm's own coarse parameter groups
    (``group_matcher``: the stem, each stage or transformer block, the final norm), lowest first, as
    ``(name, parameter names)``; Grad-CAM looks at the last block (a ViT's tokens) or the last stage."""
    from timm.models import group_parameters

    model = features.m
    groups = group_parameters(model, model.group_matcher(coarse=True))
    names = []
    for i, (_, params) in enumerate(sorted(groups.items())):
        # module paths ('m.stages.0.'), so frozen batch norms also stay in eval mode; a parameter of the model
        # itself (a ViT's cls_token, pos_embed) is named whole
        mods = dict.fromkeys(f"m.{p.rsplit('.', 1)[0]}." if "." in p else f"m.{p}" for p in params)
        common = os.path.commonprefix([p.split(".")[:-1] for p in params])
        label = ".".join(common[:2]) if common else ".".join(params[0].split(".")[:2]) + "+"  # '+': and more
        names.append(("stem" if i == 0 else label, tuple(mods)))
    if hasattr(model, "blocks") and getattr(model, "num_prefix_tokens", None) is not None:
        layer = f"m.blocks.{len(model.blocks) - 1}"
    else:
        layer = "m." + model.feature_info[-1]["module"]
    return tuple(names), layer


def TimmFeatures(model, pool: str, own_pool: str, prefix: int, blocks: list[int] | None = None):
    """The feature module: timm's own pre-logits output for the model's own pool, else pooled tokens
    (of the last block, or of each of ``blocks``, concatenated)."""
    import torch
    import torch.nn as nn

    class _TimmFeatures(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model
            self.pool, self.own, self.prefix, self.blocks = pool, own_pool, prefix, blocks

        def forward(self, x):
            if self.blocks is not None:
                out = self.m.forward_intermediates(
                    x, self.blocks, return_prefix_tokens=True, norm=True, output_fmt="NLC", intermediates_only=True
                )
                return torch.cat([pool_tokens(self.pool, prefix[:, 0], spatial) for spatial, prefix in out], dim=1)
            if self.pool == self.own:
                return self.m(x).flatten(1)
            tokens = self.m.forward_features(x)
            return pool_tokens(self.pool, tokens[:, 0], tokens[:, self.prefix :])

    return _TimmFeatures()


def search_timm(pattern: str, limit: int = 50) -> list[dict]:
    """timm's pretrained names matching ``*pattern*``: input size, feature dim (built on the meta device:
    nothing allocated, no weights read), licence and Hugging Face repo where the pretrained config gives them."""
    import timm
    import torch

    rows = []
    for name in timm.list_models(f"*{pattern}*", pretrained=True)[:limit]:
        cfg = timm.models.get_pretrained_cfg(name)
        dim = None
        try:
            with torch.device("meta"):
                dim = int(timm.create_model(name, pretrained=False, num_classes=0).num_features)
        except Exception:  # some models cannot be built on the meta device: the dim is left out
            dim = None
        rows.append(
            {
                "name": f"{PREFIX}{name}",
                "input": int(cfg.input_size[-1]) if cfg and cfg.input_size else None,
                "dim": dim,
                "license": (cfg.license if cfg else None) or "",
                "weights": (cfg.hf_hub_id or cfg.url or "") if cfg else "",
            }
        )
    return rows
