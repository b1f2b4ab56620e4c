"""One resolver: a backbone name -> its spec, and a torch feature module or a ready ONNX file.

Sources, by the name's form:

- ``arch`` or ``arch.tag``: the registry (:mod:`featx.backbones.zoo`), with ``weights`` ``imagenet``,
  ``random`` (tests only) or a weights file, and an optional ``layer``;
- ``onnx:PATH``: a user's ONNX model with its JSON sidecar (:mod:`featx.backbones.external`);
- ``arch.ft-RUN``: a backbone exported by ``featx finetune --export`` into the models folder
  (:mod:`featx.backbones.finetuned`);
- ``timm:NAME``: any timm model, ``hf_hub:`` names included, with its own preprocessing and the
  pooling of ``pool`` (:mod:`featx.backbones.timm_source`);
- ``open_clip:NAME``: the image tower of an OpenCLIP model, ``hf-hub:`` names included (the ``clip``
  extra; :mod:`featx.backbones.open_clip_source`);
- ``hf:REPO``: a Hugging Face transformers vision model such as RAD-DINO (the ``hf`` extra;
  :mod:`featx.backbones.hf_source`);
- ``xrv:NAME``: a TorchXRayVision chest X-ray network with its own 1-channel preprocessing (the ``xrv``
  extra; :mod:`featx.backbones.xrv_source`);
- ``fmcib``, ``ct_fm``, ``medicalnet:resnetN``: 3D networks on lesion crops, with their sources' input recipes
  (the ``3d`` extra; :mod:`featx.backbones.volumetric`).

``extract``, ``export``, ``predict``, ``finetune`` and the Ray workers all go through :func:`resolve_backbone`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featx.backbones.export import ExportedModel
from featx.backbones.external import is_onnx_ref, load_onnx_backbone
from featx.backbones.finetuned import is_finetuned_ref, load_finetuned
from featx.backbones.hf_source import is_hf_ref, load_hf
from featx.backbones.open_clip_source import is_open_clip_ref, load_open_clip
from featx.backbones.registry import get_entry
from featx.backbones.spec import BackboneSpec
from featx.backbones.timm_source import is_timm_ref, load_timm
from featx.backbones.volumetric import check_volumetric_name, is_volumetric_ref, load_volumetric
from featx.backbones.weights import load_backbone
from featx.backbones.xrv_source import is_xrv_ref, load_xrv
from featx.errors import ConfigError


@dataclass
class ResolvedBackbone:
    """What a backbone name resolved to.

    Attributes
    ----------
    spec : BackboneSpec
    model : torch.nn.Module or None
        The feature module (eval mode); None when the source is an ONNX file.
    exported : ExportedModel or None
        The ONNX file when the source is one (``onnx:``); else exported on demand.
    source : {'registry', 'onnx', 'finetuned', 'timm', 'open_clip', 'hf', 'xrv', 'volumetric'}
    finetune : dict or None
        The record of a fine-tuned entry (what it was trained on).
    """

    spec: BackboneSpec
    model: Any
    exported: ExportedModel | None
    source: str
    finetune: dict | None = None

    @property
    def trainable(self) -> bool:
        """Whether a torch module is at hand (fine-tuning, the torch runtime, Grad-CAM)."""
        return self.model is not None


#: the sources whose network is used whole: (is it one, its loader, its name, why --layers does not apply)
_USED_WHOLE = (
    (is_hf_ref, load_hf, "hf", "--layers is not supported for hf: sources; drop it"),
    (
        is_open_clip_ref,
        load_open_clip,
        "open_clip",
        "an OpenCLIP tower is used whole (its image embedding); drop --layers",
    ),
    (is_xrv_ref, load_xrv, "xrv", "TorchXRayVision's features are its pooled last map; drop --layers"),
)


def resolve_backbone(
    name: str,
    weights: str = "imagenet",
    layer: str | None = None,
    models_dir: str | Path = "models_onnx",
    *,
    pool: str | None = None,
    input_size: int | None = None,
) -> ResolvedBackbone:
    """Resolve ``name`` (see the module docstring).

    ``pool`` and ``input_size`` apply to the sources that build a transformer (``timm:``); a
    registered CNN takes ``pool`` ``avg`` (its own) only.

    Raises
    ------
    ConfigError
        ``weights``/``layer`` given for a source that carries its own.
    BackboneError
        Unknown name (with the closest ones), missing files, weights that do not fit.
    """
    if is_finetuned_ref(name):  # first: timm:NAME.ft-RUN is a fine-tuned timm model
        _own_weights(name, weights, layer, "a fine-tuned backbone")
        spec, model, record = load_finetuned(name, models_dir)
        return ResolvedBackbone(spec, model, None, "finetuned", record)
    if is_volumetric_ref(name):
        if layer is not None or pool not in (None, "avg") or input_size is not None:
            raise ConfigError(
                f"{name} is a 3D network used whole, with its source's input: drop layer, pool and input_size.",
                "layer" if layer is not None else "pool",
            )
        spec, model = load_volumetric(name, weights)
        return ResolvedBackbone(spec, model, None, "volumetric")
    for is_ref, load, source, whole in _USED_WHOLE:
        if is_ref(name):
            if layer is not None:
                raise ConfigError(f"{name}: {whole}.", "layer")
            spec, model = load(name, weights, pool, input_size)
            return ResolvedBackbone(spec, model, None, source)
    if is_timm_ref(name):
        spec, model = load_timm(name, weights, pool, input_size, layer)
        return ResolvedBackbone(spec, model, None, "timm")
    if pool not in (None, "avg") or input_size is not None:
        which = "pool" if pool not in (None, "avg") else "input_size"
        raise ConfigError(
            f"{name} is a registered CNN with a fixed input and a global average pool: {which} applies to "
            "timm: backbones.",
            which,
        )
    if is_onnx_ref(name):
        _own_weights(name, weights, layer, "an ONNX model")
        exported = load_onnx_backbone(name)
        return ResolvedBackbone(exported.spec, None, exported, "onnx")
    spec, model = load_backbone(name, weights, layer=layer)
    return ResolvedBackbone(spec, model, None, "registry")


def check_backbone_name(name: str) -> None:
    """Refuse, before any data is read, a name that is no registered backbone and names no source (``timm:``,
    ``hf:``, ``open_clip:``, ``xrv:``, ``onnx:``, a fine-tuned export): an UnknownBackboneError (a usage error)."""
    if is_volumetric_ref(name):
        return check_volumetric_name(name)
    if is_finetuned_ref(name) or is_timm_ref(name) or is_onnx_ref(name) or any(r(name) for r, *_ in _USED_WHOLE):
        return
    get_entry(name)


def _own_weights(name: str, weights: str, layer: str | None, what: str) -> None:
    if weights != "imagenet":
        raise ConfigError(f"{name} is {what} with its own weights; drop weights ({weights!r}).", "weights")
    if layer is not None:
        raise ConfigError(f"{name} is {what} cut where it was made; drop layer ({layer!r}).", "layer")
