"""Sample -> 8-bit RGB PIL image, whatever the source: a 2D image file, a DICOM file, or a slice of a volume.

Volumes are cached (a few at a time, thread-safe) because consecutive samples are
usually slices of the same volume, and each volume is windowed once as a whole.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from featx.errors import ImageReadError
from featx.images.intensity import Window, check_policy, choose_window
from featx.images.readers import is_volume_path, read_2d_image, read_volume
from featx.images.volume import Volume


class SampleReader:
    """Callable ``reader(sample) -> PIL.Image`` (RGB, 8-bit).

    Parameters
    ----------
    window : str
        Intensity policy for volumes and DICOM (see :mod:`featx.images.intensity`).
    cache_volumes : int
        How many decoded volumes to keep.
    keep_grey : bool
        Return grey images as ``L`` (see :func:`featx.images.raster.read_image`).
    draft : int, optional
        Decode JPEG files at a reduced DCT scale, both sides still >= ``draft`` pixels
        (:func:`featx.images.raster.read_image`); not for rows with a ``crop`` box, which names full-size pixels.
    """

    def __init__(self, window: str = "auto", cache_volumes: int = 4, keep_grey: bool = False, draft: int | None = None):
        self.window = check_policy(window)
        self.keep_grey = keep_grey
        self.draft = draft
        self._cache: OrderedDict[Path, tuple[Volume, Window]] = OrderedDict()
        self._size = cache_volumes
        self._lock = threading.Lock()
        self._loading: dict[Path, threading.Lock] = {}

    def __getstate__(self) -> dict:  # for process workers: each builds its own cache and locks
        return {"window": self.window, "_size": self._size, "keep_grey": self.keep_grey, "draft": self.draft}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["window"], state["_size"], state["keep_grey"], state.get("draft"))

    def __call__(self, sample) -> Image.Image:
        """The sample's 8-bit image.

        Raises
        ------
        ImageReadError
            Unreadable file, a ``crop`` box outside the image, or a row of a multi-slice volume
            that names no slice (featx never guesses one).
        """
        path = Path(sample.path)
        if sample.slice is None and not is_volume_path(path):
            im = read_2d_image(path, self.keep_grey, self.draft if sample.crop is None else None)
            if sample.crop is None:
                return im
            check_crop(sample, im.height, im.width)
            r0, r1, c0, c1 = sample.crop
            return im.crop((c0, r0, c1, r1))
        volume, window = self._volume(path)
        axis = sample.axis or "axial"
        n = volume.n_slices(axis)
        if sample.slice is None and n > 1:
            raise ImageReadError(
                f"{path} is a volume of {n} {axis} slices and row {sample.sample_id!r} names no 'slice': add a "
                f"'slice' column (0..{n - 1}), or let 'featx manifest build --volumes ... --slices POLICY' "
                "write one row per slice."
            )
        plane = volume.plane(0 if sample.slice is None else sample.slice, axis)
        if sample.crop is not None:
            check_crop(sample, *plane.shape)
            r0, r1, c0, c1 = sample.crop
            plane = plane[r0:r1, c0:c1]
        im = Image.fromarray(window.apply(plane), mode="L")
        return im if self.keep_grey else im.convert("RGB")

    def _volume(self, path: Path) -> tuple[Volume, Window]:
        with self._lock:
            if path in self._cache:
                self._cache.move_to_end(path)
                return self._cache[path]
            loading = self._loading.setdefault(path, threading.Lock())
        with loading:  # one thread decodes a given volume; the others wait for it
            with self._lock:
                if path in self._cache:
                    return self._cache[path]
            volume = read_volume(path)
            entry = (volume, choose_window(self.window, volume.array, volume.file_window, str(path)))
            with self._lock:
                self._cache[path] = entry
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
                self._loading.pop(path, None)
            return entry


def pixel_digest(im) -> str:
    """sha256 of a decoded image's pixels (mode, size and bytes): equal for a file re-saved losslessly under another
    name or format. ``""`` for a constant image (a blank slice is no evidence that two samples are one image)."""
    lo, hi = im.getextrema() if im.mode in ("L", "I", "F", "I;16") else (0, 1)
    if lo == hi:
        return ""
    h = hashlib.sha256(f"{im.mode}:{im.size[0]}x{im.size[1]}:".encode())
    h.update(im.tobytes())
    return h.hexdigest()


def content_hash(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (a DICOM series) in name order; cached per file version."""
    path = Path(path)
    st = path.stat()
    return _hash(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)  # volumes: many slices share one file, hash it once
def _hash(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in Path(path).iterdir() if p.is_file()) if os.path.isdir(path) else [Path(path)]
    for f in files:
        if len(files) > 1:
            h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def check_crop(sample, height: int, width: int) -> None:
    """Refuse a crop box that leaves the image: Pillow would pad it with black, numpy would shrink it."""
    r0, r1, c0, c1 = sample.crop
    if r1 > height or c1 > width:
        raise ImageReadError(
            f"{sample.path}: the crop of row {sample.sample_id!r} (rows {r0}:{r1}, columns {c0}:{c1}) reaches "
            f"outside the image ({height} rows x {width} columns): fix the row's 'crop' (r0:r1,c0:c1, "
            "half-open pixel indices from the top-left corner)."
        )


def describe(window: str) -> str:
    """One line for provenance."""
    return f"2D files: as stored; volumes/DICOM: window '{window}', one window per volume; then grey->RGB"
