"""Backbones: specs, the registry, weights, ONNX export and runtimes.

Importing this package registers the zoo (explicitly, below) without importing torch.
"""

from featx.backbones import zoo  # noqa: F401  (registers the architectures)
from featx.backbones.registry import get_entry, list_entries, register_backbone
from featx.backbones.spec import BackboneSpec

__all__ = ["BackboneSpec", "get_entry", "list_entries", "register_backbone"]
