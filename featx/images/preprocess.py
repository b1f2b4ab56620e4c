"""Backbone input preprocessing: resize, centre crop, scale, normalise -> float32 CHW.

This reproduces torchvision's ``ImageClassification`` preset (``weights.transforms()``)
on PIL images step by step, in numpy, so decoding workers never import torch:
shorter side resized to ``resize_size`` with PIL's antialiased filter, centre crop
``crop_size`` (zero padding when the image is smaller), ``/255``, then
``(x - mean) / std`` in float32. ``tests/test_preprocess.py`` checks equality with
torchvision itself.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from featx.config import Choice

_PIL_INTERPOLATION = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
#: The resize filters a user may choose instead of the weights' own (``interpolation``)
INTERPOLATIONS = Choice("interpolation", ("bilinear", "bicubic"))
#: How an image is fitted to the square input: ``crop`` (shorter side resized, centre crop: the
#: weights' own), ``pad`` (the whole image, aspect kept, letterboxed with black: MedMNIST+'s protocol,
#: safe for lesions at the border), ``stretch`` (both sides resized, aspect lost)
FITS = Choice("fit", ("crop", "pad", "stretch"))


class Preprocessor:
    """Callable turning an RGB PIL image into the backbone's float32 ``(3, H, W)`` input.

    Parameters
    ----------
    resize_size : int
        Target length of the shorter side.
    crop_size : int
        Side of the square centre crop.
    interpolation : str
        One of ``nearest``, ``bilinear``, ``bicubic``, ``lanczos``.
    mean, std : sequence of 3 floats
        Per-channel normalisation on the 0..1 scale.
    fit : {'crop', 'pad', 'stretch'}
        :data:`FITS`. ``stretch`` resizes both sides to ``resize_size`` and centre-crops ``crop_size``
        (timm's ``squash`` crop mode; a pure stretch when they are equal); ``pad`` ignores ``resize_size``.
    """

    def __init__(self, resize_size: int, crop_size: int, interpolation: str, mean, std, fit: str = "crop"):
        if interpolation not in _PIL_INTERPOLATION:
            raise ValueError(f"interpolation must be one of {sorted(_PIL_INTERPOLATION)}, got {interpolation!r}")
        FITS.check(fit)
        self.fit = fit
        self.resize_size = int(resize_size)
        self.crop_size = int(crop_size)
        self.resample = _PIL_INTERPOLATION[interpolation]
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    @classmethod
    def from_spec(cls, spec) -> Preprocessor:
        """Build from a :class:`featx.backbones.spec.BackboneSpec`."""
        return cls(spec.resize_size, spec.crop_size, spec.interpolation, spec.mean, spec.std, spec.fit)

    def __call__(self, im: Image.Image) -> np.ndarray:
        a = self.crop(im)
        # grey: resampled once and broadcast to 3 channels, value for value what RGB replication gives
        x = (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).astype(np.float32) / np.float32(255.0)
        return (x - self.mean) / self.std

    def pixels(self, im: Image.Image) -> np.ndarray:
        """The resized, centre-cropped 8-bit image as ``(H, W, 3)`` uint8 (grey replicated), for an engine that
        scales and normalises inside its compiled graph (:meth:`__call__`'s numbers, computed there)."""
        a = self.crop(im)
        return np.broadcast_to(a[..., None], (*a.shape, 3)) if a.ndim == 2 else a

    def crop(self, im: Image.Image) -> np.ndarray:
        """The resized, centre-cropped 8-bit image, ``(H, W)`` grey or ``(H, W, 3)``, before scaling."""
        if im.mode not in ("RGB", "L"):
            raise ValueError(f"expected an RGB or L (grey) image, got mode {im.mode}")
        if self.fit == "pad":
            return np.asarray(self._letterbox(im), dtype=np.uint8)
        if self.fit == "stretch":
            r = self.resize_size
            im = im if im.size == (r, r) else im.resize((r, r), self.resample)
            return np.asarray(self._center_crop(im), dtype=np.uint8)
        return np.asarray(self._center_crop(self._resize(im)), dtype=np.uint8)

    def _letterbox(self, im: Image.Image) -> Image.Image:
        """The whole image, its longer side resized to the input side, centred on a black square."""
        c = self.crop_size
        w, h = im.size
        scale = c / max(w, h)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        if (new_w, new_h) != (w, h):
            im = im.resize((new_w, new_h), self.resample)
        canvas = Image.new(im.mode, (c, c))
        canvas.paste(im, ((c - new_w) // 2, (c - new_h) // 2))
        return canvas

    def _resize(self, im: Image.Image) -> Image.Image:
        w, h = im.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = self.resize_size, int(self.resize_size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        if (new_w, new_h) == (w, h):
            return im
        return im.resize((new_w, new_h), self.resample)

    def _center_crop(self, im: Image.Image) -> Image.Image:
        c = self.crop_size
        w, h = im.size
        if w < c or h < c:  # torchvision pads with zeros before cropping
            pad_l, pad_t = max(0, (c - w) // 2), max(0, (c - h) // 2)
            canvas = Image.new(im.mode, (max(w, c), max(h, c)))
            canvas.paste(im, (pad_l, pad_t))
            im, (w, h) = canvas, canvas.size
        top = int(round((h - c) / 2.0))
        left = int(round((w - c) / 2.0))
        return im.crop((left, top, left + c, top + c))
