"""Images for training: decoded once to the network's 8-bit crop, batched, normalised, augmented.

Each sample is read (:class:`featx.images.loader.SampleReader`: files, DICOM, volume
slices) and resized/centre-cropped exactly as ``featx extract`` does. The 8-bit crops
are held in memory when they fit in ``cache_gb`` (then every fold and epoch reuses
them), otherwise each batch is decoded again by a thread pool. Augmentation runs on
the normalised batch tensor, training batches only: random flips, rotation, shift and
shear in one ``affine_grid``/``grid_sample`` call (the border is filled with 0, the
ImageNet mean colour after normalisation), then intensity jitter (contrast ``x * c``
and brightness ``x + b`` in units of the normalisation's std).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from featx.errors import FeatxError, short_list
from featx.extract.pipeline import failure_reason
from featx.images.loader import SampleReader
from featx.images.preprocess import Preprocessor


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation; all zero/False means none.

    Attributes
    ----------
    hflip, vflip : bool
        Random horizontal / vertical flips (probability 0.5).
    rotate : float
        Rotation drawn uniformly in +-``rotate`` degrees.
    shift : float
        Translation drawn uniformly in +-``shift`` of the image side, per axis.
    shear : float
        Horizontal shear drawn uniformly in +-``shear`` degrees.
    jitter : float
        Contrast factor in 1 +- ``jitter`` and brightness offset in +- ``jitter`` (std units).
    """

    hflip: bool = True
    vflip: bool = False
    rotate: float = 12.0
    shift: float = 0.0
    shear: float = 0.0
    jitter: float = 0.0

    def describe(self) -> str:
        parts = [
            p
            for p, on in (
                ("horizontal flips", self.hflip),
                ("vertical flips", self.vflip),
                (f"rotation +-{self.rotate:g} deg", self.rotate),
                (f"shift +-{self.shift:g}", self.shift),
                (f"shear +-{self.shear:g} deg", self.shear),
                (f"intensity jitter {self.jitter:g}", self.jitter),
            )
            if on
        ]
        return ", ".join(parts) or "none"

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(self, x, gen):
        """Augment the batch ``x`` (N, 3, H, W) with the torch generator ``gen``."""
        import torch
        import torch.nn.functional as F

        n = x.shape[0]
        u = lambda: torch.rand(n, generator=gen) * 2 - 1  # noqa: E731  (uniform in [-1, 1])
        if self.hflip:
            flip = torch.rand(n, generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.vflip:
            flip = torch.rand(n, generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-2), x)
        if self.rotate or self.shift or self.shear:
            a, s = u() * math.radians(self.rotate), u() * math.radians(self.shear)
            t = torch.stack([u(), u()], 1) * (2 * self.shift)  # grid units: the image spans [-1, 1]
            cos, sin, tan = torch.cos(a), torch.sin(a), torch.tan(s)
            theta = torch.stack(
                [torch.stack([cos, cos * tan - sin, t[:, 0]], 1), torch.stack([sin, sin * tan + cos, t[:, 1]], 1)], 1
            )
            grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid.to(x.device), mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.jitter:
            c = (1 + u() * self.jitter).to(x)[:, None, None, None]
            b = (u() * self.jitter).to(x)[:, None, None, None]
            x = x * c + b
        return x


class ImageBank:
    """8-bit crops of a manifest's samples, served as normalised float batches.

    Parameters
    ----------
    samples : sequence of Sample
    spec : BackboneSpec
        Input size, resize filter and normalisation.
    window : str
        Intensity policy for volumes/DICOM (as in ``featx extract``).
    cache_gb : float
        Hold the crops in memory up to this size; above it, decode per batch.
    workers : int, optional
        Decoding threads.
    """

    def __init__(self, samples, spec, window: str = "auto", cache_gb: float = 8.0, workers: int | None = None):
        self.samples = list(samples)
        self.pre = Preprocessor.from_spec(spec)
        self.reader = SampleReader(window, keep_grey=True)
        self.mean = np.asarray(spec.mean, np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(spec.std, np.float32).reshape(1, 3, 1, 1)
        self.workers = workers or min(8, os.cpu_count() or 1)
        need_gb = len(self.samples) * spec.crop_size**2 * 3 / 1e9
        self.cache: list | None = None
        if need_gb <= cache_gb:
            self.cache = self._decode(range(len(self.samples)))
        else:
            self._decode(range(len(self.samples)), keep=False)  # fail on unreadable samples before training

    def __len__(self) -> int:
        return len(self.samples)

    def _one(self, i: int):
        s = self.samples[i]
        try:
            return self.pre.crop(self.reader(s)), None
        except Exception as exc:  # any reader failure: name the sample, collect them all
            return None, (s.sample_id, failure_reason(exc, s))

    def _decode(self, index, keep: bool = True) -> list:
        with ThreadPoolExecutor(self.workers) as pool:
            got = list(pool.map(self._one, index))
        bad = [why for _, why in got if why is not None]
        if bad:
            raise FeatxError(
                f"{len(bad)} image(s) cannot be read for fine-tuning ({short_list([f'{i}: {w}' for i, w in bad])}); "
                "fix them or leave them out of the manifest ('featx manifest check' lists them)."
            )
        return [a for a, _ in got] if keep else []

    def crops(self, index) -> list:
        """The 8-bit crops of the samples ``index``."""
        return [self.cache[i] for i in index] if self.cache is not None else self._decode(index)

    def batch(self, index) -> np.ndarray:
        """Normalised float32 batch ``(N, 3, H, W)``."""
        crops = self.crops(index)
        chw = [np.broadcast_to(a, (3, *a.shape)) if a.ndim == 2 else a.transpose(2, 0, 1) for a in crops]
        return (np.stack(chw).astype(np.float32) / np.float32(255.0) - self.mean) / self.std
