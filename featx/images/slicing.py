"""Slice selection policies: which 2D slices of a volume become samples.

``all``; ``mask`` (lesion present); ``top:K`` (K largest lesion areas); ``min-area:A``
(A pixels, or a fraction of the volume's largest lesion slice when A < 1 or ``A%``);
``around-max:N`` (N consecutive slices centred on the largest lesion slice, shifted
to stay inside the volume).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featx.errors import ConfigError, did_you_mean

POLICIES = ("all", "mask", "top", "min-area", "around-max")


@dataclass(frozen=True)
class SlicePolicy:
    """A parsed ``--slices`` value."""

    kind: str
    value: float | None = None
    fraction: bool = False

    @property
    def needs_mask(self) -> bool:
        return self.kind != "all"

    def __str__(self) -> str:
        if self.value is None:
            return self.kind
        v = f"{self.value * 100:g}%" if self.fraction else f"{self.value:g}"
        return f"{self.kind}:{v}"


def parse_policy(text: str) -> SlicePolicy:
    """``all``, ``mask``, ``top:K``, ``min-area:A`` or ``around-max:N`` -> SlicePolicy."""
    kind, _, arg = text.strip().partition(":")
    usage = "Use all, mask, top:K, min-area:PIXELS (or min-area:30%), around-max:N."
    if kind not in POLICIES:
        raise ConfigError(f"unknown slice policy {text!r}.{did_you_mean(kind, POLICIES)} {usage}", "slices")
    if kind in ("all", "mask"):
        if arg:
            raise ConfigError(f"slice policy {kind!r} takes no argument. {usage}", "slices")
        return SlicePolicy(kind)
    try:
        if kind == "min-area":
            fraction = arg.endswith("%") or float(arg.rstrip("%")) < 1
            value = float(arg.rstrip("%")) / (100 if arg.endswith("%") else 1)
            if value <= 0 or (fraction and value > 1):
                raise ValueError
            return SlicePolicy(kind, value, fraction)
        value = int(arg)
        if value < 1:
            raise ValueError
        return SlicePolicy(kind, float(value))
    except ValueError:
        raise ConfigError(f"bad slice policy {text!r}: {kind} needs a positive number. {usage}", "slices") from None


def select_slices(policy: SlicePolicy, n_slices: int, areas: np.ndarray | None = None) -> list[int]:
    """Slice indices (ascending) chosen by ``policy``.

    Parameters
    ----------
    policy : SlicePolicy
    n_slices : int
        Slices along the chosen axis.
    areas : ndarray, optional
        Lesion pixels per slice (required unless the policy is ``all``).
    """
    if policy.kind == "all":
        return list(range(n_slices))
    areas = np.asarray(areas)
    lesion = np.flatnonzero(areas > 0)
    if policy.kind == "mask":
        return lesion.tolist()
    if policy.kind == "top":
        order = sorted(lesion, key=lambda i: (-areas[i], i))  # ties: lower index first
        return sorted(int(i) for i in order[: int(policy.value)])
    if policy.kind == "min-area":
        threshold = policy.value * areas.max() if policy.fraction else policy.value
        return [int(i) for i in lesion if areas[i] >= threshold]
    n = int(policy.value)  # around-max
    if len(lesion) == 0:
        return []
    if n >= n_slices:
        return list(range(n_slices))
    start = min(max(int(np.argmax(areas)) - n // 2, 0), n_slices - n)
    return list(range(start, start + n))


def mask_areas(mask: np.ndarray, slice_axis: int, label_value: int | None = None) -> np.ndarray:
    """Lesion pixels per slice along ``slice_axis`` (any non-zero label, or only ``label_value``)."""
    m = mask != 0 if label_value is None else mask == label_value
    other = tuple(a for a in range(mask.ndim) if a != slice_axis)
    return m.sum(axis=other)


def bbox(mask2d: np.ndarray, margin: int) -> tuple[int, int, int, int] | None:
    """Half-open ``(r0, r1, c0, c1)`` around the non-zero pixels, grown by ``margin`` and clipped; None if empty."""
    rows, cols = np.flatnonzero(mask2d.any(axis=1)), np.flatnonzero(mask2d.any(axis=0))
    if len(rows) == 0:
        return None
    h, w = mask2d.shape
    return (
        max(int(rows[0]) - margin, 0),
        min(int(rows[-1]) + 1 + margin, h),
        max(int(cols[0]) - margin, 0),
        min(int(cols[-1]) + 1 + margin, w),
    )
