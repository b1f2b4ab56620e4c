"""The samples table every layout of a store shares: one row per sample id, appended, never reordered.

/samples/id             (n,) utf-8 strings: the row key of every feature set
/samples/path|label|subject|sequence|split   (n,) utf-8 strings, "" when absent
/samples/slice          (n,) int32, -1 when absent
/samples/outcomes/<col> (n,) utf-8 strings: the manifest's outcome columns (a value, a time, an event), "" when
                        absent; a later manifest's values replace a row's
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from featx.errors import StoreError
from featx.store.diagnose import missing_set_message
from featx.store.feature_set import FeatureSet

STR_COLUMNS = ("id", "path", "label", "subject", "sequence", "split")
STR = h5py.string_dtype("utf-8")


def _update(ds: h5py.Dataset, values: np.ndarray, old: np.ndarray) -> None:
    """Write a column only where it changed: registering a known manifest again rewrites nothing."""
    n, n0 = len(values), len(old)
    if n != ds.shape[0]:
        ds.resize((n,))
    changed = np.flatnonzero(values[:n0] != old) if n0 else np.array([], dtype=np.int64)
    if len(changed):
        lo, hi = int(changed[0]), int(changed[-1]) + 1
        ds[lo:hi] = values[lo:hi]
    if n > n0:
        ds[n0:n] = values[n0:n]


class SampleTable:
    """What both layouts keep alike in their (index) file ``self.h5``: the ``/samples`` group, and each feature set's
    group of attributes. Subclasses grow their feature sets when samples are added (``_grow(name, n)``)."""

    h5: h5py.File
    path: Path

    def _grow(self, name: str, n: int) -> None:  # pragma: no cover - every layout defines it
        raise NotImplementedError

    def attrs(self) -> dict:
        """The store's own attributes (format, featx version, created)."""
        return dict(self.h5.attrs)

    def feature_names(self) -> list[str]:
        """Names of the feature sets in the store."""
        return sorted(self.h5["features"]) if "features" in self.h5 else []

    def _group(self, name: str) -> h5py.Group:
        if name not in self.feature_names():
            raise StoreError(missing_set_message(self.path, name, self.feature_names()))
        return self.h5["features"][name]

    def set_attrs(self, name: str) -> dict:
        """A feature set's attributes (kind, feature_dim, created, updated ...)."""
        return dict(self._group(name).attrs)

    def provenance(self, name: str) -> dict:
        """Provenance dict of a feature set."""
        return json.loads(self._group(name).attrs["provenance"])

    def set_provenance(self, name: str, provenance: dict) -> None:
        """Replace a feature set's provenance (its identity stays: what defines its numbers did not change)."""
        self._group(name).attrs["provenance"] = json.dumps(provenance, sort_keys=True)

    def identity(self, name: str) -> str:
        """The identity hash a feature set was created with (its spec, weights, preprocessing)."""
        return str(self._group(name).attrs.get("identity"))

    def column_names(self, name: str) -> list[str] | None:
        """The names of a feature set's columns, when it has them (radiomics), else None."""
        names = self._group(name).attrs.get("feature_names")
        return json.loads(names) if names else None

    # ------------------------------------------------------------------ samples
    @property
    def n_samples(self) -> int:
        return int(self.h5["samples/id"].shape[0]) if "samples" in self.h5 else 0

    def sample_ids(self) -> np.ndarray:
        """All sample ids, in row order."""
        return self._column("id")

    def sample_paths(self) -> np.ndarray:
        """Every sample's image path, in row order."""
        return self._column("path")

    def sample_slices(self) -> np.ndarray:
        """Every sample's slice index (-1: a 2D image), in row order."""
        return self._column("slice")

    def _column(self, name: str) -> np.ndarray:
        if "samples" not in self.h5:
            return np.array([], dtype=object)
        ds = self.h5["samples"][name]
        return ds[:] if name == "slice" else ds.asstr()[:].astype(object)

    def add_samples(self, samples: Iterable) -> np.ndarray:
        """Register samples (objects with Sample's attributes); returns their row indices.

        New ids are appended; known ids keep their row, and their metadata (label,
        subject ...) is updated to the manifest's.
        """
        samples = list(samples)
        n_old = self.n_samples
        g = self.h5.require_group("samples")
        for c in STR_COLUMNS:
            if c not in g:  # new store, or a column added by a later featx version
                g.create_dataset(c, shape=(n_old,), maxshape=(None,), dtype=STR, chunks=(1024,))
        if "slice" not in g:
            g.create_dataset("slice", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(1024,))
        index = {sid: i for i, sid in enumerate(self.sample_ids())}
        n0 = len(index)
        rows = np.empty(len(samples), dtype=np.int64)
        for j, s in enumerate(samples):
            rows[j] = index.setdefault(s.sample_id, len(index))
        n = len(index)
        old = {c: self._column(c) for c in (*STR_COLUMNS, "slice")}
        cols = dict(old)
        for c in cols:
            cols[c] = np.concatenate([cols[c], np.full(n - n0, -1 if c == "slice" else "", dtype=cols[c].dtype)])
        outcomes = sorted({name for s in samples for name, _ in getattr(s, "outcomes", ())})
        out_g = g.require_group("outcomes") if outcomes else g.get("outcomes")
        for name in outcomes:
            if name not in out_g:
                out_g.create_dataset(name, shape=(n_old,), maxshape=(None,), dtype=STR, chunks=(1024,))
        old_out = {c: self._outcome(c) for c in (out_g if out_g is not None else ())}
        out_cols = dict(old_out)
        for c in out_cols:
            out_cols[c] = np.concatenate([out_cols[c], np.full(n - len(out_cols[c]), "", dtype=object)])
        for r, s in zip(rows, samples):
            for name, value in getattr(s, "outcomes", ()):
                out_cols[name][r] = value
            cols["id"][r] = s.sample_id
            cols["path"][r] = str(s.path)
            for c in ("label", "subject", "sequence", "split"):
                cols[c][r] = getattr(s, c) or ""
            cols["slice"][r] = -1 if s.slice is None else s.slice
        for c, values in cols.items():
            _update(g[c], values, old[c])
        for c, values in out_cols.items():
            _update(out_g[c], values, old_out[c])
        for name in self.feature_names():
            self._grow(name, n)
        return rows

    def _outcome(self, name: str) -> np.ndarray:
        return self.h5["samples"]["outcomes"][name].asstr()[:].astype(object)

    def outcome_names(self) -> list[str]:
        """The manifest's outcome columns the store keeps (:attr:`Sample.outcomes`)."""
        g = self.h5.get("samples")
        return sorted(g["outcomes"]) if g is not None and "outcomes" in g else []

    def copy_keys(self, rows: np.ndarray, sha: np.ndarray, mask: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """Content keys of ``rows``: the file (image, mask and slice) and the decoded pixels, ``""`` unknown."""
        slices = self._column("slice")[rows]
        files = np.array([f"{a}|{b}|{s}" if a else "" for a, b, s in zip(sha, mask, slices)], dtype=object)
        return np.column_stack([files, pixels]).astype(object)

    def feature_set(self, name, rows, X, provenance, column_names, copy_keys, signatures) -> FeatureSet:
        """The :class:`FeatureSet` of store ``rows`` with features ``X``: their sample metadata and outcomes."""
        cols = {c: self._column(c)[rows] for c in ("id", "label", "subject", "split", "sequence")}
        return FeatureSet(
            name,
            X,
            cols["id"],
            cols["label"],
            cols["subject"],
            cols["split"],
            cols["sequence"],
            provenance,
            column_names,
            copy_keys,
            signatures,
            {c: self._outcome(c)[rows] for c in self.outcome_names()},
        )
