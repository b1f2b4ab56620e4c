"""A lesion row -> a 3D network's input: the volume, the lesion's centre (a seed point, or its mask's centroid), and
the crop of :mod:`featx.images.crop3d`.

Volumes (as SimpleITK images, with the per-volume statistics a z-score recipe needs) and masks are cached a few at a
time: consecutive rows are often lesions of one volume.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from featx.errors import ImageReadError
from featx.images.crop3d import VolumeRecipe, crop, mask_centroid, to_lps, volume_stats
from featx.images.loader import content_hash
from featx.images.readers import read_volume
from featx.images.sitk import to_sitk


def not_a_lesion(sample, what: str = "a 3D backbone") -> str | None:
    """Why ``sample`` cannot be a row of ``what``, which takes lesions (None when it can)."""
    if sample.slice is not None:
        return (
            f"row {sample.sample_id!r} names slice {sample.slice}: {what} takes whole lesions (rows with a "
            "volume and a 'mask' or a 'seed'); write such rows with 'featx manifest build --volumes ... --unit lesion'"
        )
    if sample.seed is None and sample.mask is None:
        return (
            f"row {sample.sample_id!r} has neither a 'mask' nor a 'seed': {what} needs the lesion, so "
            "give its mask (and 'mask_label' when the mask holds several) or a 'seed' point with its 'seed_space'"
        )
    return None


class LesionLoader:
    """Picklable ``loader(sample) -> (input (1, D, H, W) float32, (image sha256, mask sha256), note, ("", ""))``.

    Parameters
    ----------
    recipe : dict
        The spec's :class:`~featx.images.crop3d.VolumeRecipe` as a dict.
    cache_volumes : int
        Decoded volumes (and masks) kept.
    """

    def __init__(self, recipe: dict, cache_volumes: int = 4):
        self.recipe_dict = recipe
        self.recipe = VolumeRecipe.from_dict(recipe)
        self._size = cache_volumes
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"recipe": self.recipe_dict, "size": self._size}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["recipe"], state["size"])

    def __call__(self, sample):
        why = not_a_lesion(sample)
        if why:
            raise ImageReadError(why)
        image, stats = self._read(Path(sample.path), stats=True)
        centre = self.centre(sample, image)
        x = crop(image, self.recipe, centre, stats=stats, where=f"row {sample.sample_id!r} ({Path(sample.path).name})")
        mask_sha = content_hash(sample.mask) if sample.mask is not None else ""
        return x, (content_hash(sample.path), mask_sha), "", ("", "")

    def centre(self, sample, image) -> np.ndarray:
        """The lesion's centre in LPS millimetres: the seed, else the centroid of the mask (its ``mask_label``)."""
        if sample.seed is not None:
            return to_lps(sample.seed, sample.seed_space, image)
        mask, _ = self._read(Path(sample.mask))
        centre = mask_centroid(mask, sample.mask_label)
        if centre is None:
            which = f"no voxel of value {sample.mask_label}" if sample.mask_label is not None else "no non-zero voxel"
            raise ImageReadError(
                f"{sample.mask}: {which} for row {sample.sample_id!r}: check the mask (and its 'mask_label')."
            )
        return centre

    def _read(self, path: Path, stats: bool = False):
        key = (path, stats)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        vol = read_volume(path)
        entry = (to_sitk(vol), volume_stats(vol.array, self.recipe.intensity) if stats else None)
        with self._lock:
            self._cache[key] = entry
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return entry
