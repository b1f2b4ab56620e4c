"""Intensity windowing: volume/DICOM values (HU, MR units) -> 8-bit grey, by one recorded policy.

Policies (``--window``):

- ``auto``: the DICOM file's own WindowCenter/WindowWidth when present, else ``percentile``;
- ``file``: the file's WindowCenter/WindowWidth (an error when absent);
- ``brain``, ``lung``, ``abdomen``, ``bone``: CT presets (centre/width in HU, Radiopaedia's
  "Windowing (CT)": brain 40/80, lungs -600/1500, abdominal soft tissue 50/400, bone 400/1800);
- ``percentile`` or ``percentile:LO:HI``: clip to the LO..HI percentiles of the whole volume
  (default 0.5..99.5), so every slice of a volume shares one scale;
- ``minmax``: the volume's min..max.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featx.errors import ConfigError, ImageReadError, did_you_mean

PRESETS = {"brain": (40.0, 80.0), "lung": (-600.0, 1500.0), "abdomen": (50.0, 400.0), "bone": (400.0, 1800.0)}
DEFAULT_PERCENTILES = (0.5, 99.5)
POLICIES = ("auto", "file", "percentile", "minmax", *PRESETS)


@dataclass(frozen=True)
class Window:
    """A linear window: values ``lo..hi`` map to ``0..255``."""

    lo: float
    hi: float
    source: str

    def apply(self, a: np.ndarray) -> np.ndarray:
        """Map to uint8 (clipped); a flat window gives zeros."""
        if self.hi <= self.lo:
            return np.zeros(a.shape, dtype=np.uint8)
        scaled = (np.asarray(a, dtype=np.float64) - self.lo) * (255.0 / (self.hi - self.lo))
        return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def check_policy(policy: str) -> str:
    """Validate a ``--window`` value early; returns it unchanged."""
    name = policy.split(":", 1)[0]
    if name not in POLICIES:
        raise ConfigError(
            f"unknown value {policy!r}.{did_you_mean(name, POLICIES)} Choose auto, file, percentile[:LO:HI], "
            f"minmax or a CT preset ({', '.join(PRESETS)}).",
            "window",
        )
    if name == "percentile" and ":" in policy:
        _percentiles(policy)
    return policy


def _percentiles(policy: str) -> tuple[float, float]:
    parts = policy.split(":")[1:]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{policy!r}: expected percentile:LO:HI, e.g. percentile:1:99.", "window") from None
    if not 0 <= lo < hi <= 100:
        raise ConfigError(f"{policy!r}: need 0 <= LO < HI <= 100.", "window")
    return lo, hi


def choose_window(policy: str, volume: np.ndarray, file_window: tuple[float, float] | None, where: str) -> Window:
    """The window for a whole volume under ``policy``.

    Parameters
    ----------
    policy : str
        See the module docstring.
    volume : ndarray
        All voxel values (rescaled), used by ``percentile``/``minmax``.
    file_window : (centre, width) or None
        The DICOM file's own window.
    where : str
        File name for messages.
    """
    name = policy.split(":", 1)[0]
    if name in PRESETS:
        c, w = PRESETS[name]
        return Window(c - w / 2, c + w / 2, f"preset {name} (C={c:g}, W={w:g})")
    if name in ("auto", "file") and file_window is not None:
        c, w = file_window
        return Window(c - w / 2, c + w / 2, f"file WindowCenter/Width (C={c:g}, W={w:g})")
    if name == "file":
        raise ImageReadError(
            f"{where}: window 'file', but the file has no WindowCenter/WindowWidth. Use a preset or percentile."
        )
    if name == "minmax":
        return Window(float(volume.min()), float(volume.max()), "volume min..max")
    lo_p, hi_p = _percentiles(policy) if ":" in policy else DEFAULT_PERCENTILES
    lo, hi = np.percentile(volume, [lo_p, hi_p])
    if hi <= lo and volume.max() > volume.min():  # sparse content (a vessel tree, a binary volume): min..max
        return Window(
            float(volume.min()), float(volume.max()), f"volume min..max (percentiles {lo_p:g}..{hi_p:g} were equal)"
        )
    return Window(float(lo), float(hi), f"volume percentiles {lo_p:g}..{hi_p:g}")
