"""Lesion crops in physical space: a point in millimetres -> a cube of the volume resampled to a model's grid.

Every point is kept in LPS millimetres, the convention of DICOM, ITK and SimpleITK (x to the patient's left, y to
the posterior, z to the superior). A seed point says its own convention, never guessed:

- ``lps``: world millimetres as DICOM, ITK, SimpleITK and 3D Slicer's "LPS" export write them;
- ``ras``: world millimetres as NIfTI tools, nibabel and 3D Slicer's default write them (x and y negated);
- ``voxel``: zero-based ``(i, j, k)`` indices along the file's first, second and third axes (ITK/NIfTI order,
  ``i`` the fastest), fractions allowed.

A :class:`VolumeRecipe` is a model's input recipe: array size, spacing, the direction each array axis increases
toward (MONAI's ``axcodes``, e.g. ``SPL``: axis 0 to the superior, 1 to the posterior, 2 to the left), the
interpolation, the value outside the volume, and the intensity transform. :func:`crop` resamples, with SimpleITK,
the volume onto a grid of that size, spacing and orientation centred on the point (one resampling, whatever the
file's spacing and direction cosines), pads outside the volume, then applies the intensity transform.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from featx.config import Choice
from featx.errors import ImageReadError

SEED_SPACES = Choice("seed_space", ("lps", "ras", "voxel"))
#: the LPS direction each axis code points to
_AXCODE = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "S": (0, 0, 1), "I": (0, 0, -1)}


@dataclass(frozen=True)
class VolumeRecipe:
    """How a 3D network's input is made from a volume around a point.

    Attributes
    ----------
    size : tuple of 3 int
        Voxels along the array axes, in the order the network takes them.
    spacing : tuple of 3 float
        Millimetres per voxel along the same axes.
    axcodes : str
        Where each array axis increases toward (``SPL``: superior, posterior, left: SimpleITK's array of an LPS image).
    intensity : dict
        ``{"kind": "linear", "subtract": a, "divide": b, "clip": [lo, hi] or None}``: ``(v - a) / b``, then clipped
        (CT in Hounsfield units); or ``{"kind": "zscore", "nonzero": bool}``: minus the mean, over the standard
        deviation, of the whole volume's voxels (non-zero ones only when ``nonzero``, zeros staying 0): MR.
    pad : float
        The stored value outside the volume, before the intensity transform (e.g. -1024 HU: air).
    interpolation : {'linear', 'bspline', 'nearest'}
    source : str
        Where the recipe comes from (the source's own preprocessing it reproduces).
    """

    size: tuple
    spacing: tuple
    axcodes: str = "SPL"
    intensity: dict | None = None
    pad: float = 0.0
    interpolation: str = "linear"
    source: str = ""

    def __post_init__(self):
        codes = self.axcodes.upper()
        axes = sorted(np.flatnonzero(_AXCODE[c])[0] for c in codes if c in _AXCODE)
        if len(codes) != 3 or axes != [0, 1, 2]:
            raise ValueError(f"axcodes {self.axcodes!r}: three of L/R, P/A, S/I, one per patient axis")

    @property
    def extent_mm(self) -> tuple:
        """The crop's side in millimetres along each array axis."""
        return tuple(float(n) * float(s) for n, s in zip(self.size, self.spacing))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size"], d["spacing"] = [int(v) for v in self.size], [float(v) for v in self.spacing]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VolumeRecipe:
        return cls(**{**d, "size": tuple(d["size"]), "spacing": tuple(d["spacing"])})

    def describe(self) -> str:
        """One line for the provenance."""
        mm = " x ".join(f"{v:g}" for v in self.extent_mm)
        sp = " x ".join(f"{v:g}" for v in self.spacing)
        it = self.intensity or {"kind": "none"}
        if it["kind"] == "linear":
            how = f"(v - {it['subtract']:g}) / {it['divide']:g}" + (
                f", clipped to {it['clip']}" if it.get("clip") else ""
            )
        elif it["kind"] == "zscore":
            how = "z-score over the volume's " + ("non-zero voxels" if it.get("nonzero") else "voxels")
        else:
            how = "values as stored"
        return (
            f"{mm} mm cube around the point, resampled ({self.interpolation}) to {sp} mm, array axes {self.axcodes}, "
            f"outside the volume {self.pad:g}; intensity {how}" + (f"; recipe of {self.source}" if self.source else "")
        )


def to_lps(point, space: str, image) -> np.ndarray:
    """``point`` (3 numbers in ``space``) as LPS millimetres on ``image`` (a SimpleITK image; voxels need it)."""
    SEED_SPACES.check(space)
    p = np.asarray(point, float)
    if space == "lps":
        return p
    if space == "ras":
        return p * np.array([-1.0, -1.0, 1.0])
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in p]), float)


def continuous_index(image, lps) -> np.ndarray:
    """Continuous ``(i, j, k)`` voxel index of an LPS point on ``image``."""
    return np.asarray(image.TransformPhysicalPointToContinuousIndex([float(v) for v in lps]), float)


def inside(image, lps) -> bool:
    """Whether the LPS point lies within the volume (its voxels' extent: half a voxel beyond the outer centres)."""
    idx = continuous_index(image, lps)
    return bool(np.all(idx >= -0.5) and np.all(idx <= np.asarray(image.GetSize(), float) - 0.5))


def mask_centroid(mask, label: int | None = None) -> np.ndarray | None:
    """LPS centroid of ``mask``'s voxels (all non-zero, or those equal to ``label``); None when there are none."""
    import SimpleITK as sitk

    a = sitk.GetArrayViewFromImage(mask)
    where = np.argwhere(a != 0 if label is None else a == label)  # (z, y, x) rows
    if not len(where):
        return None
    ijk = where.mean(axis=0)[::-1]
    return np.asarray(mask.TransformContinuousIndexToPhysicalPoint([float(v) for v in ijk]), float)


def output_grid(recipe: VolumeRecipe, centre_lps) -> tuple:
    """``(size, spacing, direction, origin)`` of the SimpleITK image whose array is the recipe's, centred on the point.

    SimpleITK's array reverses the image axes, so the recipe's array axis 0 is the image's z axis.
    """
    cols = [np.asarray(_AXCODE[c], float) for c in recipe.axcodes.upper()[::-1]]  # image x, y, z
    direction = np.stack(cols, axis=1)  # column j: the LPS direction of image axis j
    size = [int(v) for v in recipe.size[::-1]]
    spacing = np.asarray(recipe.spacing[::-1], float)
    origin = np.asarray(centre_lps, float) - direction @ (spacing * (np.asarray(size) - 1) / 2.0)
    return size, tuple(spacing), tuple(direction.flatten()), tuple(origin)


_INTERPOLATORS = {"linear": "sitkLinear", "bspline": "sitkBSpline", "nearest": "sitkNearestNeighbor"}


def resample_around(image, recipe: VolumeRecipe, centre_lps) -> np.ndarray:
    """The recipe's grid around ``centre_lps`` sampled from ``image`` (float32, array axes as the recipe's)."""
    import SimpleITK as sitk

    size, spacing, direction, origin = output_grid(recipe, centre_lps)
    f = sitk.ResampleImageFilter()
    f.SetSize(size)
    f.SetOutputSpacing(spacing)
    f.SetOutputDirection(direction)
    f.SetOutputOrigin(origin)
    f.SetInterpolator(getattr(sitk, _INTERPOLATORS[recipe.interpolation]))
    f.SetDefaultPixelValue(float(recipe.pad))
    f.SetOutputPixelType(sitk.sitkFloat32)
    return sitk.GetArrayFromImage(f.Execute(image)).astype(np.float32, copy=False)


def volume_stats(array: np.ndarray, intensity: dict | None) -> tuple[float, float] | None:
    """The per-volume (mean, std) a z-score recipe needs, else None."""
    if not intensity or intensity["kind"] != "zscore":
        return None
    v = array[array != 0] if intensity.get("nonzero") else array
    if v.size == 0:
        return 0.0, 1.0
    std = float(v.std(dtype=np.float64))
    return float(v.mean(dtype=np.float64)), std if std > 0 else 1.0


def apply_intensity(x: np.ndarray, intensity: dict | None, stats: tuple | None = None) -> np.ndarray:
    """The recipe's intensity transform on a resampled crop (``stats``: the whole volume's, for ``zscore``)."""
    if not intensity:
        return x
    if intensity["kind"] == "linear":
        x = (x - np.float32(intensity["subtract"])) / np.float32(intensity["divide"])
        if intensity.get("clip"):
            lo, hi = intensity["clip"]
            x = np.clip(x, lo, hi)
        return x.astype(np.float32, copy=False)
    mean, std = stats
    out = (x - np.float32(mean)) / np.float32(std)
    if intensity.get("nonzero"):
        out = np.where(x != 0, out, np.float32(0))
    return out.astype(np.float32, copy=False)


def crop(image, recipe: VolumeRecipe, centre_lps, *, stats=None, where: str = "") -> np.ndarray:
    """The network input ``(1, *recipe.size)`` float32 around ``centre_lps`` (LPS mm) of ``image``.

    Raises
    ------
    ImageReadError
        The point lies outside the volume (``where`` names the row).
    """
    if not inside(image, centre_lps):
        lo = np.asarray(image.TransformContinuousIndexToPhysicalPoint([-0.5] * 3))
        hi = np.asarray(image.TransformContinuousIndexToPhysicalPoint([n - 0.5 for n in image.GetSize()]))
        box = ", ".join(f"{min(a, b):.1f}..{max(a, b):.1f}" for a, b in zip(lo, hi))
        pt = ", ".join(f"{v:.1f}" for v in centre_lps)
        raise ImageReadError(
            f"{where or 'the row'}: the lesion centre (LPS {pt} mm) lies outside the volume (LPS x, y, z in {box} "
            "mm): check the seed's coordinates and its seed_space (lps, ras or voxel)."
        )
    x = resample_around(image, recipe, centre_lps)
    return apply_intensity(x, recipe.intensity, stats)[None]
