"""What is present locally for a backbone (weights file, ONNX export), without importing torch."""

from __future__ import annotations

import os
from pathlib import Path

from featx.backbones.registry import BackboneEntry
from featx.backbones.spec import BackboneSpec
from featx.backbones.zoo import weights_filename


def torch_hub_dir() -> Path:
    """torch.hub's cache folder: ``$TORCH_HOME/hub`` (default ``$XDG_CACHE_HOME/torch/hub``)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def local_status(entry: BackboneEntry, spec: BackboneSpec, models_dir: str | Path) -> tuple[bool, bool]:
    """(default weights present locally, ONNX export of ``spec`` present in ``models_dir``)."""
    _, source = entry.imagenet_weights()
    if source.startswith(("http://", "https://")):
        have_weights = (torch_hub_dir() / "checkpoints" / weights_filename(source)).is_file()
    else:
        have_weights = Path(source).is_file()
    return have_weights, (Path(models_dir) / f"{spec.name}.onnx").is_file()
