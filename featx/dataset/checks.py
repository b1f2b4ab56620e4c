"""`featx manifest check`: a data set summary and every problem of a manifest, in one run."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featx.dataset.copies import file_keys, find_copies
from featx.dataset.csv_reader import parse_csv
from featx.dataset.manifest import Sample
from featx.errors import FeatxError, short_list
from featx.images.crop3d import VolumeRecipe
from featx.images.lesion import LesionLoader
from featx.images.loader import SampleReader, pixel_digest
from featx.images.readers import read_volume
from featx.progress import progress_bar


@dataclass
class CheckReport:
    """Summary counts, problems (the manifest cannot be used as is) and warnings (it can, with care)."""

    n_samples: int = 0
    images_per_label: dict = field(default_factory=dict)
    subjects_per_label: dict = field(default_factory=dict)
    images_per_subject: tuple | None = None  # (min, median, max)
    sequences: dict = field(default_factory=dict)
    sequences_per_subject: dict = field(default_factory=dict)  # n sequences -> n subjects
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_manifest(
    csv_path: str | Path, cv: int = 10, labels: list[str] | None = None, read_files: bool = True, progress: bool = True
) -> CheckReport:
    """Validate a manifest and summarise it.

    Parameters
    ----------
    csv_path : path
        Manifest CSV.
    cv : int
        Folds the data must support: each label needs at least this many samples (subjects when known).
    labels : list of str, optional
        The expected labels; any other label is a problem.
    read_files : bool
        Open every image and mask (headers for images, whole masks) to find unreadable files and empty masks.
    """
    samples, lines, problems = parse_csv(Path(csv_path), check_files=True)
    rep = CheckReport(n_samples=len(samples), problems=list(problems))
    unlabelled = [str(line) for s, line in zip(samples, lines) if s.label is None]
    if unlabelled:
        rep.problems.append(
            f"{len(unlabelled)} row(s) without a label (line(s) {short_list(unlabelled)}): fit leaves them out; "
            "give them a label, or list them in a manifest of their own for 'featx predict'"
        )
    labelled = [s for s in samples if s.label is not None]
    if labels is not None:
        unknown = sorted({s.label for s in labelled} - set(labels))
        if unknown:
            rep.problems.append(f"unknown label(s) {unknown} (expected {labels})")
    rep.images_per_label = dict(sorted(Counter(s.label for s in labelled).items()))
    has_subjects = bool(samples) and all(s.subject for s in samples)
    if not has_subjects:
        missing = sum(1 for s in samples if not s.subject)
        rep.warnings.append(
            f"{missing} sample(s) have no subject: each counts as its own subject, so slices of one patient may leak "
            "across folds. Add a 'subject' column."
        )
    _check_classes(rep, labelled, has_subjects, cv)
    if has_subjects:
        _check_subjects(rep, samples)
    if read_files:
        _check_readable(rep, [s for s in samples if s.path.exists()], progress)
    return rep


def _check_classes(rep: CheckReport, labelled: list[Sample], has_subjects: bool, cv: int) -> None:
    if len(rep.images_per_label) == 1:
        rep.problems.append(f"only one label ({next(iter(rep.images_per_label))!r}): a classifier needs at least two")
    if has_subjects:
        subj = defaultdict(set)
        for s in labelled:
            subj[s.label].add(s.subject)
        rep.subjects_per_label = {k: len(v) for k, v in sorted(subj.items())}
        counts, unit = rep.subjects_per_label, "subjects"
    else:
        counts, unit = rep.images_per_label, "images"
    small = {k: n for k, n in counts.items() if n < cv}
    if small:
        rep.problems.append(
            f"label(s) with fewer {unit} than {cv}-fold CV needs: {small} (use a smaller --cv or add data)"
        )


def _check_subjects(rep: CheckReport, samples: list[Sample]) -> None:
    per_subject = Counter(s.subject for s in samples)
    n = sorted(per_subject.values())
    rep.images_per_subject = (n[0], statistics.median(n), n[-1])
    seqs = defaultdict(set)
    labels = defaultdict(set)
    for s in samples:
        if s.sequence:
            seqs[s.subject].add(s.sequence)
        if s.label is not None:
            labels[s.subject].add(s.label)
    rep.sequences = dict(sorted(Counter(s.sequence for s in samples if s.sequence).items()))
    if rep.sequences:
        rep.sequences_per_subject = dict(sorted(Counter(len(seqs[p]) for p in per_subject).items()))
        all_seqs = set(rep.sequences)
        lacking = {p: sorted(all_seqs - seqs[p]) for p in per_subject if seqs[p] != all_seqs}
        if lacking:
            shown = [f"{p} lacks {', '.join(v)}" for p, v in sorted(lacking.items())]
            rep.warnings.append(f"{len(lacking)} subject(s) miss a sequence: {short_list(shown)}")
    mixed = {p: sorted(v) for p, v in labels.items() if len(v) > 1}
    if mixed:
        shown = [f"{p}: {', '.join(v)}" for p, v in sorted(mixed.items())]
        rep.warnings.append(
            f"{len(mixed)} subject(s) have images of more than one label: {short_list(shown)}. A paired design "
            "(left/right organs, pre/post scans) is fine: fit keeps each subject's images in one fold, so both "
            "labels of a subject are tested together; otherwise fix the labels"
        )


def _check_readable(rep: CheckReport, samples: list[Sample], progress: bool) -> None:
    reader = SampleReader("minmax", cache_volumes=2)
    lesions = LesionLoader(VolumeRecipe((1, 1, 1), (1.0, 1.0, 1.0)).to_dict(), cache_volumes=2)  # finds each centre
    bad, empty = [], []
    masks_seen: dict[Path, bool] = {}
    pixels = []
    with progress_bar("reading files", total=len(samples), enabled=progress) as bar:
        for s in samples:
            try:
                if s.lesion:  # a whole lesion: its volume reads, its mask label or seed is there, inside the volume
                    lesions(s)
                    pixels.append("")
                else:
                    pixels.append(pixel_digest(reader(s)))
            except FeatxError as exc:
                bad.append(str(exc))
                pixels.append("")
            if s.mask is not None and s.mask.exists() and s.mask not in masks_seen:
                try:
                    masks_seen[s.mask] = bool(read_volume(s.mask).array.any())
                except FeatxError as exc:
                    bad.append(str(exc))
                    masks_seen[s.mask] = True
                if not masks_seen[s.mask]:
                    empty.append(str(s.mask))
            bar.update()
    _check_copies(rep, samples, pixels)
    if bad:
        rep.problems.append(f"{len(bad)} unreadable file(s): {short_list(bad)}")
    if empty:
        rep.problems.append(f"{len(empty)} empty mask(s) (no labelled voxel): {short_list(empty)}")


def _check_copies(rep: CheckReport, samples: list[Sample], pixels: list[str]) -> None:
    """Exact copies (same file content, or same decoded pixels) under different subjects or names."""
    keys = np.column_stack([file_keys(samples)[:, 0], np.asarray(pixels, dtype=object)])
    subjects = [s.subject or "" for s in samples]
    copies = find_copies([s.sample_id for s in samples], keys, subjects, [s.label or "" for s in samples])
    if copies:
        rep.warnings.append(
            copies.summary() + " by 'featx fit' and 'featx bench' (--copies apart to let them leak); 'featx audit' "
            "finds near-copies (re-encoded, resized, cropped)"
        )
