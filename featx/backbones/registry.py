"""Backbone registry: explicit ``@register_backbone`` entries, looked up by arch name.

Registering never imports torch; each entry's builder imports it when called.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from featx.errors import BackboneError


@dataclass(frozen=True)
class BackboneEntry:
    """One registered architecture.

    Attributes
    ----------
    arch : str
        Registry key (what ``--backbone`` takes).
    description : str
        One line for ``featx backbones``.
    spec : Callable[[], BackboneSpec]
        Returns the spec for the default (ImageNet) weights, preprocessing included.
    build : Callable[[], torch.nn.Module]
        Returns the full classification model, randomly initialised, in eval mode.
    to_features : Callable[[torch.nn.Module], torch.nn.Module]
        Cuts a (weight-loaded) full model at ``spec.cut_layer``; output ``(N, feature_dim)``.
    imagenet_weights : Callable[[], tuple[str, str]]
        Returns ``(weights_id, local file path or download URL)`` of the default weights.
    head_prefix : str
        State-dict prefix of the classifier that ``to_features`` drops (may be absent from a checkpoint).
    offline : bool
        True when the default weights ship in an installed package.
    """

    arch: str
    description: str
    spec: Callable
    build: Callable
    to_features: Callable
    imagenet_weights: Callable
    head_prefix: str
    offline: bool = False


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(arch: str, description: str, *, spec, to_features, imagenet_weights, head_prefix, offline=False):
    """Decorator registering a model builder under ``arch``."""

    def deco(build):
        if arch in _REGISTRY:
            raise ValueError(f"backbone {arch!r} registered twice")
        _REGISTRY[arch] = BackboneEntry(
            arch, description, spec, build, to_features, imagenet_weights, head_prefix, offline
        )
        return build

    return deco


def get_entry(name: str) -> BackboneEntry:
    """The entry for ``name`` (``arch`` or ``arch.tag``).

    Raises
    ------
    BackboneError
        For an unknown name, with the closest registered names.
    """
    arch = name.split(".", 1)[0]
    if arch not in _REGISTRY:
        close = difflib.get_close_matches(arch, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise BackboneError(
            f"Unknown backbone {name!r}.{hint} Run 'featx backbones' to list them ({', '.join(sorted(_REGISTRY))})."
        )
    return _REGISTRY[arch]


def list_entries() -> list[BackboneEntry]:
    """All registered entries, sorted by arch."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
