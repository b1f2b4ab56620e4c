"""One radiomics case: a sample -> SimpleITK image and mask -> pyradiomics -> named float64 values.

Runs in the worker processes of :mod:`featx.radiomics.run`. Everything a case can get
wrong becomes a :class:`CaseError` naming the files (missing mask label, geometry
mismatch, a slice out of range, a feature that raised); values pyradiomics returns
as NaN, or features it skips, are named in the case's note, never left silent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.errors import FeatxError
from featx.images.dicom import IRREGULAR
from featx.images.loader import check_crop, content_hash
from featx.images.raster import grey_values
from featx.images.readers import is_volume_path, read_volume
from featx.images.sitk import to_sitk
from featx.images.volume import check_geometry

_NARROW_INTS = ("8-bit", "16-bit")  # SimpleITK pixel type names pyradiomics' binning can overflow on


class CaseError(FeatxError):
    """A case that cannot be computed, with the reason."""


@dataclass
class CaseOutput:
    """What a worker sends back: pyradiomics' features and messages, and the files' hashes."""

    where: str
    features: dict  # name -> float, in pyradiomics' order
    messages: list  # (level, text) of pyradiomics' warnings and errors for this case
    image_sha: str
    mask_sha: str


@dataclass
class CaseResult:
    values: np.ndarray  # float64, in the feature set's column order
    image_sha: str
    mask_sha: str
    note: str = ""


def to_row(out: CaseOutput, names: list[str]) -> CaseResult:
    """A worker's output -> the feature set's row (raises CaseError, see :func:`vector`)."""
    values, note = vector(out.features, out.messages, names, out.where)
    return CaseResult(values, out.image_sha, out.mask_sha, note)


class _Capture(logging.Handler):
    """Collects pyradiomics' warnings and errors during one case."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def compute_features(extractor, image, mask) -> tuple[dict, list[tuple[int, str]]]:
    """``extractor.execute`` with pyradiomics' log captured; returns (feature -> value, (level, message)s)."""
    logger = logging.getLogger("radiomics")
    cap = _Capture()
    logger.addHandler(cap)
    try:
        out = extractor.execute(image, mask)
    finally:
        logger.removeHandler(cap)
    features = {k: float(v) for k, v in out.items() if not k.startswith("diagnostics_")}
    return features, [(r.levelno, r.getMessage()) for r in cap.records]


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else text


def _short(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def vector(result: dict, messages: list[tuple[int, str]], names: list[str], where: str) -> tuple[np.ndarray, str]:
    """pyradiomics' dict -> values in ``names`` order, and a note naming NaN or missing features.

    Raises
    ------
    CaseError
        When a feature raised inside pyradiomics (it logs the traceback and returns NaN),
        or the case produced features the feature set does not have.
    """
    raised = [text for level, text in messages if level >= logging.ERROR and "FAILED" in text]
    values = np.array([float(result[n]) if n in result else np.nan for n in names], dtype=np.float64)
    bad = [n for n, v in zip(names, values) if n in result and not np.isfinite(v)]
    if raised:
        why = _last_line(raised[0])
        raise CaseError(f"{where}: pyradiomics raised while computing {_short(bad) or 'a feature'}: {why}")
    known = set(names)
    extra = [k for k in result if k not in known]
    if extra:
        raise CaseError(
            f"{where}: pyradiomics returned features this feature set does not have ({_short(extra)}); "
            "its settings changed? Use another --name or --overwrite."
        )
    notes = []
    if bad:
        notes.append(f"pyradiomics returned NaN/inf for {len(bad)} feature(s): {_short(bad)}")
    missing = [n for n in names if n not in result]
    if missing:
        said = "; ".join(dict.fromkeys(text for level, text in messages if level >= logging.WARNING))
        notes.append(
            f"pyradiomics skipped {len(missing)} feature(s): {_short(missing)}" + (f" ({said[:300]})" if said else "")
        )
    return values, "; ".join(notes)


# --------------------------------------------------------------------------------------------- loading
def _widen(img):
    """8/16-bit integer images -> int32: pyradiomics' bin edges overflow on e.g. uint8 (max + 2 x bin width)."""
    import SimpleITK as sitk

    name = img.GetPixelIDTypeAsString()
    if "integer" in name and name.startswith(_NARROW_INTS):
        return sitk.Cast(img, sitk.sitkInt32)
    return img


def _plane_image(plane: np.ndarray, spacing):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(plane))
    img.SetSpacing(tuple(float(s) for s in spacing))
    return img


def _volume_plane(vol, sample) -> tuple[np.ndarray, tuple]:
    """The sample's 2D plane of ``vol`` (raw values) and its in-plane spacing (columns, rows)."""
    if sample.slice is None:
        if vol.array.shape[0] != 1:
            raise CaseError(
                f"{vol.path}: a volume of {vol.array.shape[0]} slices has no slice index in the "
                "manifest; --mode 2d needs one row per slice (featx manifest build --volumes ... "
                "--slices ...), or use --mode 3d."
            )
        plane, k = vol.array[0], 0
    else:
        axis = sample.axis or "axial"
        plane, k = vol.plane(sample.slice, axis), vol.slice_axis(axis)
    if sample.crop is not None:
        check_crop(sample, *plane.shape)
        r0, r1, c0, c1 = sample.crop
        plane = plane[r0:r1, c0:c1]
    kept = [i for i in (2, 1, 0) if i != k]  # array axes left, as SimpleITK's (x, y) = (columns, rows)
    spacing = tuple(vol.spacing[2 - i] for i in kept)
    return plane, spacing


def load_case(sample, mode: str, auto_mask: str | None, label: int):
    """(image, mask) SimpleITK images for ``sample`` in ``mode``; the mask is checked to hold ``label``."""
    import SimpleITK as sitk

    path = Path(sample.path)
    mask_path = Path(sample.mask) if sample.mask else None
    native_2d = not is_volume_path(path) and sample.slice is None
    if mode == "3d":
        if native_2d or sample.slice is not None:
            raise CaseError(
                f"{sample.sample_id}: --mode 3d needs a volume per row, this row is a 2D "
                f"{'slice' if sample.slice is not None else 'image'}; use --mode 2d."
            )
        vol = read_volume(path)
        if vol.array.shape[0] == 1:
            raise CaseError(f"{path}: one slice only; use --mode 2d for 2D images.")
        irregular = [n for n in vol.notes if n.startswith(IRREGULAR)]
        if irregular:
            raise CaseError(f"{path}: 3D radiomics needs a regular grid, and {irregular[0]}; use --mode 2d on slices.")
        mvol = read_volume(mask_path) if mask_path else None
        if mvol is not None:
            check_geometry(vol, mvol)
        image = to_sitk(vol)
        mask = to_sitk(mvol) if mvol is not None else None
    elif native_2d:
        image = _plane_image(grey_values(path), (1.0, 1.0))
        mask = None
        if mask_path:
            m = grey_values(mask_path, mask=True) if not is_volume_path(mask_path) else read_volume(mask_path).array[0]
            if m.shape != sitk.GetArrayViewFromImage(image).shape:
                raise CaseError(
                    f"mask {mask_path} ({m.shape[1]}x{m.shape[0]}) does not match image {path} "
                    f"({image.GetWidth()}x{image.GetHeight()}); fix the pairing or resize the mask."
                )
            mask = _plane_image(m, (1.0, 1.0))
    else:
        vol = read_volume(path)
        plane, spacing = _volume_plane(vol, sample)
        image, mask = _plane_image(plane, spacing), None
        if mask_path:
            mvol = read_volume(mask_path)
            check_geometry(vol, mvol)
            mask = _plane_image(_volume_plane(mvol, sample)[0], spacing)
    image = _widen(image)
    if mask is None:
        mask = _auto_mask(image, auto_mask, label, sample)
    elif getattr(sample, "mask_label", None) is not None:
        mask = _one_lesion(mask, sample.mask_label, label, mask_path, sample)
    _check_label(mask, label, mask_path or path)
    return image, mask


def _one_lesion(mask, value: int, label: int, where, sample):
    """A lesion row's mask: its ``mask_label`` voxels as the region's ``label``, every other value background."""
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(mask)
    if not (arr == value).any():
        raise CaseError(f"mask {where} has no voxel of value {value} for row {sample.sample_id!r}: check 'mask_label'.")
    out = sitk.GetImageFromArray((arr == value).astype(np.int32) * int(label))
    out.CopyInformation(mask)
    return out


def _auto_mask(image, policy: str | None, label: int, sample):
    import SimpleITK as sitk

    if policy == "whole":
        arr = np.full(sitk.GetArrayViewFromImage(image).shape, label, dtype=np.int32)
    elif policy == "otsu":
        arr = (sitk.GetArrayFromImage(sitk.OtsuThreshold(image, 0, 1)) > 0).astype(np.int32) * label
    else:
        raise CaseError(
            f"{sample.sample_id}: no mask in the manifest; add a 'mask' column or choose --auto-mask whole or otsu."
        )
    mask = sitk.GetImageFromArray(arr)
    mask.CopyInformation(image)
    return mask


def _check_label(mask, label: int, where) -> None:
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(mask)
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        values = np.unique(arr)
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (" ..." if len(values) > 6 else "")
        raise CaseError(
            f"mask {where} is not a label map: it holds non-integer values ({shown}), like a probability map "
            "or an interpolated mask. Save it as an integer label image (0 background, 1 lesion), e.g. "
            "thresholded at 0.5, or pass --auto-mask."
        )
    if (arr == label).any():
        return
    found = [int(v) for v in np.unique(arr) if v != 0]  # only on failure: unique sorts every voxel
    raise CaseError(
        f"mask {where} has no voxel labelled {label} in this sample"
        + (
            f" (it has labels {found[:8]}): pass --label {found[0]}, or fix the mask."
            if found
            else " (it is empty): fix the mask or drop the row."
        )
    )


class CaseComputer:
    """Picklable ``computer(sample) -> CaseOutput``; builds its pyradiomics extractor once per process."""

    def __init__(self, params):
        self.params = params
        self._extractor = None

    def __getstate__(self) -> dict:
        return {"params": self.params}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["params"])

    def warm_up(self) -> None:
        """Import pyradiomics and build the extractor (worker start-up, while the main process prepares)."""
        if self._extractor is None:
            self._extractor = self.params.extractor()

    def __call__(self, sample) -> CaseOutput:
        p = self.params
        self.warm_up()
        label = int(p.settings.get("label", 1))
        image, mask = load_case(sample, p.mode, p.auto_mask, label)
        where = f"{sample.sample_id} ({sample.path})"
        try:
            features, messages = compute_features(self._extractor, image, mask)
        except (ValueError, RuntimeError, AssertionError, IndexError, MemoryError) as exc:
            raise CaseError(
                f"{where}: pyradiomics failed: {type(exc).__name__}: {_last_line(str(exc))[:300]}"
            ) from None
        mask_sha = content_hash(sample.mask) if sample.mask else ""
        return CaseOutput(where, features, messages, content_hash(sample.path), mask_sha)
