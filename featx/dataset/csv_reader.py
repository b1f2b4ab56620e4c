"""Reading a manifest CSV: every problem of every row at once, named by its line.

Comma-separated (a ``;``, tab or ``|`` file is detected from its header); relative paths resolve
against the CSV's own folder; default ids are the path as written (``#slice`` added, ``@mask`` when
one image is listed once per mask).
"""

from __future__ import annotations

import csv
import logging
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from featx.dataset.sample import COLUMNS, SPLITS, Sample, missing_files
from featx.errors import ManifestError, did_you_mean, short_list
from featx.images.crop3d import SEED_SPACES
from featx.images.volume import AXES

log = logging.getLogger(__name__)


class ParsedCSV(NamedTuple):
    """A manifest CSV read: the rows that parsed, the CSV line of each, and every problem found."""

    samples: list[Sample]
    lines: list[int]
    problems: list[str]


_DELIMITERS = ",;\t|"


def _delimiter(csv_path: Path, first_line: str) -> str:
    """``,`` unless the header only parses with another delimiter (a ``;`` or tab export); said when used."""
    if "path" in [h.strip().lower() for h in first_line.split(",")]:
        return ","
    for d in _DELIMITERS[1:]:
        if "path" in [h.strip().strip('"').lower() for h in first_line.split(d)]:
            log.warning("%s: columns separated by %r, not commas: read with that delimiter", csv_path, d)
            return d
    return ","


def parse_csv(csv_path: Path, check_files: bool = True) -> ParsedCSV:
    """Read a manifest CSV, collecting every problem instead of stopping at the first.

    Comma-separated; a file whose header only parses with ``;``, tab or ``|`` is read with that
    delimiter (and said so). Problems name their CSV lines: rows with more cells than the header
    (an unquoted comma in a value), bad cells, duplicate ids, missing files.

    Raises
    ------
    ManifestError
        When the file itself is unusable (missing, not UTF-8 CSV, no ``path`` column, no rows).
    """
    if not csv_path.is_file():
        raise ManifestError(f"Manifest not found: {csv_path}. Pass the path of a CSV with a 'path' column.")
    root = csv_path.resolve().parent
    raw_rows: list[tuple[int, dict, list]] = []
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            delimiter = _delimiter(csv_path, fh.readline())
            fh.seek(0)
            reader = csv.DictReader(fh, delimiter=delimiter)
            header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
            for r in reader:
                extra = r.pop(None, None)  # cells beyond the header's columns
                raw_rows.append(
                    (reader.line_num, {(k or "").strip().lower(): (v or "").strip() for k, v in r.items()}, extra or [])
                )
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{csv_path}: not a readable UTF-8 CSV ({exc}). Save it as CSV (UTF-8).") from None
    if "path" not in header:
        raise ManifestError(
            f"{csv_path}: no 'path' column (found: {', '.join(header) or 'nothing'}). "
            "The first line must be a header naming at least 'path' (columns separated by commas)."
        )
    unknown = [h for h in header if h not in COLUMNS and h]
    for h in unknown:
        near = did_you_mean(h, [c for c in COLUMNS if c not in header])
        if near:  # a misspelt column featx reads
            log.warning("%s: unknown column %r;%s (kept as an outcome column)", csv_path, h, near)
    outcomes = [h for h in unknown if h not in ("", None)]
    if outcomes:
        log.info(
            "%s: outcome column(s) %s kept for 'featx fit --target regression --value COLUMN' (featx reads %s for "
            "the images)",
            csv_path,
            ", ".join(outcomes),
            ", ".join(COLUMNS),
        )
    if not raw_rows:
        raise ManifestError(f"{csv_path}: has a header but no rows. Add one row per image.")
    bad, samples, lines, given_id = [], [], [], []
    for line, row, extra in raw_rows:
        if extra:
            bad.append(
                f"line {line}: {len(header) + len(extra)} cells for {len(header)} columns (an unquoted "
                f'{delimiter!r} inside a value? a crop must be quoted: "10:50,20:60")'
            )
            continue
        sample, why = _row_to_sample(row, root)
        if sample is not None and outcomes:
            sample = replace(sample, outcomes=tuple((h, row.get(h, "")) for h in outcomes))
        if why:
            bad.append(f"line {line}: {why}")
        else:
            samples.append(sample)
            lines.append(line)
            given_id.append(None if row.get("id") else row.get("mask", ""))
    _mask_ids(samples, given_id)
    problems = [f"{len(bad)} bad row(s): {short_list(bad)}"] if bad else []
    at = defaultdict(list)
    for sample, line in zip(samples, lines):
        at[sample.sample_id].append(line)
    dup = [f"{sid!r} on lines {', '.join(map(str, ls))}" for sid, ls in at.items() if len(ls) > 1]
    if dup:
        problems.append(f"{len(dup)} duplicate sample id(s): {short_list(dup)} (give each row a unique 'id')")
    if check_files and (missing := missing_files(samples)):
        problems.append(missing)
    unlabelled = [line for sample, line in zip(samples, lines) if sample.label is None]
    if "label" in header and unlabelled and len(unlabelled) < len(samples):
        log.warning(
            "%s: %d row(s) have an empty 'label' (line(s) %s): fit and bench leave them out",
            csv_path,
            len(unlabelled),
            short_list([str(n) for n in unlabelled]),
        )
    if "subject" not in header:
        log.warning(
            "%s has no 'subject' column: each image is treated as its own subject, so slices of one patient may "
            "leak across folds. Add a 'subject' column if images share patients.",
            csv_path,
        )
    return ParsedCSV(samples, lines, problems)


def _mask_ids(samples: list[Sample], masks: list[str | None]) -> None:
    """One image listed with several masks (one ROI each), no ids given: ``image@mask`` tells them apart.

    ``masks``: each row's mask cell as written, None where the row gives its own id.
    """
    seen = Counter((s.sample_id, s.slice) for s, m in zip(samples, masks) if m is not None)
    for j, (s, m) in enumerate(zip(samples, masks)):
        if m and seen[(s.sample_id, s.slice)] > 1:
            samples[j] = replace(s, sample_id=mask_qualified(s.sample_id, Path(m).as_posix()))


def mask_qualified(sample_id: str, mask: str) -> str:
    """``image@mask`` (a ``#slice`` stays last): the default id of an image's row for one of its masks."""
    base, hash_, index = sample_id.partition("#")
    return f"{base}@{mask}{hash_}{index}"


def _row_to_sample(row: dict[str, str], root: Path) -> tuple[Sample | None, str | None]:
    """One CSV row -> (Sample, None) or (None, reason)."""
    raw = row.get("path", "")
    if not raw:
        return None, "empty 'path'"
    path = _resolve(raw, root)
    slice_idx = None
    if row.get("slice"):
        try:
            slice_idx = int(row["slice"])
        except ValueError:
            return None, f"'slice' must be an integer, got {row['slice']!r}"
    split = row.get("split", "").lower() or None
    if split is not None and split not in SPLITS:
        return None, f"'split' must be one of {', '.join(SPLITS)}, got {row['split']!r}"
    axis = row.get("axis", "").lower() or None
    if axis is not None and axis not in AXES:
        return None, f"'axis' must be axial, coronal or sagittal, got {row['axis']!r}"
    crop = None
    if row.get("crop"):
        try:
            (r0, r1), (c0, c1) = (map(int, part.split(":")) for part in row["crop"].split(","))
            crop = (r0, r1, c0, c1)
        except ValueError:
            return None, f"'crop' must look like r0:r1,c0:c1 (pixels), got {row['crop']!r}"
        if not (0 <= r0 < r1 and 0 <= c0 < c1):
            return None, f"'crop' {row['crop']!r} is an empty or negative box (need 0 <= r0 < r1 and 0 <= c0 < c1)"
    lesion, why = _lesion_cells(row)
    if why:
        return None, why
    sample_id = row.get("id") or (_default_id(raw) + (f"#{slice_idx}" if slice_idx is not None else ""))
    return (
        Sample(
            sample_id=sample_id,
            path=path,
            label=row.get("label") or None,
            subject=row.get("subject") or None,
            sequence=row.get("sequence") or None,
            mask=_resolve(row["mask"], root) if row.get("mask") else None,
            slice=slice_idx,
            split=split,
            axis=axis,
            crop=crop,
            **lesion,
        ),
        None,
    )


def _lesion_cells(row: dict[str, str]) -> tuple[dict, str | None]:
    """The ``mask_label``, ``seed`` and ``seed_space`` cells -> Sample fields, or the reason they are wrong."""
    out: dict = {}
    if row.get("mask_label"):
        try:
            out["mask_label"] = int(row["mask_label"])
        except ValueError:
            return {}, f"'mask_label' must be an integer (the mask's value of this lesion), got {row['mask_label']!r}"
    if row.get("seed"):
        parts = [p for p in row["seed"].replace(";", " ").split() if p]
        try:
            seed = tuple(float(p) for p in parts)
        except ValueError:
            seed = ()
        if len(seed) != 3:
            return {}, f"'seed' must be three numbers x;y;z, got {row['seed']!r}"
        space = row.get("seed_space", "").lower()
        if space not in SEED_SPACES:
            return {}, (
                f"a 'seed' needs a 'seed_space' of lps, ras or voxel (got {row.get('seed_space', '')!r}): featx never "
                "guesses a coordinate convention (lps: DICOM/ITK world mm; ras: NIfTI/nibabel world mm; voxel: "
                "zero-based i;j;k indices)"
            )
        out["seed"], out["seed_space"] = seed, space
    return out, None


def _resolve(raw: str, root: Path) -> Path:
    p = Path(raw).expanduser()
    return p if p.is_absolute() else (root / p)


def _default_id(raw: str) -> str:
    # Path() already drops a leading "./"; keep the id as written so it is stable across machines.
    return Path(raw).as_posix()
