"""Volume rows (volume + mask) -> lesion rows: one row per lesion, for 3D backbones, 2.5D planes and 3D radiomics.

A lesion is a mask value (each non-zero value of a multi-label mask, or the one ``label_value``), or, with
``components``, each connected component (26-connected) of at least ``min_voxels`` voxels. Components are written,
relabelled 1..K, to a mask file of their own (``<out folder>/lesion_masks/``), so that every row is a volume, a mask
and the ``mask_label`` of its lesion: the same rows for every extractor.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from featx.dataset.expanding import expand_each
from featx.dataset.manifest import Manifest, Sample
from featx.errors import ManifestError
from featx.images.readers import read_volume
from featx.images.volume import Volume, geometry_mismatch

log = logging.getLogger(__name__)


def lesion_id(volume: Sample, tag: str) -> str:
    """``subject/sequence/file@tag`` (parts that are absent are left out)."""
    parts = [p for p in (volume.subject, volume.sequence) if p] + [volume.path.name]
    return "/".join(parts) + f"@{tag}"


def expand_lesions(
    volumes: Manifest,
    out_dir: Path,
    *,
    label_value: int | None = None,
    components: bool = False,
    min_voxels: int = 1,
    progress: bool = True,
    skipped: list | None = None,
) -> Manifest:
    """One row per lesion of each volume row (see the module docstring).

    Raises
    ------
    ManifestError
        Every volume without a mask, with an empty mask (or no ``label_value``), or whose mask is off the image grid,
        in one message (unless ``skipped`` collects them).
    """
    if min_voxels < 1:
        raise ManifestError("--min-voxels must be >= 1.")
    return expand_each(
        volumes,
        lambda vol: _lesions_of(vol, Path(out_dir), label_value, components, min_voxels),
        title="finding lesions",
        cannot="give no lesion",
        nothing="no lesion found in any volume.",
        skipped=skipped,
        progress=progress,
    )


def _lesions_of(vol: Sample, out_dir: Path, label_value, components: bool, min_voxels: int) -> list[Sample]:
    if vol.mask is None:
        raise ManifestError(f"{vol.path}: lesion rows need a mask, and this row has none")
    image, mask = read_volume(vol.path), read_volume(vol.mask)
    diffs = geometry_mismatch(image, mask)
    if diffs:
        raise ManifestError(f"mask {vol.mask} does not match image {vol.path}: {'; '.join(diffs)}")
    values = [label_value] if label_value is not None else [int(v) for v in np.unique(mask.array) if v != 0]
    if not values or not np.any(mask.array == values[0]):
        what = f"no voxel of label {label_value}" if label_value is not None else "no non-zero voxel"
        raise ManifestError(f"{vol.mask}: {what}: no lesion")
    if not components:
        several = len(values) > 1 or label_value is not None
        return [
            replace(vol, sample_id=lesion_id(vol, f"label{v}"), mask_label=v if several else None, slice=None)
            for v in values
        ]
    return _components(vol, mask, values, out_dir, min_voxels)


def _components(vol: Sample, mask: Volume, values: list, out_dir: Path, min_voxels: int) -> list[Sample]:
    """Each connected component of each value, relabelled 1..K into a mask file of this volume's own."""
    from scipy import ndimage

    relabelled = np.zeros(mask.array.shape, np.uint16)
    k, small = 0, 0
    for v in values:
        parts, n = ndimage.label(mask.array == v, structure=np.ones((3, 3, 3), bool))
        sizes = np.bincount(parts.ravel())[1:]
        for j in np.flatnonzero(sizes >= min_voxels):
            k += 1
            relabelled[parts == j + 1] = k
        small += int(np.sum(sizes < min_voxels))
    if small:
        log.warning("%s: %d component(s) under %d voxels left out", vol.mask, small, min_voxels)
    if k == 0:
        raise ManifestError(f"{vol.mask}: no connected component of at least {min_voxels} voxels")
    path = _write_mask(relabelled, mask, vol, out_dir)
    return [
        replace(vol, sample_id=lesion_id(vol, f"lesion{j}"), mask=path, mask_label=j, slice=None)
        for j in range(1, k + 1)
    ]


def _write_mask(array: np.ndarray, like: Volume, vol: Sample, out_dir: Path) -> Path:
    import SimpleITK as sitk

    from featx.images.sitk import to_sitk

    folder = out_dir / "lesion_masks"
    folder.mkdir(parents=True, exist_ok=True)
    stem = "_".join(p for p in (vol.subject, vol.sequence, vol.path.name.split(".")[0]) if p)
    path = (folder / f"{stem}_components.nii.gz").resolve()
    sitk.WriteImage(to_sitk(replace(like, array=array)), str(path), True)
    return path
