"""FeatureSet: the filled rows of one feature set, in memory, as the heads take them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass
class FeatureSet:
    """Filled rows of one feature set, ready for the heads.

    Attributes
    ----------
    name : str
    X : ndarray, shape (n, D), float32 (float64 for radiomics)
    ids, labels, subjects, splits, sequences : ndarray of str (``""`` when absent)
    provenance : dict
    """

    name: str
    X: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    splits: np.ndarray
    sequences: np.ndarray
    provenance: dict = field(default_factory=dict)
    feature_names: list[str] | None = None  # column names, when the set has them (radiomics)
    #: (n, m) content keys of each row ("" unknown): rows sharing one are one image (:mod:`featx.dataset.copies`)
    copy_keys: np.ndarray | None = None
    #: (n, 256) pixel signatures of the rows' images (zeros where unknown), when the store has them
    signatures: np.ndarray | None = None
    #: the manifest's outcome columns (any column featx does not read for the images: a value, a time, an event),
    #: name -> (n,) strings ("" when absent)
    outcomes: dict = field(default_factory=dict)

    def outcome_rows(self, sel) -> dict:
        """:attr:`outcomes` of the rows ``sel`` selects (a mask or indices)."""
        return {k: v[sel] for k, v in self.outcomes.items()}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def names(self) -> list[str]:
        """The column names: the set's own, or ``f0000``, ``f0001`` ... for an unnamed (CNN) set."""
        return self.feature_names or default_names(self.X.shape[1])

    def named(self) -> FeatureSet:
        """The same rows with :attr:`names` as the set's own names (so a column keeps its name when others are
        left out)."""
        return FeatureSet(
            self.name,
            self.X,
            self.ids,
            self.labels,
            self.subjects,
            self.splits,
            self.sequences,
            self.provenance,
            self.names,
            self.copy_keys,
            self.signatures,
            self.outcomes,
        )

    def without_nonfinite_columns(self) -> tuple[FeatureSet, list[str]]:
        """The set without columns that hold NaN/inf in any row, and the names of those columns.

        Radiomics can return NaN for a feature on some regions (recorded in the row's
        note); heads cannot take NaN. Dropping a column looks at no label, so no fold
        learns from another.
        """
        bad = ~np.isfinite(self.X).all(axis=0)
        if not bad.any():
            return self, []
        names = self.names
        keep = ~bad
        kept = [n for n, k in zip(names, keep) if k]
        out = FeatureSet(
            self.name,
            self.X[:, keep],
            self.ids,
            self.labels,
            self.subjects,
            self.splits,
            self.sequences,
            self.provenance,
            kept if self.feature_names else None,
            self.copy_keys,
            self.signatures,
            self.outcomes,
        )
        return out, [n for n, b in zip(names, bad) if b]

    def subset(self, mask: np.ndarray) -> FeatureSet:
        """Rows where ``mask`` is true (a boolean mask or indices). A mask that keeps every row shares this set's
        arrays instead of copying them: a feature matrix is never written in place, and a copy of a large one would
        double the memory a fit needs."""
        mask = np.asarray(mask)
        if mask.dtype == bool and len(mask) == len(self) and mask.all():
            return replace(self)
        return FeatureSet(
            self.name,
            self.X[mask],
            self.ids[mask],
            self.labels[mask],
            self.subjects[mask],
            self.splits[mask],
            self.sequences[mask],
            self.provenance,
            self.feature_names,
            None if self.copy_keys is None else self.copy_keys[mask],
            None if self.signatures is None else self.signatures[mask],
            self.outcome_rows(mask),
        )


def default_names(n: int) -> list[str]:
    """The names of the columns of an unnamed feature set of ``n`` columns."""
    return [f"f{i:04d}" for i in range(n)]
