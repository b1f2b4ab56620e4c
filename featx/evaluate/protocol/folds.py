"""Folds: test-fold assignments, planned stratified and grouped by subject, saved and reloaded by sample id.

Folds are a first-class object, saved with every result (``folds.json``) and
loadable again (``--folds``), so every feature set, head and fine-tuning run is
scored on exactly the same split. Whenever subjects are known the split is
grouped by subject: no patient is ever on both sides, and every constructor
checks it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from featx.errors import FitError, short_list

TRAIN_ONLY = -1  # fold_of value of a sample that is never tested (the training side of a fixed split)


@dataclass
class Folds:
    """Test-fold assignment of ``n`` samples in each of ``repeats`` repetitions.

    Attributes
    ----------
    fold_of : ndarray of int, shape (repeats, n)
        Test fold of each sample per repeat; ``TRAIN_ONLY`` (-1) for a sample only ever trained on.
    k : int
        Folds per repeat (1 for a fixed train/test split).
    seed : int
    splitter : str
        How the folds were drawn (scikit-learn splitter or the manifest's split column).
    grouped : bool
        True when split by subject.
    kind : {'cv', 'fixed'}
    test_size : float, optional
        Fraction drawn for the test side of a fixed split (None: the manifest's split column, or CV).
    """

    fold_of: np.ndarray
    k: int
    seed: int
    splitter: str
    grouped: bool
    kind: str = "cv"
    test_size: float | None = None
    copies: dict | None = None  # the exact copies among the rows, and what the split did with them

    def __post_init__(self):
        self.fold_of = np.atleast_2d(np.asarray(self.fold_of, dtype=np.int64))

    @property
    def repeats(self) -> int:
        return self.fold_of.shape[0]

    def subset(self, sel) -> Folds:
        """The same folds for the samples ``sel`` selects (a boolean mask or indices)."""
        return replace(self, fold_of=self.fold_of[:, sel])

    def split(self):
        """Yield ``(repeat, fold, train_idx, test_idx)``."""
        for r in range(self.repeats):
            for f in range(self.k):
                row = self.fold_of[r]
                yield r, f, np.flatnonzero(row != f), np.flatnonzero(row == f)

    @property
    def scope(self) -> str:
        """What the predictions scored on these folds are (:attr:`featx.results.metrics.CVScores.scope`)."""
        if self.kind == "fixed":
            return "the test side of the fixed split" + (f" ({self.repeats} draws)" if self.repeats > 1 else "")
        return "out-of-fold predictions of cross-validation"

    def describe(self) -> str:
        """One line for reports."""
        unit = "grouped by subject" if self.grouped else "NOT grouped (no subject ids)"
        if self.kind == "fixed":
            how = f"{self.test_size:.0%} of subjects drawn as test" if self.test_size else "the manifest's split column"
            rep = f", {self.repeats} draws" if self.repeats > 1 else ""
            return f"fixed train/test split ({how}{rep}), {unit}{self._copies_note()}, seed {self.seed}"
        rep = f" x {self.repeats} repeats" if self.repeats > 1 else ""
        return f"{self.k}-fold {self.splitter}{rep}, {unit}{self._copies_note()}, seed {self.seed}"

    def _copies_note(self) -> str:
        c = self.copies
        if not c:
            return ""
        return f", {c['copies']} exact copies " + (
            "kept together" if c["policy"] == "together" else "NOT kept together"
        )

    def to_dict(self, ids) -> dict:
        """JSON-able, keyed by sample id."""
        return {
            "kind": self.kind,
            "k": self.k,
            "repeats": self.repeats,
            "seed": self.seed,
            "splitter": self.splitter,
            "grouped": self.grouped,
            "test_size": self.test_size,
            "fold_of": {str(i): [int(v) for v in self.fold_of[:, j]] for j, i in enumerate(ids)},
        }

    @classmethod
    def from_dict(cls, d: dict, ids, where: str = "the saved folds") -> Folds:
        """Folds of ``ids`` from :meth:`to_dict` output; every id must be in it."""
        table = d["fold_of"]
        missing = [str(i) for i in ids if str(i) not in table]
        if missing:
            raise FitError(
                f"{len(missing)} sample(s) are not in {where} ({short_list(missing)}): those folds were "
                "made for another set of samples. Drop --folds, or use folds made on this store."
            )
        rows = np.array([np.atleast_1d(table[str(i)]) for i in ids], dtype=np.int64).T
        return cls(
            rows,
            int(d["k"]),
            int(d["seed"]),
            d["splitter"],
            bool(d["grouped"]),
            d.get("kind", "cv"),
            d.get("test_size"),
        )


def load_folds(path: str | Path, ids, subjects=None) -> Folds:
    """Folds saved by a previous run (``folds.json`` or a ``results.json``), for the samples ``ids``."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FitError(
            f"Cannot read folds from {path}: {exc}. Give the folds.json or results.json of a fit or bench run."
        ) from None
    d = d.get("folds", d)
    if "fold_of" not in d:
        raise FitError(
            f"{path} holds no folds (no 'fold_of'); give the folds.json or results.json of a fit or bench run."
        )
    folds = Folds.from_dict(d, ids, where=str(path))
    if subjects is not None:
        check_no_subject_leak(folds, subjects)
    return folds


def _check_classes(labels, k_needed: int, unit_counts: dict, what: str) -> None:
    if len(unit_counts) < 2:
        only = str(next(iter(unit_counts), "none"))
        raise FitError(
            f"Only one class ({only!r}) among the labels: a classifier needs at least two. "
            "Check the manifest's 'label' column."
        )
    small = {str(c): int(n) for c, n in unit_counts.items() if n < k_needed}
    if small:
        raise FitError(f"{what} needs at least {k_needed} per class; too few for {small}. Use fewer folds or add data.")


def _per_class(labels, subjects) -> tuple[dict, str]:
    classes = np.unique(labels)
    if subjects is None:
        return {c: int((labels == c).sum()) for c in classes}, "samples"
    return {c: len(np.unique(subjects[labels == c])) for c in classes}, "subjects"


def _repeat_seeds(seed: int, repeats: int) -> list[int]:
    """Repeat 0 uses ``seed`` itself; later repeats get seeds derived from it."""
    return [seed] + [int(s) for s in np.random.default_rng([seed, 1]).integers(0, 2**31 - 1, repeats - 1)]


def make_folds(labels, subjects=None, k: int = 10, seed: int = 0, repeats: int = 1) -> Folds:
    """Stratified K folds (x ``repeats``), grouped by subject when ``subjects`` is given.

    Parameters
    ----------
    labels : array-like of str
    subjects : array-like of str, optional
        Group of each sample (then ``StratifiedGroupKFold``); None: every sample is its own group.
    k : int
        Number of folds (>= 2).
    seed : int
        Shuffling seed, recorded in the result.
    repeats : int
        Independent re-shuffles.

    Raises
    ------
    FitError
        Fewer than 2 classes, a class (or its subjects) smaller than ``k``, or a
        split that would put a subject on both sides.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    labels = np.asarray(labels).astype(str)
    if k < 2:
        raise FitError(f"--cv must be at least 2, got {k}.")
    if repeats < 1:
        raise FitError(f"--repeats must be at least 1, got {repeats}.")
    subjects = None if subjects is None else np.asarray(subjects).astype(str)
    counts, unit = _per_class(labels, subjects)
    _check_classes(labels, k, counts, f"{k}-fold CV ({unit})")
    fold_of = np.full((repeats, len(labels)), TRAIN_ONLY, dtype=np.int64)
    name = "StratifiedGroupKFold" if subjects is not None else "StratifiedKFold"
    for r, s in enumerate(_repeat_seeds(seed, repeats)):
        if subjects is not None:
            splits = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=s).split(labels, labels, subjects)
        else:
            splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=s).split(labels, labels)
        for f, (_, test) in enumerate(splits):
            fold_of[r, test] = f
    folds = Folds(fold_of, k, seed, name, subjects is not None)
    if subjects is not None:
        check_no_subject_leak(folds, subjects)
    return folds


def make_holdout(labels, subjects=None, test_size: float = 0.3, seed: int = 0, repeats: int = 1) -> Folds:
    """A train/test split drawing ``test_size`` of the subjects (stratified by the subject's label) as test."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise FitError(f"--test-size must be a fraction between 0 and 1 (e.g. 0.3), got {test_size}.")
    labels = np.asarray(labels).astype(str)
    units = np.asarray(subjects).astype(str) if subjects is not None else np.array([str(i) for i in range(len(labels))])
    names, first = np.unique(units, return_index=True)
    unit_label = labels[first]  # a subject's label for stratification: that of its first sample
    counts, unit = _per_class(labels, None if subjects is None else units)
    _check_classes(labels, 2, counts, f"a {test_size:.0%} test split ({unit})")
    fold_of = np.full((repeats, len(labels)), TRAIN_ONLY, dtype=np.int64)
    for r, s in enumerate(_repeat_seeds(seed, repeats)):
        _, test_units = train_test_split(names, test_size=test_size, random_state=s, stratify=unit_label)
        fold_of[r, np.isin(units, test_units)] = 0
    folds = Folds(
        fold_of,
        1,
        seed,
        "train_test_split by subject" if subjects is not None else "train_test_split",
        subjects is not None,
        kind="fixed",
        test_size=test_size,
    )
    if subjects is not None:
        check_no_subject_leak(folds, subjects)
    return folds


def manifest_split(splits, subjects=None) -> Folds:
    """The manifest's split column as folds: ``test`` rows are tested, ``train``/``val``/empty rows train."""
    splits = np.asarray(splits).astype(str)
    if not (splits == "test").any():
        raise FitError(
            "--split fixed without --test-size uses the manifest's 'split' column, but no row is 'test'. "
            "Mark the test rows, or draw them with --test-size 0.3."
        )
    folds = Folds(
        np.where(splits == "test", 0, TRAIN_ONLY)[None, :],
        1,
        0,
        "manifest split column",
        subjects is not None,
        kind="fixed",
    )
    if subjects is not None:
        check_no_subject_leak(folds, subjects)
    return folds


def subject_leaks(folds: Folds, subjects, r: int) -> list[tuple[str, int, int]]:
    """(group, first side, other side) of each sample whose group is on two sides in repeat ``r``."""
    seen: dict[str, int] = {}
    leaks = []
    for s, f in zip(np.asarray(subjects).astype(str).tolist(), folds.fold_of[r]):
        if seen.setdefault(s, int(f)) != f:
            leaks.append((s, seen[s], int(f)))
    return leaks


def check_no_subject_leak(folds: Folds, subjects) -> None:
    """Raise FitError if, in any repeat, a subject has samples on two sides (two folds, or train and test)."""
    for r in range(folds.repeats):
        leaks = subject_leaks(folds, subjects, r)
        if leaks:
            s, a, b = leaks[0]
            side = lambda f: "train" if f == TRAIN_ONLY else f"fold {f}"  # noqa: E731
            raise FitError(
                f"Subject {s!r} would be in {side(a)} and {side(b)}"
                + (f" (and {len(leaks) - 1} more such samples)" if len(leaks) > 1 else "")
                + ": refusing a split that puts one patient on both sides (its slices would leak into the test "
                "side and inflate every metric). Give all of a subject's rows the same split."
            )
