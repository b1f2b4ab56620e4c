"""Test-time augmentation: features of an image and of its horizontal mirror, averaged (``tta='hflip'``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

HFLIP_PROVENANCE = "mean of the features of the image and of its horizontal mirror"


def with_tta(
    run: Callable[[np.ndarray], np.ndarray], tta: str, layout: str = "NCHW"
) -> Callable[[np.ndarray], np.ndarray]:
    """``run`` itself (``none``), or the mean of its features of each image and of its mirror (``hflip``),
    computed as one batch of 2n. ``layout``: the batch's, ``NCHW`` (float) or ``NHWC`` (8-bit pixels)."""
    if tta == "none":
        return run

    width = layout.index("W")

    def compute(x: np.ndarray) -> np.ndarray:
        y = run(np.concatenate([x, np.ascontiguousarray(np.flip(x, axis=width))]))
        n = len(x)
        return (y[:n] + y[n:]) / 2

    return compute
