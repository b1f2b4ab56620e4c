"""Volumes: one array with its geometry, and the checks that an image and its mask share a voxel grid.

The readers that make them (SimpleITK for NIfTI/NRRD/MHA, pydicom for DICOM) are in
:mod:`featx.images.readers`. Arrays are indexed ``(z, y, x)`` as SimpleITK returns them; spacing, origin and
direction follow SimpleITK's (x, y, z) conventions. A 2D slice along the axial,
coronal or sagittal axis is chosen in the image's own orientation: the array axis
whose direction is closest to the patient's S-I (axial), A-P (coronal) or L-R
(sagittal) axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featx.config import Choice
from featx.errors import ImageReadError, ManifestError

AXES = Choice("axis", ("axial", "coronal", "sagittal"))
_PATIENT_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}  # physical x (L-R), y (A-P), z (S-I)
#: Geometry tolerances for image/mask agreement (mm for spacing/origin; cosines for direction)
TOL_MM, TOL_DIR = 1e-3, 1e-4


@dataclass
class Volume:
    """Array ``(z, y, x)`` plus geometry and window hints."""

    array: np.ndarray
    spacing: tuple
    origin: tuple
    direction: tuple
    path: Path
    file_window: tuple | None = None
    modality: str = ""
    notes: list = field(default_factory=list)

    @property
    def size(self) -> tuple:
        """(x, y, z) voxel counts, SimpleITK order."""
        return tuple(int(n) for n in self.array.shape[::-1])

    def slice_axis(self, axis: str) -> int:
        """Array axis (0, 1 or 2 of ``array``) that slices this volume along ``axis``."""
        AXES.check(axis)
        d = np.asarray(self.direction, float).reshape(3, 3)  # column j = physical direction of index axis j (x,y,z)
        index_axis = int(np.argmax(np.abs(d[_PATIENT_AXIS[axis], :])))
        return 2 - index_axis  # index axis x/y/z -> array axis 2/1/0

    def n_slices(self, axis: str) -> int:
        return int(self.array.shape[self.slice_axis(axis)])

    def plane(self, index: int, axis: str) -> np.ndarray:
        """The 2D slice ``index`` along ``axis``."""
        k = self.slice_axis(axis)
        n = self.array.shape[k]
        if not 0 <= index < n:
            raise ImageReadError(f"{self.path}: slice {index} out of range (the {axis} axis has {n} slices).")
        return np.take(self.array, index, axis=k)


def geometry_mismatch(image: Volume, mask: Volume) -> list[str]:
    """Fields in which ``mask`` does not sit on ``image``'s voxel grid (empty when they agree)."""
    diffs = []
    if image.size != mask.size:
        diffs.append(f"size {image.size} vs {mask.size}")
    for name, tol in (("spacing", TOL_MM), ("origin", TOL_MM), ("direction", TOL_DIR)):
        a, b = np.asarray(getattr(image, name), float), np.asarray(getattr(mask, name), float)
        if a.shape != b.shape or not np.allclose(a, b, atol=tol, rtol=0):
            fmt = lambda v: "(" + ", ".join(f"{x:.4g}" for x in v) + ")"  # noqa: E731
            diffs.append(f"{name} {fmt(a)} vs {fmt(b)}")
    return diffs


def check_geometry(image: Volume, mask: Volume) -> None:
    """Raise ManifestError naming both files and each differing field."""
    diffs = geometry_mismatch(image, mask)
    if diffs:
        raise ManifestError(
            f"mask {mask.path} does not match image {image.path}: {'; '.join(diffs)}. Resample the mask onto "
            "the image grid (nearest neighbour) or fix the pairing."
        )
