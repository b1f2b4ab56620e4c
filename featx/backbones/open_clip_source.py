"""``open_clip:NAME``: the image tower of an OpenCLIP model (``hf-hub:`` names included) as a feature extractor.

* **Weights** (``weights``): a pretrained tag of the model (``laion2b_s34b_b88k``; ``featx backbones
  --describe`` lists them), ``pretrained`` for an ``hf-hub:`` model (the Hugging Face cache, offline too),
  a checkpoint file of the whole CLIP model, or ``random`` (tests only). Never random otherwise.
* **Preprocessing** comes from the tower's ``preprocess_cfg``: size, mean, std, interpolation and resize
  mode (``shortest``: resize and centre crop; ``longest``: letterbox, featx's ``pad``; ``squash``:
  ``stretch``).
* **Features**: the tower's output, the projected image embedding CLIP compares with text (not
  L2-normalised); its pooling is the model's own.

Needs the ``clip`` extra: ``pip install "featx[clip]"``.
"""

from __future__ import annotations

from pathlib import Path

from featx.backbones.hub import offline_unless_reachable
from featx.backbones.sources import file_safe, load_user_weights
from featx.backbones.spec import BackboneSpec
from featx.backbones.weights import RANDOM_SEED, seeded_random, sha256_file
from featx.errors import ConfigError, WeightsError
from featx.images.raster import CHANNEL_POLICY

PREFIX = "open_clip:"
_FITS = {"shortest": "crop", "longest": "pad", "squash": "stretch"}


def is_open_clip_ref(name: str) -> bool:
    return name.startswith(PREFIX)


def load_open_clip(name: str, weights: str = "imagenet", pool: str | None = None, input_size: int | None = None):
    """(spec, image tower in eval mode) of ``open_clip:NAME`` (see the module docstring)."""
    if weights != "random":
        offline_unless_reachable()  # no minute of retries on a machine without network
    try:
        import open_clip
        import torch
    except ImportError:
        raise ConfigError(
            f"{name} needs OpenCLIP: pip install 'featx[clip]' (the open-clip-torch package).", "backbone"
        ) from None
    model_name = name[len(PREFIX) :]
    if model_name not in open_clip.list_models() and not model_name.startswith("hf-hub:"):
        raise ConfigError(f"OpenCLIP has no model {model_name!r} (see open_clip.list_models()).", "backbone")
    if pool not in (None, "own"):
        raise ConfigError(f"{name}: an OpenCLIP tower pools its own way; drop --pool ({pool!r}).", "pool")
    extra = {"force_image_size": input_size} if input_size is not None else {}
    tags = [] if model_name.startswith("hf-hub:") else open_clip.list_pretrained_tags_by_model(model_name)
    if weights == "random":
        model = seeded_random(lambda: open_clip.create_model(model_name, pretrained=None, **extra), model_name)
        weights_id, sha, label = f"random(seed={RANDOM_SEED})", None, "random"
    elif Path(weights).expanduser().is_file():
        path = Path(weights).expanduser()
        model = load_user_weights(
            lambda: open_clip.create_model(model_name, pretrained=str(path), **extra), path, f"OpenCLIP {model_name}"
        )
        sha = sha256_file(path)
        weights_id, label = f"file:{path.name}", f"file-{sha[:8]}"
    else:
        tag = None if model_name.startswith("hf-hub:") else weights
        if tag is not None and tag not in tags:
            have = ", ".join(tags) or "none"
            raise WeightsError(
                f"{name}: {weights!r} is not a pretrained tag of {model_name} (its tags: {have}), nor a file. Pass "
                "--weights TAG, a checkpoint file of the whole CLIP model, or random."
            )
        try:
            model = open_clip.create_model(model_name, pretrained=tag, require_pretrained=True, **extra)
        except Exception as exc:  # hub and cache errors come in many types; all mean: not on this machine
            first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)[:160]
            repo = model_name.removeprefix("hf-hub:") if tag is None else f"{model_name} / {tag}"
            raise WeightsError(
                f"{name}: the pretrained weights ({repo}) are not on this machine ({first}). Fetch them on a connected "
                "machine into the Hugging Face cache (HF_HOME) and copy it here, or pass a checkpoint file as "
                "--weights FILE."
            ) from None
        weights_id, sha, label = f"open_clip:{tag or model_name}", None, tag or "pretrained"
    tower = model.visual.eval()
    del model  # the text tower is not needed
    for p in tower.parameters():
        p.requires_grad_(False)
    cfg = dict(getattr(tower, "preprocess_cfg", {}) or {})
    size = cfg.get("size", getattr(tower, "image_size", 224))
    side = int(size[0] if isinstance(size, (tuple, list)) else size)
    mode = cfg.get("resize_mode", "shortest")
    if mode not in _FITS:
        raise ConfigError(f"{name}: OpenCLIP resize mode {mode!r} is not supported by featx.", "backbone")
    with torch.inference_mode():
        dim = int(tower(torch.zeros(1, 3, side, side)).shape[1])
    base = file_safe(model_name.replace("hf-hub:", "hf-hub-"))
    spec = BackboneSpec(
        name=f"{PREFIX}{base}.{label}" + (f"-{side}" if input_size is not None else ""),
        arch=f"{PREFIX}{model_name}",
        weights_id=weights_id,
        resize_size=side,
        crop_size=side,
        interpolation=cfg.get("interpolation", "bicubic"),
        mean=tuple(float(v) for v in cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))),
        std=tuple(float(v) for v in cfg.get("std", (0.26862954, 0.26130258, 0.27577711))),
        cut_layer="image embedding (projected)",
        feature_dim=dim,
        channel_policy=CHANNEL_POLICY,
        weights_sha256=sha,
        fit=_FITS[mode],
        pool="own",
        source="open_clip",
    )
    return spec, tower


def search_open_clip(pattern: str, limit: int = 50) -> list[dict]:
    """OpenCLIP's pretrained (model, tag) pairs whose model or tag contains ``pattern`` (case-insensitive), with
    input size and embedding dim from the model's config; [] when OpenCLIP is not installed."""
    try:
        import open_clip
    except ImportError:
        return []
    rows, text = [], pattern.lower()
    for model, tag in open_clip.list_pretrained():
        if text not in model.lower() and text not in tag.lower():
            continue
        cfg = open_clip.get_model_config(model) or {}
        size = (cfg.get("vision_cfg") or {}).get("image_size")
        rows.append(
            {
                "name": f"{PREFIX}{model}",
                "input": int(size if isinstance(size, int) else size[-1]) if size else None,
                "dim": cfg.get("embed_dim"),
                "license": "",
                "weights": f"--weights {tag}",
            }
        )
    return rows[:limit]
