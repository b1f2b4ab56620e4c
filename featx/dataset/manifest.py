"""Samples and manifests: a CSV or a folder of class sub-folders -> validated records.

A manifest is the single description of a data set. Every later stage (extract,
radiomics, fit) keys its rows by ``Sample.sample_id``, so ids must be stable and
unique. Relative paths in a CSV resolve against the CSV's own folder.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from featx.dataset.csv_reader import parse_csv
from featx.dataset.sample import COLUMNS, Sample, missing_files
from featx.errors import ManifestError, short_list
from featx.images.readers import IMAGE, suffixes

__all__ = ["IMAGE_SUFFIXES", "Manifest", "Sample"]

IMAGE_SUFFIXES = suffixes(IMAGE)  # what a folder of class sub-folders is scanned for


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
        outcomes = list(dict.fromkeys(name for s in self.samples for name, _ in s.outcomes))  # in order of appearance
        with open(out, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(cols + outcomes)
            for s in self.samples:
                mine = dict(s.outcomes)
                w.writerow([_cell(getattr(s, _attr(c)), base) for c in cols] + [mine.get(o, "") for o in outcomes])
        return out


def _attr(column: str) -> str:
    return "sample_id" if column == "id" else column


def _cell(value, base: Path) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple) and len(value) == 3:  # seed point
        return ";".join(f"{v:g}" for v in value)
    if isinstance(value, tuple):  # crop box
        r0, r1, c0, c1 = value
        return f"{r0}:{r1},{c0}:{c1}"
    if isinstance(value, Path):
        try:
            return value.relative_to(base).as_posix()
        except ValueError:
            return str(value)
    return str(value)
