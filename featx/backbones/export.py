"""ONNX export with a content-addressed cache, ``onnx.checker`` and a parity check against torch.

``models_onnx/<spec.name>.onnx`` sits beside ``<spec.name>.json``, the sidecar: spec,
weights and ONNX sha256, opset, exporter, versions and the cache key. The cache key
hashes everything that changes the graph (spec incl. weights sha256, opset, torch
version), so a rerun with the same inputs reuses the file and changed inputs re-export.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx import __version__
from featx.backbones.spec import BackboneSpec
from featx.backbones.weights import sha256_file
from featx.errors import BackboneError

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
#: Parity tolerance: max |onnx - torch| <= PARITY_RTOL * max |torch|.
PARITY_RTOL = 1e-4
INPUT_NAME, OUTPUT_NAME = "input", "features"


@dataclass(frozen=True)
class ExportedModel:
    """An ONNX file, verified against its sidecar."""

    onnx_path: Path
    sidecar: dict

    @property
    def spec(self) -> BackboneSpec:
        return BackboneSpec.from_dict(self.sidecar["spec"])

    @property
    def onnx_sha256(self) -> str:
        return self.sidecar["onnx_sha256"]


def cache_key(spec: BackboneSpec, opset: int) -> str:
    """Hash of everything that determines the exported graph."""
    import torch

    blob = json.dumps({"spec": spec.to_dict(), "opset": opset, "torch": torch.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def export_onnx(
    spec: BackboneSpec, model, models_dir: str | Path = "models_onnx", opset: int = DEFAULT_OPSET
) -> ExportedModel:
    """Export ``model`` (a feature extractor for ``spec``) to ONNX, or reuse a valid cached export.

    Parameters
    ----------
    spec : BackboneSpec
        The spec ``model`` implements (weights sha256 included).
    model : torch.nn.Module
        Feature extractor in eval mode.
    models_dir : path
        Where ``<spec.name>.onnx`` and its ``.json`` sidecar go.
    opset : int
        ONNX opset.

    Raises
    ------
    BackboneError
        When the export fails, ``onnx.checker`` rejects it or parity fails.
    """
    models_dir = Path(models_dir)
    onnx_path = models_dir / f"{spec.name.replace(':', '-')}.onnx"  # timm:NAME: no colon in a file name
    side_path = onnx_path.with_suffix(".json")
    key = cache_key(spec, opset)
    cached = _cached(onnx_path, side_path, key)
    if cached is not None:
        log.info("reusing ONNX export %s", onnx_path)
        return cached
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_name(onnx_path.name + f".tmp{os.getpid()}")
    try:
        exporter = _export(model, spec, tmp, opset)
        _check(tmp)
        max_diff, scale = parity(model, tmp, spec)
    except BackboneError:
        tmp.unlink(missing_ok=True)
        raise
    import onnx
    import torch

    sidecar = {
        "format": "featx-onnx-sidecar/1",
        "spec": spec.to_dict(),
        "weights_sha256": spec.weights_sha256,
        "onnx_sha256": sha256_file(tmp),
        "opset": opset,
        "exporter": exporter,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "parity": {"max_abs_diff": max_diff, "output_scale": scale, "rtol": PARITY_RTOL},
        "versions": {"featx": __version__, "torch": torch.__version__, "onnx": onnx.__version__},
        "cache_key": key,
    }
    os.replace(tmp, onnx_path)
    side_tmp = side_path.with_name(side_path.name + ".tmp")
    side_tmp.write_text(json.dumps(sidecar, indent=2))
    os.replace(side_tmp, side_path)
    log.info("exported %s (parity max diff %.2e at output scale %.2e)", onnx_path, max_diff, scale)
    return ExportedModel(onnx_path, sidecar)


def _cached(onnx_path: Path, side_path: Path, key: str) -> ExportedModel | None:
    if not (onnx_path.is_file() and side_path.is_file()):
        return None
    try:
        sidecar = json.loads(side_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if sidecar.get("cache_key") != key:
        log.info("%s was exported from other inputs; exporting again", onnx_path)
        return None
    if sha256_file(onnx_path) != sidecar.get("onnx_sha256"):
        log.warning("%s does not match the sha256 in its sidecar (corrupt or replaced); exporting again", onnx_path)
        return None
    return ExportedModel(onnx_path, sidecar)


def _export(model, spec: BackboneSpec, path: Path, opset: int) -> str:
    """Write the ONNX file with a dynamic batch axis; returns which exporter succeeded.

    The exporters' own step-by-step chatter goes to the log (INFO), not the user's terminal.
    """
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _export_quiet(model, spec, path, opset)
        finally:
            if chatter.getvalue().strip():
                log.info("ONNX exporter output for %s:\n%s", spec.name, chatter.getvalue().strip())


def _export_quiet(model, spec: BackboneSpec, path: Path, opset: int) -> str:
    import torch

    x = torch.zeros((2, *spec.input_shape), dtype=torch.float32)
    common = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset)
    try:
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=True,
            external_data=False,
            verbose=False,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            **common,
        )
        return "torch.export"
    except Exception as exc:  # the dynamo exporter rejects some Python control flow; TorchScript often copes
        log.info("torch.export-based ONNX export failed (%s); trying the TorchScript exporter", exc)
    try:
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            **common,
        )
        return "torchscript"
    except Exception as exc:
        raise BackboneError(f"ONNX export of {spec.name} failed: {exc}") from None


def _check(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise BackboneError(f"onnx.checker rejected the export {path}: {exc}") from None


def parity(model, onnx_path: Path, spec: BackboneSpec, batch: int = 3, seed: int = 0) -> tuple[float, float]:
    """Compare ONNX Runtime (CPU) with eager torch on a seeded random batch.

    ``batch`` differs from the export's example batch, so the dynamic batch axis is exercised.

    Returns
    -------
    max_abs_diff, output_scale : float

    Raises
    ------
    BackboneError
        When ``max_abs_diff > PARITY_RTOL * output_scale`` or the output shape is wrong.
    """
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(seed).standard_normal((batch, *spec.input_shape)).astype(np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {INPUT_NAME: x})[0]
    if out.shape != (batch, spec.feature_dim) or ref.shape != out.shape:
        raise BackboneError(
            f"{spec.name}: output shape {out.shape} (torch {ref.shape}), expected {(batch, spec.feature_dim)}."
        )
    diff = float(np.abs(out - ref).max())
    scale = float(np.abs(ref).max())
    if not diff <= PARITY_RTOL * max(scale, np.finfo(np.float32).tiny):
        raise BackboneError(
            f"{spec.name}: ONNX output differs from torch by {diff:.3g} (output scale {scale:.3g}, allowed "
            f"{PARITY_RTOL:g} of it). Try another --opset, or report the backbone."
        )
    return diff, scale
