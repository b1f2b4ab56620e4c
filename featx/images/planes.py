"""2.5D inputs for 2D networks: three planes of a volume as the three channels of one 8-bit RGB image.

- ``orthogonal``: the axial, coronal and sagittal planes through a lesion's centre (its seed, or its mask's
  centroid), resampled to isotropic pixels (the volume's finest spacing), so each plane is square in millimetres
  (``plane_mm`` a side). Each plane is shown as radiologists read it: axial with the patient's anterior at the top
  and left on the right; coronal and sagittal with the superior at the top.
- ``adjacent``: the slice and its two neighbours along the slice axis (``k - 1``, ``k``, ``k + 1``; the border slice
  repeated at the volume's ends), at the volume's own pixels; a lesion row uses the slice through its centre.

Intensities are windowed once per volume (the ``--window`` policy), as for single slices.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from featx.config import Choice
from featx.errors import ImageReadError
from featx.images.crop3d import VolumeRecipe, continuous_index, inside, resample_around
from featx.images.intensity import check_policy, choose_window
from featx.images.lesion import LesionLoader
from featx.images.loader import check_crop
from featx.images.readers import read_volume
from featx.images.sitk import to_sitk

PLANES = Choice("planes", ("none", "orthogonal", "adjacent"))
DEFAULT_PLANE_MM = 64.0
#: axis codes of each plane's (1, rows, columns) grid: rows then columns grow toward the 2nd and 3rd letters
_ORTHOGONAL = (("axial", "SPL"), ("coronal", "PIL"), ("sagittal", "LIP"))


def describe(mode: str, plane_mm: float) -> str:
    """One line for the provenance."""
    if mode == "orthogonal":
        return (
            f"2.5D: axial, coronal and sagittal planes through the lesion centre as R, G, B; {plane_mm:g} mm square, "
            "resampled (linear) to isotropic pixels of the volume's finest spacing"
        )
    return "2.5D: slices k-1, k, k+1 along the slice axis as R, G, B (border slice repeated)"


class PlaneReader:
    """Callable ``reader(sample) -> PIL.Image`` (RGB, 8-bit): a sample's three planes (see the module docstring)."""

    def __init__(self, mode: str, window: str = "auto", plane_mm: float = DEFAULT_PLANE_MM, cache_volumes: int = 4):
        PLANES.check(mode)
        if mode == "none":
            raise ValueError("PlaneReader needs orthogonal or adjacent")
        self.mode, self.window, self.plane_mm = mode, check_policy(window), float(plane_mm)
        self._size = cache_volumes
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._centres = LesionLoader({"size": [1, 1, 1], "spacing": [1, 1, 1]}, cache_volumes)

    def __getstate__(self) -> dict:
        return {"mode": self.mode, "window": self.window, "plane_mm": self.plane_mm, "size": self._size}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["mode"], state["window"], state["plane_mm"], state["size"])

    def __call__(self, sample) -> Image.Image:
        vol, image, window, low = self._volume(Path(sample.path))
        if self.mode == "orthogonal":
            planes = self._orthogonal(sample, image, low)
        else:
            planes = self._adjacent(sample, vol, image)
        return Image.fromarray(np.stack([window.apply(p) for p in planes], axis=-1), mode="RGB")

    def _orthogonal(self, sample, image, background: float) -> list[np.ndarray]:
        if sample.slice is not None or not sample.lesion:
            raise ImageReadError(
                f"row {sample.sample_id!r}: --planes orthogonal needs a lesion row (a volume with a 'mask' or a "
                "'seed', no 'slice'): 'featx manifest build --volumes ... --unit lesion' writes them"
            )
        centre = self._centres.centre(sample, image)
        where = f"row {sample.sample_id!r} ({Path(sample.path).name})"
        if not inside(image, centre):
            raise ImageReadError(f"{where}: the lesion centre lies outside the volume: check its seed and seed_space.")
        step = float(min(image.GetSpacing()))
        n = max(1, int(round(self.plane_mm / step)))
        out = []
        for _, codes in _ORTHOGONAL:
            recipe = VolumeRecipe((1, n, n), (step, step, step), codes, pad=background)  # outside: the lowest value
            out.append(resample_around(image, recipe, centre)[0])
        return out

    def _adjacent(self, sample, vol, image) -> list[np.ndarray]:
        axis = sample.axis or "axial"
        n = vol.n_slices(axis)
        if sample.slice is not None:
            k = sample.slice
        elif sample.lesion:
            centre = self._centres.centre(sample, image)
            idx = continuous_index(image, centre)  # (i, j, k) along the file's x, y, z
            k = int(round(idx[2 - vol.slice_axis(axis)]))
            if not 0 <= k < n:
                raise ImageReadError(f"row {sample.sample_id!r}: the lesion centre lies outside the volume.")
        else:
            raise ImageReadError(
                f"row {sample.sample_id!r}: --planes adjacent needs a 'slice' (or a lesion row with a mask or seed)"
            )
        planes = [vol.plane(min(max(i, 0), n - 1), axis) for i in (k - 1, k, k + 1)]
        if sample.crop is not None:
            check_crop(sample, *planes[0].shape)
            r0, r1, c0, c1 = sample.crop
            planes = [p[r0:r1, c0:c1] for p in planes]
        return planes

    def _volume(self, path: Path):
        with self._lock:
            if path in self._cache:
                self._cache.move_to_end(path)
                return self._cache[path]
        vol = read_volume(path)
        window = choose_window(self.window, vol.array, vol.file_window, str(path))
        entry = (vol, to_sitk(vol), window, float(vol.array.min()))
        with self._lock:
            self._cache[path] = entry
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return entry
