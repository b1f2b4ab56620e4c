"""FeatureStore: the single-file layout, one HDF5 file holding a samples table and any number of feature sets.

What ``featx store compact`` writes to share a store, and what featx made before the sharded layout
(:mod:`featx.store.sharded`): read as it is; the first writer upgrades it without copying its features.

Layout (readable with plain h5py)::

    /                       attrs: format="featx-store/1", featx_version, created
    /samples/id             (n,) utf-8 strings: the row key of every feature set
    /samples/path|label|subject|sequence|split   (n,) utf-8 strings, "" when absent
    /samples/slice          (n,) int32, -1 when absent
    /samples/outcomes/<col> (n,) utf-8 strings: the manifest's outcome columns (a value, a time, an event), "" when
                            absent; a later manifest's values replace a row's
    /features/<name>/X      (n, D) float32 (float64 for radiomics), row i belongs to /samples/id[i]
    /features/<name>/filled (n,) bool: row computed
    /features/<name>/status (n,) uint8: 0 to do, 1 ok, 2 failed, 3 removed from the manifest (kept),
                            4 never in this set's manifest (a row another feature set added)
    /features/<name>/error  (n,) utf-8 strings: why a row failed, "" otherwise
    /features/<name>/note   (n,) utf-8 strings, optional: what to know about a computed row (NaN features)
    /features/<name>/source (n,) utf-8: the file(s) a row was computed from (image path, ``|mask path``)
    /features/<name>/stat   (n,) utf-8: their size and mtime then (the cheap check of a rerun)
    /features/<name>/sha256, mask_sha256   (n,) utf-8: sha256 of the image (DICOM folder: its files)
                            and of the mask a row was computed from; a rerun recomputes a row whose
                            files changed (:mod:`featx.store.freshness`)
    /features/<name>/pixels (n,) utf-8: sha256 of the decoded pixels ("" for a blank image, or a set made
                            before featx 0.9): copies whose files differ (:mod:`featx.dataset.copies`)
    /features/<name>/signature  (n, 256) float16, optional: each row's pixel signature (zeros where unknown),
                            for near-copies (:mod:`featx.images.signature`)
    /features/<name>        attrs: provenance (JSON), identity, kind, feature_dim, created, updated,
                            feature_names (JSON list, when the columns have names: radiomics)

Rows are keyed, not ordered: writers pass row indices, so runs can resume and go
out of order. The store knows nothing of backbones: provenance is an opaque dict.
Writing in place is not crash-safe (HDF5's nature): only compaction (into a new file, renamed when
whole) and tests write this class.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from featx import __version__
from featx.errors import StoreError
from featx.store.diagnose import differences, open_checked
from featx.store.feature_set import FeatureSet
from featx.store.samples import STR as _STR
from featx.store.samples import SampleTable
from featx.store.shards import live_status as _live_status
from featx.store.shards import read_rows

log = logging.getLogger(__name__)

FORMAT = "featx-store/1"
#: per feature set: what each row was computed from (stores before featx 0.6 kept the hashes in /samples)
SOURCE_COLUMNS = ("source", "stat", "sha256", "mask_sha256", "pixels")
_CHUNK_ROWS = 64
TODO, OK, FAILED, REMOVED, ABSENT = 0, 1, 2, 3, 4
STATUS_NAMES = {
    TODO: "to do",
    OK: "ok",
    FAILED: "failed",
    REMOVED: "removed from the manifest",
    ABSENT: "never in this set's manifest (a sample of another feature set)",
}


def check_existing(path, name: str, attrs, dim: int, provenance: dict, identity: str, overwrite: bool) -> bool:
    """Whether feature set ``name`` (its ``attrs``) is to be made anew (``overwrite``); False: it is accepted as it is.

    Raises
    ------
    StoreError
        When it was made with other settings (another identity) and not ``overwrite``, or with another dimension.
    """
    if attrs.get("feature_dim") != dim and attrs.get("identity") == identity:
        raise StoreError(f"{path}: feature set {name!r} has dimension {attrs.get('feature_dim')}, not {dim}.")
    if overwrite:
        return True
    if attrs.get("identity") != identity:
        changed = differences(json.loads(attrs["provenance"]), provenance)
        raise StoreError(
            f"{path}: feature set {name!r} was made with different settings ({changed}). "
            "Use another --name, or --overwrite to recompute it."
        )
    return False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _set_row(g: h5py.Group, r: int, x, status: int) -> None:
    """One row of a feature set: its values, computed (ok) or to do, no error, no note."""
    g["X"][r] = x
    g["filled"][r] = status == OK
    g["status"][r] = status
    g["error"][r] = ""
    if "note" in g:
        g["note"][r] = ""


class FeatureStore(SampleTable):
    """An HDF5 feature store; use as a context manager.

    Parameters
    ----------
    path : path
        The ``.h5`` file.
    mode : {'r', 'a'}
        Read only, or read/write (created when missing). HDF5 file locking refuses a
        second writer.
    """

    def __init__(self, path: str | Path, mode: str = "r"):
        self.path = Path(path)
        if mode not in ("r", "a"):
            raise ValueError("mode must be 'r' or 'a'")
        if mode == "r" and not self.path.is_file():
            raise StoreError(f"Store not found: {self.path}. Run 'featx extract ... --store {self.path}' first.")
        self.h5 = open_checked(self.path, mode, FORMAT, self.path, {"featx_version": __version__, "created": _now()})

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.h5.id.valid:
            self.h5.close()

    def flush(self) -> None:
        self.h5.flush()

    def set_sources(self, name: str, rows, values, column: str) -> None:
        """Record what rows of ``name`` were computed from: ``column`` is one of :data:`SOURCE_COLUMNS`."""
        ds = self._group(name)[column]
        kept = sorted((int(r), v) for r, v in zip(rows, values) if v)  # "" records nothing
        start = 0
        for i in range(1, len(kept) + 1):  # one slab write per run of consecutive rows (HDF5: per call cost)
            if i == len(kept) or kept[i][0] != kept[i - 1][0] + 1:
                ds[kept[start][0] : kept[i - 1][0] + 1] = [v for _, v in kept[start:i]]
                start = i

    def sources(self, name: str) -> dict[str, np.ndarray]:
        """Per-row source, stat, sha256 and mask_sha256 of ``name`` (``""`` where not recorded)."""
        g = self._group(name)
        return {c: g[c].asstr()[:].astype(object) for c in SOURCE_COLUMNS}

    # ------------------------------------------------------------- feature sets
    def create_feature_set(
        self,
        name: str,
        dim: int,
        provenance: dict,
        identity: str,
        kind: str,
        overwrite: bool = False,
        dtype: str = "float32",
        feature_names: list[str] | None = None,
    ) -> None:
        """Create a feature set, or accept an existing one made with the same ``identity``.

        ``dtype`` float64 keeps values such as pyradiomics' bit for bit; ``feature_names``
        names the columns.

        Raises
        ------
        StoreError
            When ``name`` exists with another identity (other spec, weights or
            preprocessing) and ``overwrite`` is false.
        """
        if name in self.feature_names():
            if not check_existing(
                self.path, name, self.h5["features"][name].attrs, dim, provenance, identity, overwrite
            ):
                return
            del self.h5["features"][name]
        n = self.n_samples
        g = self.h5.require_group("features").create_group(name)
        g.create_dataset(
            "X",
            shape=(n, dim),
            maxshape=(None, dim),
            dtype=np.dtype(dtype),
            chunks=(_CHUNK_ROWS, dim),
            fillvalue=np.nan,
            fletcher32=True,  # a checksum per chunk: a damaged block of features is an error, never wrong values
        )
        g.create_dataset("filled", shape=(n,), maxshape=(None,), dtype=bool, chunks=(4096,))
        g.create_dataset("status", shape=(n,), maxshape=(None,), dtype=np.uint8, chunks=(4096,))
        for c in ("error", *SOURCE_COLUMNS):
            g.create_dataset(c, shape=(n,), maxshape=(None,), dtype=_STR, chunks=(4096,))
        g.attrs.update(
            {
                "provenance": json.dumps(provenance, sort_keys=True),
                "identity": identity,
                "kind": kind,
                "feature_dim": dim,
                "created": _now(),
                "updated": _now(),
            }
        )
        if feature_names is not None:
            g.attrs["feature_names"] = json.dumps(list(feature_names))

    def _grow(self, name: str, n: int) -> None:
        g = self.h5["features"][name]
        if "status" not in g:  # made by an earlier featx: derive it
            g.create_dataset("status", data=_live_status(g), maxshape=(None,), chunks=(4096,))
        for c in SOURCE_COLUMNS:
            if c not in g:  # made by an earlier featx: the hashes were per sample, the paths the manifest's
                old = self.h5["samples"].get(c if c != "source" else "path")
                m = g["filled"].shape[0]
                values = old.asstr()[: min(m, old.shape[0])].astype(object) if old is not None else []
                data = np.array(list(values) + [""] * (m - len(values)), dtype=object)
                g.create_dataset(c, data=data, dtype=_STR, maxshape=(None,), chunks=(4096,))
        for ds in ("X", "filled", "status", "error", "note", "signature", *SOURCE_COLUMNS):
            if ds in g and g[ds].shape[0] < n:
                g[ds].resize(n, axis=0)

    def status(self, name: str) -> np.ndarray:
        """Per-row status codes (:data:`STATUS_NAMES`); derived for sets made before featx stored them."""
        g = self._group(name)
        return g["status"][:] if "status" in g else _live_status(g)

    def mark_membership(self, name: str, rows: np.ndarray) -> int:
        """Flag rows of ``name`` outside ``rows`` (the current manifest) as removed; restore the others.

        Removed rows keep their features but :meth:`load` leaves them out. Rows never
        computed for ``name`` (samples another feature set added) are flagged absent.
        Returns how many rows are flagged removed.
        """
        g = self._group(name)
        self._grow(name, self.n_samples)
        member = np.zeros(g["status"].shape[0], dtype=bool)
        member[np.asarray(rows, dtype=np.int64)] = True
        live = _live_status(g)
        g["status"][:] = np.where(member, live, np.where(live == TODO, ABSENT, REMOVED)).astype(np.uint8)
        return int((~member & (live != TODO)).sum())

    def filled(self, name: str) -> np.ndarray:
        """Boolean mask over rows: computed."""
        return self._group(name)["filled"][:]

    def errors(self, name: str) -> np.ndarray:
        """Per-row error text (``""`` for rows without error)."""
        return self._group(name)["error"].asstr()[:].astype(object)

    def write(self, name: str, rows: np.ndarray, X: np.ndarray) -> None:
        """Write feature rows by index and mark them filled."""
        g = self._group(name)
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows)
        rows, X = rows[order], np.asarray(X, dtype=g["X"].dtype)[order]
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1:  # contiguous: one slab write
            sl = slice(int(rows[0]), int(rows[-1]) + 1)
            g["X"][sl] = X
            g["filled"][sl] = True
            g["status"][sl] = OK
            g["error"][sl] = [""] * len(rows)
            if "note" in g:
                g["note"][sl] = [""] * len(rows)
        else:
            for r, x in zip(rows, X):
                _set_row(g, r, x, OK)
        g.attrs["updated"] = _now()

    def invalidate(self, name: str, rows) -> None:
        """Forget computed rows (their files changed): NaN, not filled, to do."""
        g = self._group(name)
        for r in np.asarray(rows, dtype=np.int64):
            _set_row(g, r, np.nan, TODO)
        g.attrs["updated"] = _now()

    def set_notes(self, name: str, rows: Iterable[int], notes: Iterable[str]) -> None:
        """Record a note on computed rows (``note`` dataset, created on first use)."""
        g = self._group(name)
        if "note" not in g:
            g.create_dataset("note", shape=g["filled"].shape, maxshape=(None,), dtype=_STR, chunks=(4096,))
        for r, text in zip(rows, notes):
            g["note"][int(r)] = text

    def set_signatures(self, name: str, rows, signatures: np.ndarray) -> None:
        """Record the pixel signatures of computed rows (``signature`` dataset, float16, created on first use)."""
        g = self._group(name)
        signatures = np.asarray(signatures, dtype=np.float16)
        if "signature" not in g:
            n, width = g["filled"].shape[0], signatures.shape[1]
            g.create_dataset(
                "signature", shape=(n, width), maxshape=(None, width), dtype=np.float16, chunks=(1024, width)
            )
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows)
        rows, signatures = rows[order], signatures[order]
        if rows[-1] - rows[0] == len(rows) - 1:  # contiguous: one slab write
            g["signature"][int(rows[0]) : int(rows[-1]) + 1] = signatures
        else:
            for r, s in zip(rows, signatures):
                g["signature"][int(r)] = s

    def notes(self, name: str) -> np.ndarray:
        """Per-row notes (``""`` for rows without one)."""
        g = self._group(name)
        return g["note"].asstr()[:].astype(object) if "note" in g else np.full(g["filled"].shape[0], "", object)

    def mark_failed(self, name: str, rows: Iterable[int], reasons: Iterable[str]) -> None:
        """Record why rows failed (they stay unfilled)."""
        g = self._group(name)
        for r, why in zip(rows, reasons):
            g["filled"][int(r)] = False
            g["status"][int(r)] = FAILED
            g["error"][int(r)] = why

    def load(self, name: str, include_removed: bool = False) -> FeatureSet:
        """The filled rows of ``name`` with their sample metadata.

        Rows flagged as removed from the manifest are left out unless ``include_removed``.

        Raises
        ------
        StoreError
            When the set is missing, has no filled row, or cannot be read (a damaged file: the
            feature blocks carry checksums).
        """
        try:
            return self._load(name, include_removed)
        except OSError as exc:
            raise StoreError(
                f"{self.path}: feature set {name!r} cannot be read, the file is damaged ({exc}). Restore it "
                "from a copy, or compute the features again into a new --store."
            ) from None

    def _load(self, name: str, include_removed: bool) -> FeatureSet:
        g = self._group(name)
        filled = g["filled"][:]
        if not include_removed and "status" in g:
            removed = filled & (g["status"][:] == REMOVED)
            if removed.any():
                log.info("%s: %d rows of %s are no longer in the manifest; left out", self.path, removed.sum(), name)
            filled &= ~removed
        if not filled.any():
            raise StoreError(f"{self.path}: feature set {name!r} has no computed rows. Run 'featx extract' again.")
        rows = np.flatnonzero(filled)
        return self.feature_set(
            name,
            rows,
            read_rows(g["X"], rows),
            self.provenance(name),
            self.column_names(name),
            self._copy_keys(g, rows),
            g["signature"][:][rows].astype(np.float32) if "signature" in g else None,
        )

    def signatures(self, name: str) -> np.ndarray | None:
        """Every row's pixel signature (zeros where unknown), None when the set has none."""
        g = self._group(name)
        return g["signature"][:] if "signature" in g else None

    def features(self, name: str, rows: np.ndarray) -> np.ndarray:
        """The features of store ``rows`` (sorted), read straight into one array."""
        return read_rows(self._group(name)["X"], np.asarray(rows, dtype=np.int64))

    def matrix_size(self, name: str) -> tuple[int, int, int]:
        """(rows, columns, bytes) of the computed rows of ``name``, as :meth:`load` would read them, without reading."""
        g = self._group(name)
        filled = g["filled"][:]
        if "status" in g:
            filled &= g["status"][:] != REMOVED
        rows, cols = int(filled.sum()), int(g["X"].shape[1])
        return rows, cols, rows * cols * g["X"].dtype.itemsize

    def content_keys(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ids, content keys, subjects, labels) of the computed rows of ``name``, without reading its features."""
        g = self._group(name)
        rows = np.flatnonzero(g["filled"][:] & (g["status"][:] != REMOVED if "status" in g else True))
        cols = [self._column(c)[rows] for c in ("id", "subject", "label")]
        return cols[0], self._copy_keys(g, rows), cols[1], cols[2]

    def _copy_keys(self, g: h5py.Group, rows: np.ndarray) -> np.ndarray:
        """Content keys of ``rows``: the file (image, mask and slice) and the decoded pixels, ``""`` unknown."""
        col = lambda c: g[c].asstr()[:][rows].astype(object) if c in g else np.full(len(rows), "", object)  # noqa: E731
        return self.copy_keys(rows, col("sha256"), col("mask_sha256"), col("pixels"))

    def begin_shard(self, name: str, shard_id: str) -> bool:
        """The single-file layout has no shards: a journal's rows are always written."""
        return True
