"""One sample, the unit that gets one feature row, and the manifest columns that describe it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from featx.errors import short_list

#: Columns featx understands; ``path`` is the only required one.
COLUMNS = (
    "id",
    "path",
    "label",
    "subject",
    "sequence",
    "mask",
    "slice",
    "split",
    "axis",
    "crop",
    "mask_label",
    "seed",
    "seed_space",
)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    """One sample, the unit that gets one feature row: a 2D image, a slice of a volume, or a lesion of a volume.

    Attributes
    ----------
    sample_id : str
        Stable unique key of the sample (the row key in the store).
    path : Path
        Absolute path of the image file.
    label : str or None
        Class label as written in the manifest.
    subject : str or None
        Patient/animal id; cross-validation never splits a subject.
    sequence : str or None
        MRI sequence (T1, T2, FLAIR ...), when several exist per subject.
    mask : Path or None
        Lesion mask file.
    slice : int or None
        Slice index inside a volume.
    split : str or None
        Predefined split, one of ``train``, ``val``, ``test``.
    axis : str or None
        Slice axis of a volume sample (``axial`` when absent).
    crop : tuple of int or None
        ``(r0, r1, c0, c1)``: half-open pixel box of the slice to keep (CSV: ``r0:r1,c0:c1``).
    mask_label : int or None
        The mask value of this row's lesion when the mask holds several (None: every non-zero voxel).
    seed : tuple of 3 float or None
        A lesion's centre (CSV: ``x;y;z`` or ``x y z``), in ``seed_space``: 3D backbones crop around it.
    seed_space : {'lps', 'ras', 'voxel'} or None
        The seed's convention (:mod:`featx.images.crop3d`); required with a seed, never guessed.
    outcomes : tuple of (str, str)
        The manifest's other columns as (name, value) pairs: outcomes a fit can predict (``--value``, ``--time``,
        ``--event``), kept by the store beside the label.
    """

    sample_id: str
    path: Path
    label: str | None = None
    subject: str | None = None
    sequence: str | None = None
    mask: Path | None = None
    slice: int | None = None
    split: str | None = None
    axis: str | None = None
    crop: tuple | None = None
    mask_label: int | None = None
    seed: tuple | None = None
    seed_space: str | None = None
    outcomes: tuple = ()

    @property
    def lesion(self) -> bool:
        """A row of a whole lesion: a volume (or DICOM series) with no slice index, and a mask or a seed."""
        if self.slice is not None or (self.seed is None and self.mask is None):
            return False
        from featx.images.readers import is_volume_path

        return is_volume_path(self.path)


def missing_files(samples: Iterable[Sample]) -> str | None:
    """``"N file(s) not found, e.g. ..."`` for images/masks that do not exist (folders count: DICOM series)."""
    missing = list(dict.fromkeys(str(p) for s in samples for p in (s.path, s.mask) if p is not None and not p.exists()))
    return f"{len(missing)} file(s) not found, e.g. {short_list(missing)}" if missing else None
