"""Weights: ``imagenet`` (standard torchvision cache), ``random`` (explicit), or a local file.

Never falls back to random weights: a missing download is an error that says how
to get the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from featx.backbones.registry import get_entry
from featx.backbones.spec import BackboneSpec
from featx.backbones.variants import get_variant, sequential_keys, variant_file
from featx.backbones.zoo import weights_filename
from featx.errors import WeightsError

log = logging.getLogger(__name__)

RANDOM_SEED = 0


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def seeded_random(build, what: str, knowledge: str = "pretrained"):
    """``build()`` under the seeded RNG of ``--weights random`` (tests only), said so in a warning."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = build()
    log.warning("%s: random weights (explicitly requested): features carry no %s knowledge", what, knowledge)
    return model


def load_backbone(name: str, weights: str = "imagenet", layer: str | None = None):
    """Build a backbone's feature extractor with its weights.

    Parameters
    ----------
    name : str
        Registered arch (``resnet18``) or ``arch.tag``.
    weights : str
        ``imagenet`` (default weights, downloaded once and cached under ``$TORCH_HOME``),
        ``random`` (seeded random init, for tests), or a path to a state dict / checkpoint.
    layer : str, optional
        Where to cut the graph (``featx backbones`` lists each backbone's layers); default
        the global-pooled penultimate layer.

    Returns
    -------
    spec : BackboneSpec
        With ``weights_id`` and ``weights_sha256`` filled in.
    model : torch.nn.Module
        Feature extractor in eval mode, output ``(N, spec.feature_dim)``.
    """
    import torch

    entry = get_entry(name)
    layer_name, cut = entry.layer(layer)
    base: BackboneSpec = entry.spec()
    variant = get_variant(name, base.name.partition(".")[2])
    if layer_name != entry.default_layer:
        base = base.evolve(name=f"{base.name}@{layer_name}", cut_layer=layer_name, feature_dim=cut.dim)
    if variant is not None:  # other published weights of this architecture (RadImageNet)
        path = variant_file(variant, weights)
        model = entry.build()
        if variant.transform_input is not None:
            base = base.evolve(transform_input=variant.transform_input)
            match_spec(model, base)
        _load_into(model, path, entry, remap=sequential_keys)
        spec = base.retagged(variant.tag, weights_id=f"{variant.tag}:{path.name}", weights_sha256=sha256_file(path))
    elif weights == "random":
        model = seeded_random(entry.build, name, "ImageNet")
        spec = base.retagged("random", weights_id=f"random(seed={RANDOM_SEED})", weights_sha256=None)
    elif weights == "imagenet":
        weights_id, source = entry.imagenet_weights()
        path = _local_copy(entry.arch, source)
        model = entry.build()
        _load_into(model, path, entry)
        spec = base.evolve(weights_id=weights_id, weights_sha256=sha256_file(path))
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"Weights file not found: {path}. Pass --weights imagenet, --weights random, or an existing "
                ".pth/.pt file."
            )
        model = entry.build()
        _load_into(model, path, entry)
        sha = sha256_file(path)
        spec = base.retagged(f"file-{sha[:8]}", weights_id=f"file:{path.name}", weights_sha256=sha)
    features = cut.cut(model).eval()
    for p in features.parameters():
        p.requires_grad_(False)
    if cut.dim == 0:  # multi-layer cut: width known only now
        with torch.inference_mode():
            spec = spec.evolve(feature_dim=int(features(torch.zeros(1, *spec.input_shape)).shape[1]))
    return spec, features


def match_spec(features, spec: BackboneSpec):
    """``features`` rebuilt from its entry, made to compute what ``spec`` says: a torchvision Inception/GoogLeNet
    re-normalises its input only when the spec's weights were trained that way (RadImageNet's were not)."""
    if hasattr(features, "transform_input"):
        features.transform_input = spec.transform_input
    return features


def _local_copy(arch: str, source: str) -> Path:
    """A local path for ``source`` (a path already, or a URL fetched into torch hub's cache)."""
    if not source.startswith(("http://", "https://")):
        return Path(source)
    import torch.hub

    dst = Path(torch.hub.get_dir()) / "checkpoints" / weights_filename(source)
    if dst.is_file():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s weights from %s to %s", arch, source, dst)
    tmp = dst.with_suffix(dst.suffix + ".partial")
    try:
        torch.hub.download_url_to_file(source, str(tmp), progress=True)
        os.replace(tmp, dst)
    except Exception as exc:  # network errors come as URLError, OSError, HTTPError, ssl errors...
        tmp.unlink(missing_ok=True)
        raise WeightsError(
            f"Cannot download the ImageNet weights of {arch} ({type(exc).__name__}: {exc}). "
            f"Download {source} on a connected machine and put it at {dst} (set TORCH_HOME to move that "
            "cache), or pass --weights /path/to/the/file.pth."
        ) from None
    return dst


def _load_into(model, path: Path, entry, remap=None) -> None:
    """Load a state dict or checkpoint into ``model``; only the classifier (and auxiliary heads) may be missing."""
    arch = entry.arch
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise WeightsError(
            f"{path}: not a readable PyTorch weights file ({first[:160]}). featx loads weights safely "
            "(weights_only=True): save them with torch.save(model.state_dict(), path)."
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(
            f"{path}: expected a state dict (or a checkpoint with 'state_dict'), got {type(obj).__name__}."
        )
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    if remap is not None:
        state = remap(state, model)
    if entry.fix_state is not None:
        state = entry.fix_state(state)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise WeightsError(f"{path}: weights do not fit {arch} ({first}).") from None
    missing = [k for k in result.missing_keys if not k.startswith(entry.head_prefix)]
    if missing or result.unexpected_keys:
        raise WeightsError(
            f"{path}: weights do not fit {arch}: {len(missing)} missing key(s) (e.g. {missing[:3]}), "
            f"{len(result.unexpected_keys)} unexpected key(s) (e.g. {result.unexpected_keys[:3]}). "
            f"Is it a {arch} checkpoint?"
        )
