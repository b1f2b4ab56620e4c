"""The parts a feature set of a sharded store is made of, and the writing of a new one.

A *shard* is one HDF5 file that a commit wrote, whole, then never changes::

    /                       attrs: format="featx-shard/1", feature_set, identity, created, featx_version
    /rows    (k,) int64     the store rows (rows of the index's /samples table) this shard holds, ascending
    /id      (k,) utf-8     their sample ids (checked against the index on reading: a mismatch is damage)
    /status  (k,) uint8     1 ok, 2 failed, 0 to do (a row forgotten because its files changed)
    /xpos    (k,) int64     the row of X holding the row's features, -1 for a row without (failed, to do)
    /X       (m, D)         the features of the ok rows (float32, float64 for radiomics), fletcher32 chunks
    /error, /note, /source, /stat, /sha256, /mask_sha256, /pixels   (k,) utf-8, "" when none
    /signature (k, W) float16, optional: each row's pixel signature

A row's state is that of the last part (in commit order) that holds it. A store made before the sharded layout
(``featx-store/1``: every row of a set in one group) is read as one *legacy part* whose rows are all the rows.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from featx import __version__
from featx.errors import StoreError
from featx.store.samples import STR

SHARD_FORMAT = "featx-shard/1"
#: per-row text columns of a part (what a row was computed from, why it failed, what to know of it)
TEXT = ("error", "note", "source", "stat", "sha256", "mask_sha256", "pixels")
TODO, OK, FAILED = 0, 1, 2
_CHUNK_ROWS = 64


def read_rows(ds: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``ds[rows]`` (sorted row indices) read straight into one array, a run of consecutive rows at a time: never the
    whole dataset and then a copy of its rows (twice the memory of a large feature set)."""
    out = np.empty((len(rows), *ds.shape[1:]), dtype=ds.dtype)
    if len(rows) == ds.shape[0]:  # every row: one read
        ds.read_direct(out)
        return out
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    start = 0
    for run in np.split(rows, breaks):
        if len(run):
            ds.read_direct(out, np.s_[run[0] : run[-1] + 1], np.s_[start : start + len(run)])
            start += len(run)
    return out


def live_status(g: h5py.Group) -> np.ndarray:
    """Status from the filled mask and error text alone: ok, failed, or to do."""
    errs = g["error"].asstr()[:]
    return np.where(g["filled"][:], OK, np.where(errs != "", FAILED, TODO)).astype(np.uint8)


class Part:
    """One part of a feature set: which rows it holds, their state and columns, and their features."""

    def __init__(self, g: h5py.Group, name: str, legacy_samples: h5py.Group | None = None):
        self.g, self.name = g, name
        self._legacy = legacy_samples  # a featx-store/1 group: every row, in row order
        if legacy_samples is None:
            self.rows = g["rows"][:]
            self.xpos = g["xpos"][:]
        else:
            k = g["filled"].shape[0]
            self.rows = np.arange(k, dtype=np.int64)
            self.xpos = self.rows

    def status(self) -> np.ndarray:
        return live_status(self.g) if self._legacy is not None else self.g["status"][:]

    def ids(self) -> np.ndarray | None:
        return self.g["id"].asstr()[:].astype(object) if self._legacy is None else None

    def column(self, c: str) -> np.ndarray:
        g = self.g
        if c in g:
            return g[c].asstr()[:].astype(object)
        old = self._legacy.get(c if c != "source" else "path") if self._legacy is not None else None
        if old is not None and c != "note":  # made before featx 0.6: the hashes were per sample
            values = old.asstr()[: min(len(self.rows), old.shape[0])].astype(object)
            return np.concatenate([values, np.full(len(self.rows) - len(values), "", dtype=object)])
        return np.full(len(self.rows), "", dtype=object)

    def signature(self) -> np.ndarray | None:
        return self.g["signature"][:] if "signature" in self.g else None

    @property
    def dim(self) -> int:
        return int(self.g["X"].shape[1])

    def read_into(self, out: np.ndarray, dest: np.ndarray, positions: np.ndarray) -> None:
        """Rows ``positions`` of X into rows ``dest`` of ``out``, straight, a run of consecutive rows at a time: a
        large set is never read twice over in memory."""
        order = np.argsort(positions, kind="stable")
        p, d = positions[order], dest[order]
        breaks = np.flatnonzero((np.diff(p) != 1) | (np.diff(d) != 1)) + 1
        ds = self.g["X"]
        for run_p, run_d in zip(np.split(p, breaks), np.split(d, breaks)):
            if len(run_p):
                ds.read_direct(out, np.s_[run_p[0] : run_p[-1] + 1], np.s_[run_d[0] : run_d[-1] + 1])


def open_part(data_dir: Path, entry: dict, name: str, files: dict) -> Part:
    """The part an index entry names (``{"file": ..., "group": ...}``); ``files`` caches the open HDF5 files."""
    path = data_dir / entry["file"]
    h5 = files.get(path)
    if h5 is None:
        try:
            h5 = files[path] = h5py.File(path, "r")
        except OSError as exc:
            raise StoreError(
                f"{path}: a part of feature set {name!r} cannot be read ({exc}). The store's folder "
                f"{data_dir} must travel with its index: restore it, or compute the features again."
            ) from None
    g = h5[entry.get("group", "/")]
    return Part(g, name, h5["samples"] if entry.get("legacy") else None)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _table(h5: h5py.File, rows, ids, status, xpos, cols: dict, signatures) -> None:
    """A shard's row table (rows ascending)."""
    h5.create_dataset("rows", data=np.asarray(rows, dtype=np.int64))
    h5.create_dataset("id", data=np.asarray(ids, dtype=object), dtype=STR)
    h5.create_dataset("status", data=np.asarray(status, dtype=np.uint8))
    h5.create_dataset("xpos", data=np.asarray(xpos, dtype=np.int64))
    for c in TEXT:
        h5.create_dataset(c, data=np.asarray(cols.get(c, [""] * len(rows)), dtype=object), dtype=STR)
    if signatures is not None:
        h5.create_dataset("signature", data=np.asarray(signatures, dtype=np.float16))


def _seal(tmp: Path, path: Path) -> None:
    fsync(tmp)
    os.replace(tmp, path)


def _attrs(name: str, identity: str) -> dict:
    return {
        "format": SHARD_FORMAT,
        "feature_set": name,
        "identity": identity,
        "featx_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_shard(folder: Path, name: str, identity: str, rows, ids, status, X, cols: dict, signatures=None) -> Path:
    """A whole shard at once, sealed (written aside, fsynced, named): what a cluster worker writes for the rows it
    computed. ``X`` holds one row per ok row, in order; ``cols``: :data:`TEXT` columns. Returns its path."""
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    status = np.asarray(status, dtype=np.uint8)
    ok = np.flatnonzero(status == OK)
    xpos = np.full(len(rows), -1, dtype=np.int64)
    xpos[ok] = np.arange(len(ok))
    path = folder / f"{uuid.uuid4().hex}.h5"
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as h5:
        h5.attrs.update(_attrs(name, identity))
        X = np.asarray(X)
        h5.create_dataset("X", data=X, chunks=(min(_CHUNK_ROWS, max(1, len(X))), X.shape[1]), fletcher32=True,
                          maxshape=(None, X.shape[1]))  # fmt: skip
        take = lambda a: np.asarray(a, dtype=object)[order]  # noqa: E731
        sig = None if signatures is None else np.asarray(signatures)[order]
        _table(h5, rows[order], take(ids), status[order], xpos[order], {c: take(v) for c, v in cols.items()}, sig)
    _seal(tmp, path)
    return path


class ShardBuilder:
    """The rows a transaction changes in one feature set, written as one new shard file.

    Each changed row starts as a copy of its current state (``current(row) -> (status, columns, x or None,
    signature)``) and is then changed; features go straight to the file, so a large commit is never held in memory.
    :meth:`finish` writes the row table, flushes and fsyncs, and names the file; until the index lists it, the
    file is nobody's.
    """

    def __init__(self, folder: Path, name: str, identity: str, dim: int, dtype, current, shard_id: str | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.shard_id = shard_id or uuid.uuid4().hex
        self.path = folder / f"{self.shard_id}.h5"
        self.tmp = folder / f"{self.shard_id}.h5.tmp"
        self.current = current
        self.h5 = h5py.File(self.tmp, "w")
        self.h5.attrs.update(_attrs(name, identity))
        self.X = self.h5.create_dataset(
            "X",
            shape=(0, dim),
            maxshape=(None, dim),
            dtype=np.dtype(dtype),
            chunks=(_CHUNK_ROWS, dim),
            fletcher32=True,  # a checksum per chunk: a damaged block of features is an error, never wrong values
        )
        self.at: dict[int, int] = {}  # store row -> its place in the lists below
        self.rows: list[int] = []
        self.status: list[int] = []
        self.xpos: list[int] = []
        self.cols: dict[str, list[str]] = {c: [] for c in TEXT}
        self.signatures: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def _touch(self, rows, keep_x: bool) -> list[int]:
        """Places of ``rows``, each added with its current state on first touch."""
        places = []
        for r in np.asarray(rows, dtype=np.int64).tolist():
            j = self.at.get(r)
            if j is None:
                status, cols, x, sig = self.current(r, keep_x)
                j = self.at[r] = len(self.rows)
                self.rows.append(r)
                self.status.append(status)
                self.xpos.append(-1)
                for c in TEXT:
                    self.cols[c].append(cols[c])
                if sig is not None:
                    self.signatures[r] = sig
                if x is not None:
                    self._put_x([j], x[None, :])
            places.append(j)
        return places

    def _put_x(self, places: list[int], X: np.ndarray) -> None:
        new = [j for j in places if self.xpos[j] < 0]
        if new:
            m = self.X.shape[0]
            self.X.resize(m + len(new), axis=0)
            for k, j in enumerate(new):
                self.xpos[j] = m + k
        pos = np.array([self.xpos[j] for j in places])
        if len(pos) and pos[-1] - pos[0] == len(pos) - 1 and (np.diff(pos) == 1).all():
            self.X[int(pos[0]) : int(pos[-1]) + 1] = X
        else:
            for p, x in zip(pos, X):
                self.X[int(p)] = x

    def write(self, rows, X: np.ndarray) -> None:
        places = self._touch(rows, keep_x=False)
        self._put_x(places, np.asarray(X, dtype=self.X.dtype))
        for j in places:
            self.status[j] = OK
            self.cols["error"][j] = ""
            self.cols["note"][j] = ""

    def set_column(self, c: str, rows, values) -> None:
        for j, v in zip(self._touch(rows, keep_x=True), values):
            if v or c == "note":  # "" records nothing, as in the single-file layout
                self.cols[c][j] = v

    def fail(self, rows, reasons) -> None:
        for j, why in zip(self._touch(rows, keep_x=False), reasons):
            self.status[j], self.xpos[j] = FAILED, -1
            self.cols["error"][j] = why

    def forget(self, rows) -> None:
        for j in self._touch(rows, keep_x=False):
            self.status[j], self.xpos[j] = TODO, -1
            self.cols["error"][j] = ""
            self.cols["note"][j] = ""

    def set_signatures(self, rows, signatures: np.ndarray) -> None:
        for r, s in zip(np.asarray(rows, dtype=np.int64).tolist(), signatures):
            self._touch([r], keep_x=True)
            self.signatures[r] = np.asarray(s, dtype=np.float16)

    def finish(self, ids: np.ndarray) -> Path:
        """Write the row table (``ids``: the index's sample ids), flush, fsync and name the shard; returns its path."""
        order = np.argsort(np.array(self.rows, dtype=np.int64), kind="stable")
        rows = np.array(self.rows, dtype=np.int64)[order]
        sig = None
        if self.signatures:
            sig = np.zeros((len(rows), len(next(iter(self.signatures.values())))), dtype=np.float16)
            for k, r in enumerate(rows.tolist()):
                if r in self.signatures:
                    sig[k] = self.signatures[r]
        cols = {c: np.array(self.cols[c], dtype=object)[order] for c in TEXT}
        xpos = np.array(self.xpos, dtype=np.int64)[order]
        _table(self.h5, rows, ids[rows], np.array(self.status, dtype=np.uint8)[order], xpos, cols, sig)
        self.h5.close()
        _seal(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        if self.h5.id.valid:
            self.h5.close()
        self.tmp.unlink(missing_ok=True)
