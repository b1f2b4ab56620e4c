"""The sharded store: a small index file, and the feature sets' rows in shard files beside it.

Layout (every file readable with plain h5py)::

    STORE.h5                the index, format="featx-store/2"
      /samples/...          the samples table (:mod:`featx.store.samples`)
      /features/<name>      attrs: provenance (JSON), identity, kind, feature_dim, dtype, created, updated,
                            feature_names (JSON, when the columns have names), folder, parts (JSON list, commit order)
      /features/<name>/outside (n,) bool: the row is not in the manifest this set was last registered with
    STORE.h5.d/<folder>/<id>.h5     the set's shards (:mod:`featx.store.shards`), never changed once listed
    STORE.h5.d/writers/             live writers' journals and locks (:mod:`featx.store.writer`)

A commit writes one new shard (what it computed, and nothing else), then replaces the index with a copy that lists
it: the cost of a commit is its rows plus the index (the samples table), never the other feature sets or the rows
already stored. ``featx store compact`` writes the whole store back into one file (``featx-store/1``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from featx import __version__
from featx.errors import StoreError
from featx.store.diagnose import open_checked
from featx.store.feature_set import FeatureSet
from featx.store.samples import SampleTable
from featx.store.shards import OK, TEXT, TODO, ShardBuilder, open_part
from featx.store.store import ABSENT, REMOVED, SOURCE_COLUMNS, check_existing
from featx.store.view import View

INDEX_FORMAT = "featx-store/2"


def data_dir_of(path: Path) -> Path:
    """The folder beside a store's index that holds its shards and writers."""
    return path.with_name(path.name + ".d")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def folder_name(name: str) -> str:
    """A folder for one feature set's shards: its name made safe for any file system, and a unique suffix (an
    ``--overwrite`` makes a new folder; the old one goes once the index no longer lists it)."""
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:80]}-{uuid.uuid4().hex[:8]}"


class ShardedStore(SampleTable):
    """A sharded store's index and its parts: the read interface of :class:`~featx.store.store.FeatureStore`.

    In a writer's transaction (``mode="a"`` on a copy of the index, ``data_dir`` the store's own folder), the row
    changes of each feature set (:meth:`write`, :meth:`mark_failed`, :meth:`set_sources` ...) gather in one new shard
    that :meth:`finish` writes and lists.
    """

    def __init__(self, path: str | Path, mode: str = "r", *, data_dir: Path | None = None, store: Path | None = None):
        self.path = Path(store or path)  # what messages name: the store, not the copy a transaction changes
        self.data_dir = data_dir or data_dir_of(Path(path))
        self.h5 = open_checked(path, mode, INDEX_FORMAT, self.path, {"featx_version": __version__, "created": now()})
        self._files: dict[Path, h5py.File] = {}
        self._views: dict[str, View] = {}
        self._pending: dict[str, ShardBuilder] = {}
        self._shard_ids: dict[str, str] = {}
        self._adopted: list[Path] = []  # shards of cluster workers this transaction lists
        self._new_parts: dict[str, list[dict]] = {}  # their index entries, written once by finish()
        self._listed: dict[str, set[str]] = {}
        self.dropped: list[Path] = []  # folders of sets an --overwrite replaced: removed once the index is in place

    def __enter__(self) -> ShardedStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for b in self._pending.values():
            b.discard()
        self._pending.clear()
        for f in self._files.values():
            if f.id.valid:
                f.close()
        self._files.clear()
        if self.h5.id.valid:
            self.h5.close()

    def flush(self) -> None:
        self.h5.flush()

    # ------------------------------------------------------------- feature sets
    def parts(self, name: str) -> list[dict]:
        """The index's entries of a set's parts, in commit order."""
        return json.loads(self._group(name).attrs.get("parts", "[]"))

    def part_files(self) -> list[Path]:
        """Every file the index lists (the shards, and a base made by an earlier featx)."""
        return sorted({self.data_dir / e["file"] for name in self.feature_names() for e in self.parts(name)})

    def _view(self, name: str) -> View:
        if name not in self._views:
            parts = [open_part(self.data_dir, e, name, self._files) for e in self.parts(name)]
            self._views[name] = View(parts, self.n_samples, self.sample_ids(), f"{self.path} ({name})")
        return self._views[name]

    def _live(self, name: str) -> np.ndarray:
        live = self._view(name).live
        b = self._pending.get(name)
        if b is not None and len(b):
            live = live.copy()
            live[b.rows] = b.status
        return live

    def _text(self, name: str, c: str) -> np.ndarray:
        out = self._view(name).column(c)
        b = self._pending.get(name)
        if b is not None and len(b):
            out = out.copy()
            out[b.rows] = b.cols[c]
        return out

    def _member(self, name: str) -> np.ndarray:
        """Rows of the set's manifest (all, until a manifest was registered; rows added since are too)."""
        g = self._group(name)
        n = self.n_samples
        out = g["outside"][:n] if "outside" in g else np.zeros(0, bool)
        return ~np.concatenate([out, np.zeros(max(0, n - len(out)), bool)])

    def status(self, name: str) -> np.ndarray:
        live, member = self._live(name), self._member(name)
        return np.where(member, live, np.where(live == TODO, ABSENT, REMOVED)).astype(np.uint8)

    def filled(self, name: str) -> np.ndarray:
        return self._live(name) == OK

    def errors(self, name: str) -> np.ndarray:
        return self._text(name, "error")

    def notes(self, name: str) -> np.ndarray:
        return self._text(name, "note")

    def sources(self, name: str) -> dict[str, np.ndarray]:
        return {c: self._text(name, c) for c in SOURCE_COLUMNS}

    def _rows(self, name: str, include_removed: bool = False) -> np.ndarray:
        ok = self._live(name) == OK
        return np.flatnonzero(ok if include_removed else ok & self._member(name))

    def load(self, name: str, include_removed: bool = False) -> FeatureSet:
        """The computed rows of ``name`` (as :meth:`FeatureStore.load <featx.store.store.FeatureStore.load>`)."""
        try:
            return self._load(name, include_removed)
        except OSError as exc:
            raise StoreError(
                f"{self.path}: feature set {name!r} cannot be read, the file is damaged ({exc}). Restore it "
                "from a copy, or compute the features again into a new --store."
            ) from None

    def _load(self, name: str, include_removed: bool) -> FeatureSet:
        g = self._group(name)
        rows = self._rows(name, include_removed)
        if not len(rows):
            raise StoreError(f"{self.path}: feature set {name!r} has no computed rows. Run 'featx extract' again.")
        view = self._view(name)
        X = view.features(rows, int(g.attrs["feature_dim"]), np.dtype(g.attrs.get("dtype", "float32")))
        sig = view.signature()
        return self.feature_set(
            name,
            rows,
            X,
            self.provenance(name),
            self.column_names(name),
            self.copy_keys(rows, *(view.column(c)[rows] for c in ("sha256", "mask_sha256", "pixels"))),
            sig[rows].astype(np.float32) if sig is not None else None,
        )

    def signatures(self, name: str) -> np.ndarray | None:
        """Every row's pixel signature (zeros where unknown), None when no part has one."""
        return self._view(name).signature()

    def features(self, name: str, rows: np.ndarray) -> np.ndarray:
        """The features of store ``rows`` (computed rows), read part by part into one array."""
        g = self._group(name)
        rows = np.asarray(rows, dtype=np.int64)
        return self._view(name).features(rows, int(g.attrs["feature_dim"]), np.dtype(g.attrs.get("dtype", "float32")))

    def matrix_size(self, name: str) -> tuple[int, int, int]:
        g = self._group(name)
        rows, cols = len(self._rows(name)), int(g.attrs["feature_dim"])
        return rows, cols, rows * cols * np.dtype(g.attrs.get("dtype", "float32")).itemsize

    def content_keys(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rows = self._rows(name)
        view = self._view(name)
        keys = self.copy_keys(rows, *(view.column(c)[rows] for c in ("sha256", "mask_sha256", "pixels")))
        cols = [self._column(c)[rows] for c in ("id", "subject", "label")]
        return cols[0], keys, cols[1], cols[2]

    # ---------------------------------------------------- changes (transactions)
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
        """Create a feature set, or accept an existing one made with the same ``identity`` (as the single-file
        layout does); ``overwrite`` starts it anew in a new folder."""
        if name in self.feature_names():
            g = self.h5["features"][name]
            if not check_existing(self.path, name, g.attrs, dim, provenance, identity, overwrite):
                return
            self.dropped.append(self.data_dir / g.attrs["folder"])
            self._views.pop(name, None)
            b = self._pending.pop(name, None)
            if b is not None:
                b.discard()
            del self.h5["features"][name]
        g = self.h5.require_group("features").create_group(name)
        g.create_dataset("outside", shape=(self.n_samples,), maxshape=(None,), dtype=bool, chunks=(4096,))
        g.attrs.update(
            {
                "provenance": json.dumps(provenance, sort_keys=True),
                "identity": identity,
                "kind": kind,
                "feature_dim": dim,
                "dtype": np.dtype(dtype).name,
                "folder": folder_name(name),
                "parts": "[]",
                "created": now(),
                "updated": now(),
            }
        )
        if feature_names is not None:
            g.attrs["feature_names"] = json.dumps(list(feature_names))

    def _grow(self, name: str, n: int) -> None:
        m = self.h5["features"][name]["outside"]
        if m.shape[0] < n:
            m.resize((n,))
        self._views.pop(name, None)  # the samples table grew: views are sized by it

    def mark_membership(self, name: str, rows: np.ndarray) -> int:
        """Flag the set's rows outside ``rows`` (the current manifest) as removed; returns how many are."""
        g = self._group(name)
        self._grow(name, self.n_samples)
        member = np.zeros(self.n_samples, dtype=bool)
        member[np.asarray(rows, dtype=np.int64)] = True
        g["outside"][:] = ~member
        return int((~member & (self._live(name) != TODO)).sum())

    def begin_shard(self, name: str, shard_id: str) -> bool:
        """Name the shard this transaction writes for ``name`` (a journal's id); False when the index lists it
        already (its rows are in)."""
        if any(Path(e["file"]).stem == shard_id for e in self.parts(name)):
            return False
        self._shard_ids[name] = shard_id
        return True

    def adopt(self, name: str, shard: Path) -> int:
        """List a sealed shard a cluster worker wrote for ``name`` (linked into the set's folder; it stays where it
        is until the index lists it); returns its rows, 0 when the index lists it already or it is gone."""
        g = self._group(name)
        listed = self._listed.setdefault(name, {Path(e["file"]).name for e in self.parts(name)})
        if shard.name in listed or not shard.exists():
            return 0
        with h5py.File(shard, "r") as h5:
            if h5.attrs.get("identity") != g.attrs["identity"]:
                return 0
            rows = int(h5["rows"].shape[0])
        folder = self.data_dir / g.attrs["folder"]
        folder.mkdir(parents=True, exist_ok=True)
        try:
            os.link(shard, folder / shard.name)  # a second name, nothing copied
        except FileExistsError:
            pass
        except OSError:
            shutil.copyfile(shard, folder / shard.name)
        self._adopted.append(folder / shard.name)
        self._new_parts.setdefault(name, []).append({"file": f"{g.attrs['folder']}/{shard.name}"})
        listed.add(shard.name)
        return rows

    def _builder(self, name: str) -> ShardBuilder:
        b = self._pending.get(name)
        if b is None:
            g = self._group(name)
            view = self._view(name)
            dim, dtype = int(g.attrs["feature_dim"]), np.dtype(g.attrs.get("dtype", "float32"))

            def current(r: int, keep_x: bool):
                status = int(view.live[r])
                cols = {c: view.column(c)[r] for c in TEXT}
                x = view.features(np.array([r]), dim, dtype)[0] if keep_x and status == OK else None
                sig = view.signature()
                return status, cols, x, (sig[r] if sig is not None else None)

            b = self._pending[name] = ShardBuilder(
                self.data_dir / g.attrs["folder"], name, self.identity(name), dim, dtype, current,
                self._shard_ids.pop(name, None),
            )  # fmt: skip
        return b

    def write(self, name: str, rows, X: np.ndarray) -> None:
        """Write feature rows by index and mark them computed."""
        self._builder(name).write(rows, X)

    def mark_failed(self, name: str, rows, reasons) -> None:
        self._builder(name).fail(rows, list(reasons))

    def invalidate(self, name: str, rows) -> None:
        """Forget computed rows (their files changed): to do again."""
        self._builder(name).forget(rows)

    def set_sources(self, name: str, rows, values, column: str) -> None:
        self._builder(name).set_column(column, rows, list(values))

    def set_notes(self, name: str, rows, notes) -> None:
        self._builder(name).set_column("note", rows, list(notes))

    def set_signatures(self, name: str, rows, signatures: np.ndarray) -> None:
        self._builder(name).set_signatures(rows, signatures)

    def finish(self) -> list[Path]:
        """Write the transaction's shards and list them in the index; returns their files (and those adopted)."""
        written = list(self._adopted)
        for name, entries in self._new_parts.items():
            g = self.h5["features"][name]
            g.attrs["parts"] = json.dumps([*self.parts(name), *entries])
            g.attrs["updated"] = now()
        self._new_parts.clear()
        ids = self.sample_ids()
        for name, b in list(self._pending.items()):
            if not len(b):
                b.discard()
                continue
            path = b.finish(ids)
            g = self.h5["features"][name]
            g.attrs["parts"] = json.dumps([*self.parts(name), {"file": f"{g.attrs['folder']}/{path.name}"}])
            g.attrs["updated"] = now()
            written.append(path)
        self._pending.clear()
        return written
