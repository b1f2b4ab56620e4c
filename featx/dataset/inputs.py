"""What ``featx predict`` and ``featx gradcam`` take as input: one image, a folder of images, or a manifest."""

from __future__ import annotations

import logging
from pathlib import Path

from featx.dataset.manifest import IMAGE_SUFFIXES, Manifest, Sample
from featx.errors import FeatxError


def input_manifest(source: str | Path) -> Manifest:
    """One image file, a folder of images (flat, or class sub-folders), or a manifest CSV."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        return Manifest([Sample(sample_id=source.stem, path=source.resolve())], source=source)
    if source.is_dir() and not any(p.is_dir() for p in source.iterdir()):
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FeatxError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) to predict.")
        return Manifest([Sample(sample_id=p.name, path=p.resolve()) for p in files], source=source)
    if not source.exists():
        raise FeatxError(f"Input not found: {source}. Give an image, a folder of images or a manifest CSV.")
    manifest_log = logging.getLogger("featx.dataset.manifest")
    level = manifest_log.level
    manifest_log.setLevel(logging.ERROR)  # its 'no subject column' warning is about CV folds, not prediction
    try:
        return Manifest.load(source)
    finally:
        manifest_log.setLevel(level)
