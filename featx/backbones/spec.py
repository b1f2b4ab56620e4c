"""BackboneSpec: everything needed to reproduce a feature vector, frozen.

A spec travels with every artefact: the ONNX sidecar, the HDF5 feature-set
attributes and every report. Preprocessing fields are copied from torchvision's
``weights.transforms()`` (or the weights' own published preprocessing), never retyped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

_LATER_FIELDS = ("fit", "pool", "source", "volume")


@dataclass(frozen=True)
class BackboneSpec:
    """Frozen description of a feature extractor.

    Attributes
    ----------
    name : str
        ``arch.tag``, e.g. ``resnet18.tv_in1k`` or ``efficientnet_lite0.tf_in1k``.
    arch : str
        Registry key of the architecture, e.g. ``resnet18``.
    weights_id : str
        Where the weights come from: a torchvision enum, a package file, ``random(seed=0)`` or ``file:PATH``.
    resize_size, crop_size : int
        Shorter side after resizing, then the square centre crop (the network input side).
    interpolation : str
        Resize filter (``bilinear``, ``bicubic``).
    mean, std : tuple of float
        Per-channel normalisation on the 0..1 scale.
    cut_layer : str
        Where the graph is cut (the layer whose output is the feature vector).
    feature_dim : int
        Length of the feature vector.
    channel_policy : str
        How grey/16-bit/RGBA images become 8-bit RGB.
    transform_input : bool
        The network re-normalises its (ImageNet-normalised) input internally, as torchvision's
        GoogLeNet and Inception v3 do with their original weights.
    weights_sha256 : str or None
        sha256 of the weights file; None for random init.
    fit : str
        How an image meets the square input (:data:`featx.images.preprocess.FITS`); ``crop`` by default.
    pool : str or None
        How a transformer's tokens become the vector (``cls``, ``mean``, ``cls+mean``), or ``avg``;
        None: the source's own pooling (a registered CNN's global average pool).
    source : str
        Where the architecture comes from: ``registry``, ``timm``.
    volume : dict or None
        A 3D network's input recipe (:class:`featx.images.crop3d.VolumeRecipe` as a dict): a lesion crop in
        millimetres, resampled and normalised as the source publishes it. None for a 2D network, whose
        preprocessing is the fields above.
    """

    name: str
    arch: str
    weights_id: str
    resize_size: int
    crop_size: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    cut_layer: str
    feature_dim: int
    channel_policy: str = ""
    weights_sha256: str | None = None
    transform_input: bool = False
    fit: str = "crop"
    pool: str | None = None
    source: str = "registry"
    volume: dict | None = None

    @property
    def input_shape(self) -> tuple:
        """``(3, crop_size, crop_size)``; a 3D network's ``(1, D, H, W)``."""
        if self.volume is not None:
            return (1, *(int(n) for n in self.volume["size"]))
        return (3, self.crop_size, self.crop_size)

    def to_dict(self) -> dict:
        """Plain JSON-able dict. Fields added after featx 0.5 are left out at their defaults, so the specs
        (and the identities of the feature sets) made before them are unchanged."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        for f in fields(self):
            if f.name in _LATER_FIELDS and d[f.name] == f.default:
                del d[f.name]
        return d

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): equal specs give equal strings."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> BackboneSpec:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["mean"], kw["std"] = tuple(kw["mean"]), tuple(kw["std"])
        return cls(**kw)

    def retagged(self, tag: str, **changes) -> BackboneSpec:
        """A copy named ``arch.tag``, keeping a non-default layer's ``@layer`` suffix."""
        _, at, layer = self.name.partition("@")
        return replace(self, name=f"{self.arch}.{tag}{at}{layer}", **changes)

    def evolve(self, **changes) -> BackboneSpec:
        """A copy with some fields changed."""
        return replace(self, **changes)
