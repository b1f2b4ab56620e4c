"""What the external backbone sources (``timm:``, ``open_clip:``, ``hf:``) share: the pooling of a transformer's
tokens, file-safe spec names, and where to fetch Hugging Face weights from (seeded random weights:
:func:`featx.backbones.weights.seeded_random`)."""

from __future__ import annotations

import re

from featx.errors import ConfigError

#: how a transformer's tokens become one vector; CNNs pool ``avg``
VIT_POOLS = ("cls", "mean", "cls+mean")
POOLS = (*VIT_POOLS, "avg")


def check_pool(name: str, pool: str, transformer: bool) -> None:
    """A transformer takes cls/mean/cls+mean, a CNN avg; anything else is a ConfigError naming the choices."""
    if pool not in POOLS:
        raise ConfigError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}.", "pool")
    if (pool in VIT_POOLS) != transformer:
        kind = "a transformer: choose cls, mean or cls+mean" if transformer else "a CNN: its pool is avg"
        raise ConfigError(f"{name} is {kind} (got {pool!r}).", "pool")


def pool_tokens(pool: str, cls, patches):
    """``cls`` (the class token, (N, D)), ``mean`` of ``patches`` ((N, L, D): prefix tokens left out) or both."""
    import torch

    if pool == "cls":
        return cls
    if pool == "mean":
        return patches.mean(dim=1)
    return torch.cat([cls, patches.mean(dim=1)], dim=1)


def load_user_weights(load, path, what: str):
    """``load()`` of a weights file or folder the user named; a file that cannot be read is a WeightsError naming it
    (safetensors, pickle and zip errors come in many types), one whose tensors do not fit says so."""
    from featx.errors import FeatxError, WeightsError

    try:
        return load()
    except FeatxError:
        raise
    except Exception as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)[:160]
        if "size mismatch" in str(exc) or "Missing key" in str(exc) or "Unexpected key" in str(exc):
            raise WeightsError(f"{path}: weights do not fit {what} ({first}).") from None
        raise WeightsError(
            f"{path}: not readable weights for {what} ({type(exc).__name__}: {first}). Pass a .safetensors or .pth "
            "file (or a folder) saved from this architecture."
        ) from None


def file_safe(name: str) -> str:
    """A spec name usable as a file and an HDF5 name: ``org/repo`` -> ``org--repo``, odd characters -> ``-``."""
    return re.sub(r"[^A-Za-z0-9_.:@+-]", "-", name.replace("/", "--"))


def hf_fetch_hint(repo: str, files: str = "") -> str:
    """How to get a Hugging Face repo (``files``: which of its files matter) onto an offline machine."""
    from huggingface_hub.constants import HF_HUB_CACHE

    return (
        f"fetch Hugging Face repo {repo}{f' ({files})' if files else ''} on a connected machine "
        f"('huggingface-cli download {repo}' fills {HF_HUB_CACHE}; copy that folder here, or set HF_HOME)"
    )
