"""Volumes: NIfTI/NRRD/MHA (SimpleITK) and DICOM series -> one array with its geometry.

Arrays are indexed ``(z, y, x)`` as SimpleITK returns them; spacing, origin and
direction follow SimpleITK's (x, y, z) conventions. A 2D slice along the axial,
coronal or sagittal axis is chosen in the image's own orientation: the array axis
whose direction is closest to the patient's S-I (axial), A-P (coronal) or L-R
(sagittal) axis.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featx.errors import ImageReadError, ManifestError

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
AXES = ("axial", "coronal", "sagittal")
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
        if axis not in AXES:
            raise ManifestError(f"Unknown slice axis {axis!r}; use one of {', '.join(AXES)}.")
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


def is_volume_path(path: Path) -> bool:
    """A volume file by suffix, or a folder (a DICOM series)."""
    name = path.name.lower()
    return path.is_dir() or name.endswith(VOLUME_SUFFIXES) or name.endswith(".dcm") or (
        path.is_file() and path.suffix == "" and _is_dicom(path))


def _is_dicom(path: Path) -> bool:
    from featx.images.dicom import is_dicom_file

    return is_dicom_file(path)


def read_volume(path: str | Path) -> Volume:
    """Read a NIfTI/NRRD/MHA file, a DICOM file or a DICOM series folder.

    Raises
    ------
    ImageReadError
        Missing or unreadable file, with the reason.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if path.is_dir() or path.name.lower().endswith(".dcm") or _is_dicom(path):
        from featx.images.dicom import read_dicom

        return read_dicom(path)
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if "ERROR" in ln or "error" in ln), str(exc)[:200])
        raise ImageReadError(f"{path}: cannot read volume ({first[:200]})") from None
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(f"{path}: {img.GetNumberOfComponentsPerPixel()}-component images are not supported; save one channel.")
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)
    elif img.GetDimension() != 3:
        raise ImageReadError(f"{path}: {img.GetDimension()}D image; featx reads 2D and 3D volumes.")
    return Volume(sitk.GetArrayFromImage(img), img.GetSpacing(), img.GetOrigin(), img.GetDirection(), path)


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
