"""Exported fine-tuned backbones (``<arch>.ft-<run>``), found in the models folder by name.

``featx finetune --export RUN`` writes ``<arch>.ft-RUN.pt`` (the backbone's weights, the
architecture's own state-dict keys) and ``<arch>.ft-RUN.finetune.json`` (its spec and
provenance); ``featx extract --backbone <arch>.ft-RUN`` loads them from here.
"""

from __future__ import annotations

import json
from pathlib import Path

from featx.backbones.spec import BackboneSpec
from featx.backbones.timm_source import load_timm
from featx.backbones.weights import load_backbone, match_spec, sha256_file
from featx.errors import BackboneError

FORMAT = "featx-finetuned-backbone/1"


def is_finetuned_ref(name: str) -> bool:
    """True for ``arch.ft-RUN`` names."""
    return "." in name and name.split(".", 1)[1].startswith("ft-")


def entry_paths(name: str, models_dir: str | Path) -> tuple[Path, Path]:
    d = Path(models_dir)
    return d / f"{name}.pt", d / f"{name}.finetune.json"


def load_finetuned(name: str, models_dir: str | Path = "models_onnx"):
    """``(spec, feature module in eval mode, record)`` of an exported fine-tuned backbone.

    Raises
    ------
    BackboneError
        When the entry is missing, or its weights file changed since the export.
    """
    weights_path, record_path = entry_paths(name, models_dir)
    if not record_path.is_file() or not weights_path.is_file():
        raise BackboneError(
            f"No fine-tuned backbone {name!r} in {models_dir} (expected {record_path.name} and "
            f"{weights_path.name}). Export one with 'featx finetune ... --export RUN', or pass "
            "--models-dir where it was exported."
        )
    record = json.loads(record_path.read_text())
    if record.get("format") != FORMAT:
        raise BackboneError(f"{record_path}: not a featx fine-tuned backbone entry.")
    if sha256_file(weights_path) != record["weights_sha256"]:
        raise BackboneError(
            f"{weights_path}: sha256 differs from {record_path.name} (the file changed since the "
            "export). Export the fine-tuned model again."
        )
    spec = BackboneSpec.from_dict(record["spec"])
    if spec.source == "timm":  # timm's own state-dict keys, loaded as a --weights file of that architecture
        features = load_timm(record["arch"], str(weights_path), pool=spec.pool, input_size=spec.crop_size)[1]
    else:
        features = load_backbone(record["arch"], str(weights_path))[1]
    return spec, match_spec(features, spec), record
