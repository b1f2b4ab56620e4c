"""Samples and manifests: a CSV or a folder of class sub-folders -> validated records.

A manifest is the single description of a data set. Every later stage (extract,
radiomics, fit) keys its rows by ``Sample.sample_id``, so ids must be stable and
unique. Relative paths in a CSV resolve against the CSV's own folder.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from featx.errors import ManifestError, short_list
from featx.images.readers import IMAGE, suffixes
from featx.images.volume import AXES

log = logging.getLogger(__name__)

#: Columns featx understands; ``path`` is the only required one.
COLUMNS = ("id", "path", "label", "subject", "sequence", "mask", "slice", "split", "axis", "crop")
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = suffixes(IMAGE)  # what a folder of class sub-folders is scanned for


@dataclass(frozen=True)
class Sample:
    """One 2D sample: the unit that gets one feature row.

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


class Manifest(Sequence[Sample]):
    """An ordered, validated collection of samples.

    Parameters
    ----------
    samples : iterable of Sample
        The records; ids must be unique.
    source : Path, optional
        The CSV or folder the samples came from (for messages).
    """

    def __init__(self, samples: Iterable[Sample], source: Path | None = None):
        self.samples = list(samples)
        self.source = source
        dup = [i for i, n in Counter(s.sample_id for s in self.samples).items() if n > 1]
        if dup:
            raise ManifestError(
                f"{self._where()}: {len(dup)} duplicate sample id(s), e.g. {short_list(dup)}. "
                "Give each row a unique 'id' (or unique 'path'/'slice' pairs)."
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):  # type: ignore[override]
        return self.samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    @property
    def has_labels(self) -> bool:
        """True when every sample has a label."""
        return all(s.label is not None for s in self.samples)

    @property
    def has_subjects(self) -> bool:
        """True when every sample has a subject."""
        return bool(self.samples) and all(s.subject is not None for s in self.samples)

    @property
    def classes(self) -> list[str]:
        """Sorted distinct labels."""
        return sorted({s.label for s in self.samples if s.label is not None})

    def _where(self) -> str:
        return str(self.source) if self.source else "manifest"

    # ----------------------------------------------------------------- readers
    @classmethod
    def from_csv(cls, csv_path: str | Path, check_files: bool = True) -> Manifest:
        """Read a manifest CSV.

        Parameters
        ----------
        csv_path : str or Path
            CSV with a header row; column ``path`` is required, see :data:`COLUMNS`.
        check_files : bool
            Check that every image (and mask) exists; all missing files are
            reported in one error.

        Raises
        ------
        ManifestError
            Missing CSV, no ``path`` column, empty cells, bad split values,
            duplicate ids or missing files.
        """
        csv_path = Path(csv_path)
        samples, _, problems = parse_csv(csv_path, check_files)
        if problems:
            raise ManifestError(
                f"{csv_path}: {'; '.join(problems)}. Fix these and rerun ('featx manifest check' lists them all)."
            )
        return cls(samples, source=csv_path)

    @classmethod
    def from_folder(cls, folder: str | Path) -> Manifest:
        """Build a manifest from ``folder/<label>/<image>`` (images found recursively per class).

        Raises
        ------
        ManifestError
            When the folder is missing or has no class sub-folder with images.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise ManifestError(f"Image folder not found: {folder}.")
        samples = []
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            for f in sorted(class_dir.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    rel = f.relative_to(folder).as_posix()
                    samples.append(Sample(sample_id=rel, path=f.resolve(), label=class_dir.name))
        if not samples:
            raise ManifestError(
                f"{folder}: no images found in class sub-folders (expected {folder}/<label>/<image> with "
                f"suffix {', '.join(IMAGE_SUFFIXES)})."
            )
        return cls(samples, source=folder)

    @classmethod
    def load(cls, source: str | Path, check_files: bool = True) -> Manifest:
        """A CSV file or a folder of class sub-folders, whichever ``source`` is."""
        source = Path(source)
        if source.is_dir():
            return cls.from_folder(source)
        return cls.from_csv(source, check_files=check_files)

    # ----------------------------------------------------------------- checks
    def check_files(self) -> None:
        """Raise one ManifestError listing every image or mask that does not exist."""
        problem = missing_files(self.samples)
        if problem:
            raise ManifestError(
                f"{self._where()}: {problem}. Fix the paths (relative paths resolve against the CSV's folder)."
            )

    def subset(self, keep: Iterable[bool]) -> Manifest:
        """The samples where ``keep`` is true, in order."""
        return Manifest([s for s, k in zip(self.samples, keep) if k], source=self.source)

    def to_csv(self, out: str | Path) -> Path:
        """Write the manifest as CSV with paths relative to the CSV's folder where possible."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        base = out.resolve().parent
        cols = [c for c in COLUMNS if c in ("id", "path") or any(getattr(s, _attr(c)) is not None for s in self)]
        with open(out, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for s in self.samples:
                w.writerow([_cell(getattr(s, _attr(c)), base) for c in cols])
        return out


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
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        log.warning("%s: ignoring unknown column(s) %s; featx reads %s", csv_path, unknown, ", ".join(COLUMNS))
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


def missing_files(samples: Iterable[Sample]) -> str | None:
    """``"N file(s) not found, e.g. ..."`` for images/masks that do not exist (folders count: DICOM series)."""
    missing = list(dict.fromkeys(str(p) for s in samples for p in (s.path, s.mask) if p is not None and not p.exists()))
    return f"{len(missing)} file(s) not found, e.g. {short_list(missing)}" if missing else None


def _attr(column: str) -> str:
    return "sample_id" if column == "id" else column


def _cell(value, base: Path) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):  # crop box
        r0, r1, c0, c1 = value
        return f"{r0}:{r1},{c0}:{c1}"
    if isinstance(value, Path):
        try:
            return value.relative_to(base).as_posix()
        except ValueError:
            return str(value)
    return str(value)


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
        ),
        None,
    )


def _resolve(raw: str, root: Path) -> Path:
    p = Path(raw).expanduser()
    return p if p.is_absolute() else (root / p)


def _default_id(raw: str) -> str:
    # Path() already drops a leading "./"; keep the id as written so it is stable across machines.
    return Path(raw).as_posix()
