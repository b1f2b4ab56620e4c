"""Volume-level CSV (volumes + masks) -> 2D slice samples, with geometry checks and selection policies.

Each chosen slice becomes a sample with the stable id ``subject/sequence/file#slice``
(absent parts left out) that carries its volume, mask, slice index, axis and an
optional crop box, so ``extract`` and ``radiomics`` see the same samples.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path

from featx.dataset.expanding import expand_each
from featx.dataset.manifest import Manifest, Sample
from featx.errors import ManifestError
from featx.images.dicom import is_dicom_file
from featx.images.readers import VOLUME, read_volume, suffixes
from featx.images.slicing import SlicePolicy, bbox, mask_areas, parse_policy, select_slices
from featx.images.volume import AXES, Volume, geometry_mismatch

log = logging.getLogger(__name__)


def slice_id(volume: Sample, index: int, per_mask: bool = False) -> str:
    """``subject/sequence/file#slice`` (parts that are absent are left out).

    ``per_mask``: the volume is listed once per mask (one ROI each), so ``@mask`` is added (the tag its
    row's id has, ``file@mask``, or the mask's file name).
    """
    name = volume.path.name
    if per_mask and volume.mask is not None:
        tag = volume.sample_id.split("@", 1)[1] if "@" in volume.sample_id else volume.mask.name
        name = f"{name}@{tag}"
    parts = [p for p in (volume.subject, volume.sequence) if p] + [name]
    return "/".join(parts) + f"#{index}"


def expand_volumes(
    volumes: Manifest,
    policy: str | SlicePolicy,
    axis: str = "axial",
    crop_margin: int | None = None,
    label_value: int | None = None,
    progress: bool = True,
    skipped: list | None = None,
) -> Manifest:
    """Expand volume samples into slice samples.

    Parameters
    ----------
    volumes : Manifest
        One row per volume: ``path`` (NIfTI/NRRD/MHA file, DICOM file or series folder),
        optional ``mask``, ``label``, ``subject``, ``sequence``, ``split``.
    policy : str or SlicePolicy
        ``all``, ``mask``, ``top:K``, ``min-area:A``, ``around-max:N``.
    axis : {'axial', 'coronal', 'sagittal'}
        Slice axis, in each image's own orientation.
    crop_margin : int, optional
        Crop each slice to the mask's bounding box grown by this many pixels (the
        slice's own lesion, or the whole volume's lesion for slices without one).
    label_value : int, optional
        Use only this label of the mask (default: any non-zero voxel).
    progress : bool
        Show a progress bar.
    skipped : list, optional
        When given, volumes that cannot be sliced are appended here as ``(path, reason)``
        and left out, instead of failing the whole build.

    Raises
    ------
    ManifestError
        Listing, in one message, every volume whose mask is missing, empty, or off the
        image grid (naming both files and the differing fields), or that cannot be read.
    """
    policy = parse_policy(policy) if isinstance(policy, str) else policy
    AXES.check(axis)
    if crop_margin is not None and crop_margin < 0:
        raise ManifestError("--crop-margin must be >= 0 pixels.")
    rows_per_image = Counter(v.path for v in volumes)
    return expand_each(
        volumes,
        lambda vol: _expand_one(vol, policy, axis, crop_margin, label_value, rows_per_image[vol.path] > 1),
        title=f"slicing volumes ({policy})",
        cannot="cannot be sliced",
        nothing=f"The slice policy {policy} selected no slice in any volume.",
        skipped=skipped,
        progress=progress,
    )


def _expand_one(
    vol: Sample, policy: SlicePolicy, axis: str, crop_margin, label_value, per_mask: bool = False
) -> list[Sample]:
    needs_mask = policy.needs_mask or crop_margin is not None
    if needs_mask and vol.mask is None:
        raise ManifestError(f"{vol.path}: slice policy {policy} (or cropping) needs a mask, and this row has none")
    image = read_volume(vol.path)
    mask: Volume | None = None
    if vol.mask is not None:
        mask = read_volume(vol.mask)
        diffs = geometry_mismatch(image, mask)
        if diffs:
            raise ManifestError(f"mask {vol.mask} does not match image {vol.path}: {'; '.join(diffs)}")
    for note in image.notes:
        log.warning("%s: %s", vol.path, note)
    k = image.slice_axis(axis)
    n = image.array.shape[k]
    areas = None
    if mask is not None:
        areas = mask_areas(mask.array, k, label_value)
        if needs_mask and areas.sum() == 0:
            what = f"label {label_value}" if label_value is not None else "any label"
            raise ManifestError(f"{vol.mask}: empty mask ({what}): no lesion to select slices from")
    chosen = select_slices(policy, n, areas)
    volume_box = None
    if crop_margin is not None:
        lesion = mask.array != 0 if label_value is None else mask.array == label_value
        volume_box = bbox(lesion.any(axis=k), crop_margin)
    samples = []
    for i in chosen:
        crop = None
        if crop_margin is not None:
            plane = mask.plane(i, axis)
            plane = plane != 0 if label_value is None else plane == label_value
            crop = bbox(plane, crop_margin) or volume_box
        samples.append(replace(vol, sample_id=slice_id(vol, i, per_mask), slice=i, axis=axis, crop=crop))
    return samples


VOLUME_SUFFIXES = suffixes(VOLUME)
MASK_TAGS = ("label", "labels", "mask", "seg", "segmentation")


def volumes_from_folder(folder: str | Path) -> Manifest:
    """Volume rows from a folder: volume files and DICOM series folders, masks paired by name.

    A file whose name ends in ``_label``, ``_mask``, ``_seg`` or ``_segmentation`` (before
    the suffix) is the mask of the volume with the same base name (``brain1_image.nrrd`` +
    ``brain1_label.nrrd``, ``ct.nii.gz`` + ``ct_seg.nii.gz``). The subject is that base name
    (the folder name for a DICOM series). When the volumes sit in class sub-folders
    (``DIR/<label>/...``), the sub-folder is the label.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(f"Volume folder not found: {folder}.")

    def split_name(p: Path) -> tuple[str, str]:
        name = p.name
        for suf in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
            if name.lower().endswith(suf):
                name = name[: -len(suf)]
                break
        base, _, tag = name.rpartition("_")
        return (base, tag.lower()) if base else (name, "")

    images, masks = {}, {}
    if any(is_dicom_file(f) for f in folder.iterdir() if f.is_file()):  # the folder itself is one series
        images[(folder.parent, folder.name)] = folder
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES):
            base, tag = split_name(p)
            key = (p.parent, base)
            if tag in MASK_TAGS:
                masks[key] = p
            else:
                images[(p.parent, base if tag in ("image", "img", "") else f"{base}_{tag}")] = p
        elif p.is_dir() and any(is_dicom_file(f) for f in p.iterdir() if f.is_file()):
            images[(p.parent, p.name)] = p
    samples = []
    for (parent, base), path in sorted(images.items(), key=lambda kv: str(kv[1])):
        rel = path.relative_to(folder) if path != folder else Path(folder.name)
        label = rel.parts[0] if len(rel.parts) > 1 else None
        samples.append(
            Sample(
                sample_id=rel.as_posix(),
                path=path.resolve(),
                label=label,
                subject=base,
                mask=masks[(parent, base)].resolve() if (parent, base) in masks else None,
            )
        )
    if not samples:
        raise ManifestError(f"{folder}: no volumes found ({', '.join(VOLUME_SUFFIXES)} files or DICOM series folders).")
    return Manifest(samples, source=folder)


def build_from_volumes(
    volumes: str | Path,
    policy: str,
    out: str | Path,
    skip_bad: bool = False,
    unit: str = "slice",
    lesions: dict | None = None,
    **kwargs,
) -> Manifest:
    """Expand a volume-level CSV, or a folder of volumes + masks, into a slice manifest written to ``out``; with
    ``unit`` ``lesion``, into one row per lesion (:func:`featx.dataset.lesions.expand_lesions`, given ``lesions``).

    With ``skip_bad``, volumes that cannot be sliced are left out and listed, with their
    reasons, in ``<out>.skipped.csv``.
    """
    volumes = Path(volumes)
    rows = volumes_from_folder(volumes) if volumes.is_dir() else Manifest.from_csv(volumes)
    skipped: list | None = [] if skip_bad else None
    if unit == "lesion":
        from featx.dataset.lesions import expand_lesions

        slices = expand_lesions(
            rows,
            Path(out).resolve().parent,
            label_value=kwargs.get("label_value"),
            progress=kwargs.get("progress", True),
            skipped=skipped,
            **(lesions or {}),
        )
    else:
        slices = expand_volumes(rows, policy, skipped=skipped, **kwargs)
    slices.to_csv(out)
    if skipped:
        report = Path(out).with_suffix(".skipped.csv")
        with open(report, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "reason"])
            w.writerows(skipped)
        log.warning("%d volume(s) skipped, listed with their reasons in %s", len(skipped), report)
    return slices


def build_from_folder(folder: str | Path, out: str | Path) -> Manifest:
    """Manifest of ``folder/<label>/**/<image>`` written to ``out``."""
    manifest = Manifest.from_folder(folder)
    manifest.to_csv(out)
    return manifest
