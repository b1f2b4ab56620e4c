"""2D raster files (PNG, JPEG, TIFF, BMP) through Pillow -> an 8-bit RGB image, by one recorded channel policy.

Grey images go into 3-channel ImageNet networks by replicating the grey channel
(``CHANNEL_POLICY``). 16-bit and float images are scaled per image from their
min..max to 0..255 before that. Both policies are written into every feature
set's provenance.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from featx.errors import ImageReadError
from featx.images.volume import Volume

CHANNEL_POLICY = "grey->RGB by replication; alpha dropped; 16-bit/float min-max scaled per image to 0..255"
#: Pillow refuses larger images (a decompression-bomb guard); FEATX_MAX_IMAGE_PIXELS raises it, 0 lifts it
MAX_PIXELS_ENV = "FEATX_MAX_IMAGE_PIXELS"
if os.environ.get(MAX_PIXELS_ENV, "").strip().isdigit():
    Image.MAX_IMAGE_PIXELS = int(os.environ[MAX_PIXELS_ENV]) or None
FRAMES = "featx_frames"  # info key: how many frames the file had (only the first is read)


def read_image(path: str | Path, keep_grey: bool = False, draft: int | None = None) -> Image.Image:
    """Read an image file as an 8-bit RGB PIL image.

    Parameters
    ----------
    path : str or Path
        PNG, JPEG, TIFF or BMP file.
    keep_grey : bool
        Return grey images as 8-bit ``L`` (the replication to RGB left to the
        :class:`~featx.images.preprocess.Preprocessor`, which gives the same numbers
        at a third of the resampling cost).
    draft : int, optional
        JPEG only: decode at the smallest DCT scale (1/2, 1/4, 1/8) that keeps both sides >= ``draft``
        pixels (Pillow's ``draft``). Several times faster for large files; other numbers than a full
        decode and resize, so featx records it in the feature set's identity (``--jpeg-draft``).

    Raises
    ------
    ImageReadError
        When the file is missing, empty, truncated or not an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            if draft and im.format == "JPEG":
                im.draft(im.mode, (draft, draft))
            im.load()
            out = to_rgb8(im, keep_grey)
            out.info[FRAMES] = getattr(im, "n_frames", 1)
            return out
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(_too_large(path, exc)) from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{path}: cannot decode image ({exc})") from None


def _too_large(path: Path, exc: Exception) -> str:
    return (
        f"{path}: {exc} If the file is yours and trusted, allow it: set {MAX_PIXELS_ENV} to a larger number "
        f"of pixels (0: no limit) in the environment, e.g. '{MAX_PIXELS_ENV}=0 featx ...'."
    )


def image_notes(im: Image.Image, path) -> str:
    """What to know about an image that decodes but may not carry what the user thinks ("" when nothing).

    An animated file (only its first frame is used), a tiny image (upscaled to the network's input), or
    a constant one (its features describe no content).
    """
    notes = []
    frames = im.info.get(FRAMES, 1)
    if frames > 1:
        notes.append(f"{Path(path).name} has {frames} frames: only the first is used (give one file per frame)")
    if min(im.size) < 8:
        notes.append(f"{Path(path).name} is {im.size[0]}x{im.size[1]} pixels: upscaled, it carries almost no detail")
    extrema = im.getextrema()
    bands = [extrema] if im.mode in ("L", "I", "F") else list(extrema)
    if all(lo == hi for lo, hi in bands):
        value = bands[0][0] if len(bands) == 1 else tuple(lo for lo, _ in bands)
        notes.append(f"every pixel of {Path(path).name} is {value}: a constant image, its features describe no content")
    return "; ".join(notes)


def to_rgb8(im: Image.Image, keep_grey: bool = False) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB following :data:`CHANNEL_POLICY` (grey stays ``L`` if ``keep_grey``)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        scaled = np.zeros_like(a) if hi <= lo else (a - lo) * (255.0 / (hi - lo))
        im = Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
    if im.mode == "RGB" or (keep_grey and im.mode == "L"):
        return im
    if keep_grey and im.mode == "LA":
        return im.convert("L")  # alpha dropped, as for RGBA
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    return im.convert("RGB")


def grey_values(path: str | Path, mask: bool = False) -> np.ndarray:
    """A 2D file's grey values as stored (16-bit kept): colour becomes luma, or, for a ``mask``, is refused.

    Raises
    ------
    ImageReadError
        Missing or undecodable file, or a colour mask (a label image has one channel).
    """
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("1", "L", "P", "I", "F") or im.mode.startswith("I;16"):
                return np.array(im)
            if mask:
                raise ImageReadError(
                    f"mask {path} is a {im.mode} colour image; save it as a one-channel label image "
                    "(0 background, 1 lesion)."
                )
            return np.array(im.convert("L"))
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(_too_large(path, exc)) from None
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as exc:
        raise ImageReadError(f"{path}: cannot read image ({exc})") from None


def read_values(path: str | Path) -> Volume:
    """A 2D file's grey values (:func:`grey_values`) as a one-slice Volume in pixel units."""
    a = grey_values(path)
    return Volume(a[None], (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), Path(path))
