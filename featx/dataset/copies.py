"""Exact copies: samples that are one image under several names, found by content, joined before any split.

Public medical image sets are full of copies: the same file twice under two names, a PNG re-saved as another
PNG. When the copies carry different subjects (or no subject at all, so each row is its own group), a split can
put one on each side and every metric is optimistic. Two kinds of evidence make two rows one image:

* the **file**: the same sha256 of the image (and of its mask, and the same slice of a volume);
* the **pixels**: the same decoded pixels (a lossless re-save under another name or format).

:func:`find_copies` joins rows sharing either (a union of groups), keeps the groups that span more than one
unit (subject, or row when there are no subjects), and names those whose labels differ (label noise, which no
grouping fixes). :meth:`Copies.joined_units` is what the folds are then drawn on, so every copy group lands in
one fold and on one side of a fixed split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from featx.errors import short_list

#: the choices of fit/bench ``--copies``
COPY_POLICIES = ("together", "apart")


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def components(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return out


@dataclass(frozen=True)
class Copies:
    """The copy groups among ``ids``: each a tuple of row indices, spanning at least two units.

    Attributes
    ----------
    ids : ndarray of str
    units : ndarray of str
        The group each row had before copies were joined (its subject, or its own id).
    groups : list of tuple of int
    conflicts : list of tuple of int
        The groups whose rows carry different labels.
    """

    ids: np.ndarray
    units: np.ndarray
    groups: list = field(default_factory=list)
    conflicts: list = field(default_factory=list)
    labels: np.ndarray | None = None

    @property
    def n_files(self) -> int:
        """Rows that are copies of another row (each group's rows but one)."""
        return sum(len(g) - 1 for g in self.groups)

    def __bool__(self) -> bool:
        return bool(self.groups)

    def joined_units(self) -> np.ndarray:
        """Each row's unit with the units of copies joined (a union of groups): the groups folds are drawn on."""
        names = sorted(set(self.units.tolist()))
        index = {u: i for i, u in enumerate(names)}
        uf = _UnionFind(len(names))
        for g in self.groups:
            for r in g[1:]:
                uf.union(index[self.units[g[0]]], index[self.units[r]])
        root_name = {}
        for i, u in enumerate(names):
            root_name.setdefault(uf.find(i), u)  # the first unit of a joined group (sorted) names it
        return np.array([root_name[uf.find(index[u])] for u in self.units.tolist()], dtype=object)

    def examples(self, n: int = 3) -> str:
        """A few groups, by sample id: ``a = b; c = d = e``."""
        return short_list([" = ".join(str(self.ids[r]) for r in g) for g in self.groups], n)

    def summary(self, policy: str = "together") -> str:
        """One line: how many copies, in how many groups, and what the split does with them."""
        if not self.groups:
            return "no copies among the samples (by file content and decoded pixels)"
        what = (
            f"{self.n_files} sample(s) are exact copies of others ({len(self.groups)} group(s), e.g. {self.examples()})"
        )
        if policy == "together":
            what += ": each group is kept in one fold and on one side of a split"
        else:
            what += ": --copies apart lets copies fall into different folds, so every metric is optimistic"
        if self.conflicts:
            what += f"; {len(self.conflicts)} group(s) carry different labels (label noise: {self.conflict_examples()})"
        return what

    def conflict_examples(self, n: int = 3) -> str:
        labels = self.labels if self.labels is not None else np.full(len(self.ids), "?", dtype=object)
        return short_list([" vs ".join(f"{self.ids[r]} ({labels[r]})" for r in g) for g in self.conflicts], n)

    def to_dict(self, policy: str) -> dict:
        """The protocol's record: counts, policy and a few examples."""
        return {
            "policy": policy,
            "copies": self.n_files,
            "groups": len(self.groups),
            "label_conflicts": len(self.conflicts),
            "examples": [[str(self.ids[r]) for r in g] for g in self.groups[:10]],
        }


def find_copies(ids, keys: np.ndarray | None, subjects=None, labels=None) -> Copies:
    """The copy groups among rows, by ``keys``: an (n, m) array of content keys (``""``: unknown), rows sharing a
    non-empty key in any column being one image. Groups within one subject are no leak and are not reported.

    Parameters
    ----------
    ids : array-like of str
    keys : ndarray of str, shape (n, m), or None (nothing known: no copies)
    subjects : array-like of str, optional
        The unit of each row (``""`` or None: every row is its own unit).
    labels : array-like of str, optional
        Groups whose labels differ are listed as conflicts.
    """
    ids = np.asarray(ids, dtype=object)
    n = len(ids)
    units = np.asarray(subjects if subjects is not None else [""] * n, dtype=object)
    units = np.where(units == "", ids, units)
    labels = None if labels is None else np.asarray(labels, dtype=object)
    if keys is None or n == 0:
        return Copies(ids, units, labels=labels)
    keys = np.asarray(keys, dtype=object).reshape(n, -1)
    uf = _UnionFind(n)
    for c in range(keys.shape[1]):
        first: dict[str, int] = {}
        for r, k in enumerate(keys[:, c].tolist()):
            if k:
                uf.union(first.setdefault(k, r), r)
    groups, conflicts = [], []
    for rows in uf.components().values():
        if len(rows) < 2 or len(set(units[rows].tolist())) < 2:
            continue
        groups.append(tuple(rows))
        if labels is not None and len(set(labels[rows].tolist())) > 1:
            conflicts.append(tuple(rows))
    groups.sort()
    conflicts.sort()
    return Copies(ids, units, groups, conflicts, labels)


def cross_copies(copies: Copies, is_test: np.ndarray) -> np.ndarray:
    """The test rows (``is_test``) that have an exact copy outside the test side."""
    out = np.zeros(len(is_test), dtype=bool)
    for g in copies.groups:
        rows = np.asarray(g)
        if is_test[rows].any() and (~is_test[rows]).any():
            out[rows[is_test[rows]]] = True
    return out


def file_keys(samples) -> np.ndarray:
    """(n, 1) content keys of manifest samples by their files (image and mask sha256, slice), for runs that read
    the manifest rather than a store (fine-tuning); ``""`` where a file cannot be read (the run reports it)."""
    from featx.images.loader import content_hash

    def key(s) -> str:
        try:
            mask = content_hash(s.mask) if s.mask else ""
            return f"{content_hash(s.path)}|{mask}|{-1 if s.slice is None else s.slice}"
        except OSError:
            return ""

    return np.array([[key(s)] for s in samples], dtype=object).reshape(-1, 1)
