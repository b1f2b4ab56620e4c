"""NIfTI, NRRD and MetaImage volumes (and 2D files read as one-slice volumes) through SimpleITK."""

from __future__ import annotations

from pathlib import Path

from featx.errors import ImageReadError
from featx.images.volume import Volume


def read_sitk(path: Path) -> Volume:
    """A file SimpleITK reads, as a :class:`Volume` of its stored values (2D files: one slice).

    Raises
    ------
    ImageReadError
        Unreadable file, more than one component per pixel, or a dimension other than 2 or 3.
    """
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if "ERROR" in ln or "error" in ln), str(exc)[:200])
        raise ImageReadError(f"{path}: cannot read volume ({first[:200]})") from None
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(
            f"{path}: {img.GetNumberOfComponentsPerPixel()}-component images are not supported; save one channel."
        )
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)
    elif img.GetDimension() != 3:
        raise ImageReadError(f"{path}: {img.GetDimension()}D image; featx reads 2D and 3D volumes.")
    return Volume(sitk.GetArrayFromImage(img), img.GetSpacing(), img.GetOrigin(), img.GetDirection(), path)


def to_sitk(vol: Volume):
    """A :class:`Volume` as a SimpleITK image with its geometry (the array's own dtype)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(vol.array)
    img.SetSpacing(tuple(float(s) for s in vol.spacing))
    img.SetOrigin(tuple(float(o) for o in vol.origin))
    img.SetDirection(tuple(float(d) for d in vol.direction))
    return img
