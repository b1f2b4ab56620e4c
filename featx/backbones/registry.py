"""Backbone registry: explicit ``@register_backbone`` entries, looked up by arch name.

Registering never imports torch; each entry's builder imports it when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from featx.backbones.multilayer import multi_layer_cut
from featx.errors import BackboneError, UnknownBackboneError, did_you_mean


@dataclass(frozen=True)
class Layer:
    """A place to cut the graph: ``cut(model) -> feature module`` with output ``(N, dim)``."""

    cut: Callable
    dim: int
    description: str


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
        Returns the spec for the default (ImageNet) weights and default layer, preprocessing included.
    build : Callable[[], torch.nn.Module]
        Returns the full classification model, randomly initialised.
    layers : dict of str -> Layer
        Named cut points; the first is the default (the global-pooled penultimate layer).
    imagenet_weights : Callable[[], tuple[str, str]]
        Returns ``(weights_id, local file path or download URL)`` of the default weights.
    head_prefix : tuple of str
        State-dict prefixes the feature model does not need (classifier, auxiliary heads):
        a checkpoint may lack them.
    offline : bool
        True when the default weights ship in an installed package.
    fix_state : Callable or None
        Rewrites a published state dict's keys to the current module names.
    """

    arch: str
    description: str
    spec: Callable
    build: Callable
    layers: dict
    imagenet_weights: Callable
    head_prefix: tuple
    offline: bool = False
    fix_state: Callable | None = None

    @property
    def default_layer(self) -> str:
        return next(iter(self.layers))

    def layer(self, name: str | None) -> tuple[str, Layer]:
        """``(name, Layer)``; ``None`` gives the default. Unknown names are a BackboneError."""
        name = name or self.default_layer
        if "+" in name:  # several stages, pooled and concatenated; the width is measured after the cut
            nodes = [n.strip() for n in name.split("+") if n.strip()]
            return "+".join(nodes), Layer(multi_layer_cut(nodes), 0, "concatenated global-average pools")
        if name not in self.layers:
            raise BackboneError(
                f"{self.arch} has no layer {name!r}; choose one of {', '.join(self.layers)}, or "
                "several stages joined by '+' (e.g. layer3+layer4)."
            )
        return name, self.layers[name]


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(
    arch: str, description: str, *, spec, layers, imagenet_weights, head_prefix, offline=False, fix_state=None
):
    """Decorator registering a model builder under ``arch``."""

    def deco(build):
        if arch in _REGISTRY:
            raise ValueError(f"backbone {arch!r} registered twice")
        prefixes = (head_prefix,) if isinstance(head_prefix, str) else tuple(head_prefix)
        _REGISTRY[arch] = BackboneEntry(
            arch, description, spec, build, dict(layers), imagenet_weights, prefixes, offline, fix_state
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
        raise UnknownBackboneError(
            f"Unknown backbone {name!r}.{did_you_mean(arch, _REGISTRY)} Run 'featx backbones' to list them "
            f"({', '.join(sorted(_REGISTRY))})."
        )
    return _REGISTRY[arch]


def list_entries() -> list[BackboneEntry]:
    """All registered entries, sorted by arch."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
