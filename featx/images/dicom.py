"""DICOM via pydicom: single files (2D or multi-frame) and series folders (extension-less files too).

Values are rescaled (RescaleSlope/Intercept, e.g. to HU) and MONOCHROME1 is inverted
so that higher always means brighter. Slices of a series are ordered by their position
along the slice normal (ImagePositionPatient . normal), falling back to InstanceNumber.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from featx.errors import ImageReadError
from featx.images.volume import Volume


def is_dicom_file(path: Path) -> bool:
    """True for files with the DICOM preamble marker ``DICM`` at byte 128."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def read_dicom(path: str | Path) -> Volume:
    """A DICOM file or series folder as a :class:`Volume` (z, y, x) of float32 values.

    Raises
    ------
    ImageReadError
        No DICOM files, several series in one folder, missing pixel data, or a
        compressed transfer syntax no installed handler can decode.
    """
    import pydicom

    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file() and is_dicom_file(p))
    if not files:
        raise ImageReadError(f"{path}: no DICOM files found (files need the 'DICM' marker).")
    try:
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot parse DICOM ({exc}).") from None
    series = defaultdict(list)
    for f, h in zip(files, headers):
        series[str(h.get("SeriesInstanceUID", "?"))].append((f, h))
    if len(series) > 1:
        raise ImageReadError(
            f"{path}: {len(series)} DICOM series in one folder ({', '.join(s[-12:] for s in series)}). "
            "Put each series in its own folder and list each folder as a volume."
        )
    items = _ordered(next(iter(series.values())))
    gap = _check_slices(path, items)
    planes, positions = [], []
    for f, _ in items:
        ds = _read_pixels(f)
        planes.append(_rescaled(ds, f))
        positions.append(ds.get("ImagePositionPatient"))
    arr = np.concatenate([p if p.ndim == 3 else p[None] for p in planes], axis=0)
    first = items[0][1]
    spacing, origin, direction, uniform = _geometry(first, items)
    notes = [] if uniform else [f"{IRREGULAR} (gaps between slices differ by more than 1%{gap})"]
    return Volume(
        arr.astype(np.float32),
        spacing,
        origin,
        direction,
        path=path,
        file_window=_file_window(first),
        modality=str(first.get("Modality", "")),
        notes=notes,
    )


def _positions(items) -> list[float] | None:
    """Each slice's position along the slice normal (mm), or None when the headers do not give them all."""
    n = _normal(items[0][1])
    if n is None or any(h.get("ImagePositionPatient") is None for _, h in items):
        return None
    return [float(np.dot(n, np.array(h.ImagePositionPatient, float))) for _, h in items]


def _ordered(items):
    """Sort by position along the slice normal; InstanceNumber when positions are missing."""
    pos = _positions(items)
    if pos is not None:
        return [it for _, it in sorted(zip(pos, items), key=lambda pi: pi[0])]
    return sorted(items, key=lambda it: int(it[1].get("InstanceNumber", 0) or 0))


IRREGULAR = "non-uniform slice spacing"


def _check_slices(path: Path, items) -> str:
    """Refuse a series with a duplicated slice; name the files around the largest gap (a missing slice?).

    Returns "" or ``; the largest, G between A and B, where the others are S: a missing slice?``.
    """
    if len(items) < 2:
        return ""
    where, unit = _positions(items), " mm"
    if where is None:
        where, unit = [float(h.get("InstanceNumber", 0) or 0) for _, h in items], " (InstanceNumber)"
    gaps = np.diff(where)
    step = float(np.median(gaps[gaps > 1e-6])) if (gaps > 1e-6).any() else 0.0
    for i, gap in enumerate(gaps):
        if gap <= 1e-3 * max(step, 1e-3):
            raise ImageReadError(
                f"{path}: {items[i][0].name} and {items[i + 1][0].name} are the same slice (position "
                f"{where[i]:g}{unit}): a duplicated slice. Remove one of them from the series folder."
            )
    i = int(np.argmax(gaps))
    if step and gaps[i] > 1.5 * step:
        return (
            f"; the largest, {gaps[i]:g}{unit} between {items[i][0].name} and {items[i + 1][0].name}, where the "
            f"others are {step:g}: a missing slice?"
        )
    return ""


def _normal(h):
    iop = h.get("ImageOrientationPatient")
    if iop is None:
        return None
    r, c = np.array(iop[:3], float), np.array(iop[3:], float)
    return np.cross(r, c)


def _read_pixels(f: Path):
    import pydicom

    ds = pydicom.dcmread(f)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImageReadError(
            f"{f}: DICOM file without pixel data (a report or structured set?). Remove it from the manifest."
        )
    return ds


def _rescaled(ds, f: Path) -> np.ndarray:
    try:
        a = ds.pixel_array.astype(np.float32)
    except Exception as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(ts, "name", str(ts))
        raise ImageReadError(
            f"{f}: cannot decode pixel data ({name}): {str(exc).splitlines()[0][:200]}. For compressed DICOM "
            "install a pydicom handler, e.g. 'pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg'."
        ) from None
    if int(ds.get("SamplesPerPixel", 1)) == 3:  # colour (single or multi-frame): mean of R, G, B
        a = a.mean(axis=-1)
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    a = a * slope + intercept
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        a = a.max() + a.min() - a  # MONOCHROME1: low values are bright; invert so high = bright
    return a


def _file_window(h) -> tuple[float, float] | None:
    c, w = h.get("WindowCenter"), h.get("WindowWidth")
    if c is None or w is None:
        return None
    return _first(c), _first(w)


def _first(v) -> float:
    """First value of a possibly multi-valued DICOM number."""
    try:
        return float(v[0])
    except TypeError:
        return float(v)


def _geometry(first, items):
    """(spacing xyz, origin xyz, direction 3x3 row-major, uniform spacing?) in SimpleITK's conventions."""
    ps = [float(v) for v in first.get("PixelSpacing", [1.0, 1.0])]
    iop = first.get("ImageOrientationPatient")
    r, c = (np.array(iop[:3], float), np.array(iop[3:], float)) if iop is not None else (np.eye(3)[0], np.eye(3)[1])
    n = np.cross(r, c)
    pos = [it[1].get("ImagePositionPatient") for it in items]
    uniform = True
    if len(items) > 1 and all(p is not None for p in pos):
        gaps = np.diff([np.dot(n, np.array(p, float)) for p in pos])
        dz = float(np.median(gaps)) or 1.0
        uniform = bool(np.all(np.abs(gaps - dz) <= 0.01 * abs(dz)))
    else:
        dz = float(first.get("SliceThickness", 1.0) or 1.0)
    origin = tuple(float(v) for v in (pos[0] if pos[0] is not None else (0, 0, 0)))
    direction = tuple(np.column_stack([r, c, n]).ravel().tolist())
    return (ps[1], ps[0], dz), origin, direction, uniform
