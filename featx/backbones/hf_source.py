"""``hf:REPO``: a Hugging Face transformers vision model (e.g. RAD-DINO, ``microsoft/rad-dino``) as a feature extractor.

* **Weights** (``weights``): ``pretrained`` (or ``imagenet``, the default): ``from_pretrained(REPO)`` the
  standard way, from the Hugging Face cache (``HF_HUB_OFFLINE=1`` with a populated cache works); a folder
  written by ``save_pretrained`` or a snapshot (``config.json``, the weights, ``preprocessor_config.json``);
  ``random`` (tests only, the repo's config from the cache). Missing weights say what to fetch; never random.
* **Preprocessing** comes from the model's image processor (``AutoImageProcessor``): resize, crop,
  resample filter, mean and std.
* **Pooling** (``pool``) of a transformer's last hidden state: ``cls`` (the default: what the model's
  pooler gives for DINOv2), ``mean`` (patch tokens, register tokens left out) or ``cls+mean``; a CNN's
  pooled output is ``avg``.

Needs the ``hf`` extra: ``pip install "featx[hf]"``.
"""

from __future__ import annotations

from pathlib import Path

from featx.backbones.hub import offline_unless_reachable
from featx.backbones.sources import check_pool, file_safe, hf_fetch_hint, load_user_weights, pool_tokens
from featx.backbones.spec import BackboneSpec
from featx.backbones.weights import RANDOM_SEED, seeded_random, sha256_file
from featx.errors import ConfigError, WeightsError
from featx.images.raster import CHANNEL_POLICY

PREFIX = "hf:"
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


def is_hf_ref(name: str) -> bool:
    return name.startswith(PREFIX)


def load_hf(name: str, weights: str = "imagenet", pool: str | None = None, input_size: int | None = None):
    """(spec, feature module in eval mode) of ``hf:REPO`` (see the module docstring)."""
    if weights != "random":
        offline_unless_reachable()  # no minute of retries on a machine without network
    try:
        import torch
        import transformers
    except ImportError:
        raise ConfigError(f"{name} needs transformers: pip install 'featx[hf]'.", "backbone") from None
    repo = name[len(PREFIX) :]
    if not repo:
        raise ConfigError("hf: needs a repository, e.g. hf:microsoft/rad-dino", "backbone")
    folder = Path(weights).expanduser() if weights not in ("imagenet", "pretrained", "random") else None
    source = str(folder) if folder is not None else repo
    if folder is not None and not (folder / "config.json").is_file():
        raise WeightsError(
            f"{folder}: not a Hugging Face model folder (it needs config.json, the weights and "
            "preprocessor_config.json, as save_pretrained writes them)."
        )
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(source)
        if weights == "random":
            config = transformers.AutoConfig.from_pretrained(source)
            model = seeded_random(lambda: transformers.AutoModel.from_config(config), repo)
        elif folder is not None:
            model = load_user_weights(lambda: transformers.AutoModel.from_pretrained(source), folder, repo)
        else:
            model = transformers.AutoModel.from_pretrained(source)
    except OSError as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise WeightsError(
            f"{name}: the model is not on this machine ({first.split('. ')[0][:160]}). To run offline, "
            f"{hf_fetch_hint(repo)}, or save it with save_pretrained and pass that folder as --weights DIR."
        ) from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    resize, crop, fit = _geometry(processor, name)
    if input_size is not None:  # the ViTs interpolate their position embeddings to any size
        resize, crop = round(input_size * resize / crop), input_size
    prefix = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)
    features = HfFeatures(model, None, prefix)
    with torch.inference_mode():
        out = model(pixel_values=torch.zeros(1, 3, crop, crop))
    vit = getattr(out, "last_hidden_state", None) is not None and out.last_hidden_state.dim() == 3
    own = "cls" if vit else "avg"
    pool = pool or own
    check_pool(name, pool, vit)
    features.pool = pool
    with torch.inference_mode():
        dim = int(features(torch.zeros(1, 3, crop, crop)).shape[1])
    files = [f for f in ("model.safetensors", "pytorch_model.bin") if folder is not None and (folder / f).is_file()]
    sha = sha256_file(folder / files[0]) if files else None
    label = "random" if weights == "random" else (f"dir-{sha[:8]}" if sha else "pretrained")
    base = file_safe(repo)
    spec = BackboneSpec(
        name=f"{PREFIX}{base}.{label}"
        + (f"-{crop}" if input_size is not None else "")
        + (f"@{pool}" if pool != own else ""),
        arch=f"{PREFIX}{repo}",
        weights_id=f"random(seed={RANDOM_SEED})"
        if weights == "random"
        else (f"dir:{folder.name}" if folder is not None else f"hf:{repo}"),
        resize_size=resize,
        crop_size=crop,
        interpolation=_RESAMPLE.get(int(getattr(processor, "resample", 3) or 3), "bicubic"),
        mean=tuple(float(v) for v in processor.image_mean),
        std=tuple(float(v) for v in processor.image_std),
        cut_layer=f"last hidden state ({pool})" if vit else "pooled output",
        feature_dim=dim,
        channel_policy=CHANNEL_POLICY,
        weights_sha256=sha,
        fit=fit,
        pool=pool,
        source="hf",
    )
    return spec, features


def _geometry(processor, name: str) -> tuple[int, int, str]:
    """(resize, crop, fit) of an image processor: shortest-edge resize + centre crop, or a resize to a square."""
    size = dict(processor.size) if getattr(processor, "size", None) is not None else {}
    size = {k: v for k, v in size.items() if v is not None}
    crop_size = {k: v for k, v in dict(getattr(processor, "crop_size", None) or {}).items() if v is not None}
    do_crop = bool(getattr(processor, "do_center_crop", False))
    if "shortest_edge" in size:
        resize = int(size["shortest_edge"])
        crop = int(crop_size.get("height", resize)) if do_crop else resize
        return resize, crop, "crop"
    if "height" in size and size["height"] == size.get("width"):
        side = int(size["height"])
        crop = int(crop_size.get("height", side)) if do_crop else side
        return side, crop, "stretch"
    raise ConfigError(f"{name}: its image processor's size {size} is not one featx reproduces.", "backbone")


def HfFeatures(model, pool: str | None, prefix: int):
    """The feature module: pooled tokens of the last hidden state, or a CNN's pooled output."""
    import torch.nn as nn

    class _HfFeatures(nn.Module):
        def __init__(self):
            super().__init__()
            self.m, self.pool, self.prefix = model, pool, prefix

        def forward(self, x):
            out = self.m(pixel_values=x)
            if self.pool == "avg":
                return out.pooler_output.flatten(1)
            h = out.last_hidden_state
            return pool_tokens(self.pool, h[:, 0], h[:, self.prefix :])

    return _HfFeatures()
