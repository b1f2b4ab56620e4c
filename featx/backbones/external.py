"""``onnx:PATH`` backbones: a user's ONNX model plus a sidecar JSON that gives its preprocessing.

The sidecar is ``PATH`` with ``.json`` instead of ``.onnx`` (featx's own exports have one).
Minimal form::

    {"spec": {"resize_size": 256, "crop_size": 224, "interpolation": "bilinear",
              "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "feature_dim": 512}}

Optional ``onnx_sha256`` is checked against the file: a mismatch (file changed or
corrupt) is an error, never a silent run on the wrong model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from featx.backbones.export import ExportedModel
from featx.backbones.spec import BackboneSpec
from featx.backbones.weights import sha256_file
from featx.errors import BackboneError
from featx.images.raster import CHANNEL_POLICY

PREFIX = "onnx:"
_REQUIRED = ("resize_size", "crop_size", "interpolation", "mean", "std", "feature_dim")


def is_onnx_ref(name: str) -> bool:
    return name.startswith(PREFIX)


def load_onnx_backbone(ref: str) -> ExportedModel:
    """Validate ``onnx:PATH`` and its sidecar; returns the model with its spec.

    Raises
    ------
    BackboneError
        Missing file or sidecar, incomplete spec, sha256 mismatch, or a model whose
        input/output does not fit the spec.
    """
    path = Path(ref[len(PREFIX) :]).expanduser()
    if not path.is_file():
        raise BackboneError(f"ONNX model not found: {path}.")
    side = path.with_suffix(".json")
    if not side.is_file():
        raise BackboneError(
            f"{path}: no sidecar {side}. Write one with the model's preprocessing, e.g. "
            '{"spec": {"resize_size": 256, "crop_size": 224, "interpolation": "bilinear", "mean": [0.485, 0.456, '
            '0.406], "std": [0.229, 0.224, 0.225], "feature_dim": 512}}.'
        )
    try:
        sidecar = json.loads(side.read_text())
        d = dict(sidecar["spec"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackboneError(
            f"{side}: not a featx sidecar ({type(exc).__name__}: {exc}); it needs a 'spec' object."
        ) from None
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise BackboneError(f"{side}: the spec lacks {', '.join(missing)}.")
    sha = sha256_file(path)
    if sidecar.get("onnx_sha256") not in (None, sha):
        raise BackboneError(
            f"{path}: sha256 {sha[:12]}... differs from its sidecar's {str(sidecar['onnx_sha256'])[:12]}... (the file "
            "changed or is corrupt). Re-export it, or fix the sidecar if the new file is intended."
        )
    d.setdefault("name", f"onnx.{path.stem}")
    d.setdefault("arch", "onnx")
    d.setdefault("weights_id", f"onnx:{path.name}")
    d.setdefault("cut_layer", "model output")
    d.setdefault("channel_policy", CHANNEL_POLICY)
    d.setdefault("weights_sha256", sha)  # a user model: its weights are the ONNX file itself
    spec = BackboneSpec.from_dict(d)
    _check_io(path, spec)
    return ExportedModel(
        path,
        {
            **sidecar,
            "spec": spec.to_dict(),
            "onnx_sha256": sha,
            "opset": sidecar.get("opset"),
            "exporter": sidecar.get("exporter", "user"),
        },
    )


def _check_io(path: Path, spec: BackboneSpec) -> None:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BackboneError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]}).") from None
    inputs = sess.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise BackboneError(f"{path}: expected one (N, 3, H, W) input, found {[(i.name, i.shape) for i in inputs]}.")
    x = np.zeros((1, *spec.input_shape), dtype=np.float32)
    try:
        out = sess.run(None, {inputs[0].name: x})[0]
    except Exception as exc:
        raise BackboneError(f"{path}: does not run on a {x.shape} input ({str(exc).splitlines()[0][:200]}).") from None
    if out.reshape(1, -1).shape[1] != spec.feature_dim or out.shape[0] != 1:
        raise BackboneError(f"{path}: output shape {out.shape}, but the sidecar says feature_dim {spec.feature_dim}.")
