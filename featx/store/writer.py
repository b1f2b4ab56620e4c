"""Crash-safe, single-writer access to a feature store.

HDF5 is not crash-safe: a process killed while it has a file open for writing can
leave metadata half written and the file unreadable. So a writer never modifies
``STORE`` in place:

* an exclusive lock on ``STORE.lock`` (``flock``: the kernel drops it when the process
  dies, even on ``kill -9``) refuses a second writer;
* computed rows are appended to a journal ``STORE.journal`` (length + CRC32 framed
  records; a torn last record is ignored), never held in memory;
* a *transaction* copies ``STORE`` to ``STORE.tmp<pid>``, changes the copy, flushes and
  fsyncs it, and ``os.replace``-s it over ``STORE`` (atomic on POSIX), then drops the
  journal. A kill before the rename leaves the old store and the journal; a kill
  after it leaves a journal whose rows are already in the store (re-applying it is
  idempotent: rows are keyed by sample id).

The next writer applies a journal left by a killed run before it does anything else,
so a rerun continues where the killed one stopped. Readers open ``STORE`` at any time.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from featx.errors import StoreError
from featx.images.signature import from_text
from featx.store.freshness import Stale, check_rows
from featx.store.store import FeatureStore

log = logging.getLogger(__name__)

_MAGIC = b"FEATXJ1\n"
_FRAME = struct.Struct("<II")  # payload length, crc32(payload)
_NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
FSYNC_EVERY_S = 10.0  # journal fsync interval: kill -9 loses nothing (page cache); power loss at most this


def _no_space(exc: OSError, what: Path, saved: str) -> StoreError:
    reason = "the disk is full" if exc.errno in _NO_SPACE else str(exc)
    return StoreError(f"cannot write {what}: {reason}. {saved} Free space (or choose another --store) and rerun.")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Append-only record of computed rows for one feature set (see module docstring)."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        self.header = header
        self.dtype = header.get("dtype", "<f4")
        self.rows_written = 0
        self.rows_ok = 0
        self._f = open(path, "wb")
        meta = json.dumps(header).encode()
        self._f.write(_MAGIC + struct.pack("<I", len(meta)) + meta)
        self._f.flush()
        self._synced = time.monotonic()

    def append(self, ok: list[tuple], X: np.ndarray, failed: list[tuple]) -> None:
        """One batch: ``ok`` = (row, id, sha256[, mask sha256, note[, pixel digest]]) with rows of ``X``;
        ``failed`` = (row, id, reason, sha256[, mask sha256])."""
        meta = json.dumps({"ok": ok, "failed": failed}).encode()
        payload = struct.pack("<I", len(meta)) + meta + np.ascontiguousarray(X, dtype=self.dtype).tobytes()
        try:
            self._f.write(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
            self._f.flush()
            if time.monotonic() - self._synced > FSYNC_EVERY_S:
                os.fsync(self._f.fileno())
                self._synced = time.monotonic()
        except OSError as exc:
            raise _no_space(exc, self.path, f"The {self.rows_written} rows before this batch are kept in it.") from None
        self.rows_written += len(ok) + len(failed)
        self.rows_ok += len(ok)

    def close(self) -> None:
        if not self._f.closed:
            try:
                self._f.close()
            except OSError:  # a full disk can fail the final flush; what was flushed stays readable
                pass


def read_journal(path: Path) -> tuple[dict, Iterator[tuple[list, np.ndarray, list]]]:
    """Header and an iterator of (ok, X, failed) records; stops quietly at a torn or corrupt tail."""
    f = open(path, "rb")
    head = f.read(len(_MAGIC) + 4)
    if len(head) < len(_MAGIC) + 4 or not head.startswith(_MAGIC):
        f.close()
        return {}, iter(())
    (n,) = struct.unpack("<I", head[len(_MAGIC) :])
    try:
        header = json.loads(f.read(n))
    except ValueError:
        f.close()
        return {}, iter(())
    dim, dtype = int(header["dim"]), header.get("dtype", "<f4")

    def records():
        with f:
            while True:
                frame = f.read(_FRAME.size)
                if len(frame) < _FRAME.size:
                    return
                size, crc = _FRAME.unpack(frame)
                payload = f.read(size)
                if len(payload) < size or zlib.crc32(payload) != crc:
                    log.info("%s: ignoring a torn last record (the run was killed while writing it)", path)
                    return
                (m,) = struct.unpack("<I", payload[:4])
                meta = json.loads(payload[4 : 4 + m])
                X = np.frombuffer(payload[4 + m :], dtype=dtype).reshape(len(meta["ok"]), dim)
                yield meta["ok"], X, meta["failed"]

    return header, records()


def apply_journal(st: FeatureStore, path: Path) -> int:
    """Write a journal's rows into ``st`` by sample id; returns the number of rows applied."""
    header, records = read_journal(path)
    name = header.get("feature_set")
    if not name:
        return 0
    if name not in st.feature_names() or st.identity(name) != header.get("identity"):
        log.warning("%s: left by a run for feature set %r with other settings; its rows are not used", path, name)
        for _ in records:
            pass
        return 0
    index = {sid: i for i, sid in enumerate(st.sample_ids())}
    applied = 0
    for ok, X, failed in records:
        keep = [j for j, entry in enumerate(ok) if entry[1] in index]
        if keep:
            rows = np.array([index[ok[j][1]] for j in keep])
            st.write(name, rows, X[keep])
            st.set_sources(name, rows, [ok[j][2] for j in keep], "sha256")
            extra = [(r, ok[j][3], ok[j][4]) for r, j in zip(rows, keep) if len(ok[j]) > 3]  # radiomics rows
            if extra:
                st.set_sources(name, [e[0] for e in extra], [e[1] for e in extra], "mask_sha256")
                noted = [(e[0], e[2]) for e in extra if e[2]]
                if noted:
                    st.set_notes(name, [n[0] for n in noted], [n[1] for n in noted])
            digests = [(r, ok[j][5]) for r, j in zip(rows, keep) if len(ok[j]) > 5]
            if digests:
                st.set_sources(name, [d[0] for d in digests], [d[1] for d in digests], "pixels")
            signed = [(r, ok[j][6]) for r, j in zip(rows, keep) if len(ok[j]) > 6 and ok[j][6]]
            if signed:
                st.set_signatures(name, [s[0] for s in signed], np.stack([from_text(s[1]) for s in signed]))
        bad = [(index[f[1]], f[2], f[3], f[4] if len(f) > 4 else "") for f in failed if f[1] in index]
        if bad:
            st.mark_failed(name, [b[0] for b in bad], [b[1] for b in bad])
            st.set_sources(name, [b[0] for b in bad], [b[2] for b in bad], "sha256")
            st.set_sources(name, [b[0] for b in bad], [b[3] for b in bad], "mask_sha256")
        applied += len(keep) + len(bad)
    return applied


class Registered(NamedTuple):
    """What :meth:`StoreWriter.register` found: the (row, sample) pairs to compute, the rows that left
    the manifest (kept, flagged removed), and the computed rows recomputed because their files changed."""

    todo: list
    removed: int
    stale: list[Stale]


class StoreWriter:
    """The one writer of a store: lock, transactions, journal; use as a context manager.

    Parameters
    ----------
    path : path
        The ``.h5`` store (created by the first transaction when missing).

    Raises
    ------
    StoreError
        When another process is writing the same store.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self._lock_fd: int | None = None
        self.journal: Journal | None = None

    # -------------------------------------------------------------- lifetime
    def __enter__(self) -> StoreWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._cannot_write(self.path.parent, exc) from None
        self._lock()
        for stale in self.path.parent.glob(self.path.name + ".tmp*"):  # copies a killed transaction left
            stale.unlink(missing_ok=True)
        if self.journal_path.exists():
            with self.transaction() as st:
                n = apply_journal(st, self.journal_path)
            self.journal_path.unlink()
            if n:
                log.warning("%s: recovered %d rows from the run that was interrupted", self.path, n)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.journal is not None:
                try:
                    self.commit()
                except StoreError as failed:
                    if exc_type is None:
                        raise
                    # the run's own error is the one to report; the journal stays for the next run
                    log.warning("%s; its rows stay in %s for the next run", failed, self.journal_path)
        finally:
            self._unlock()

    def _lock(self) -> None:
        import fcntl

        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._cannot_write(self.lock_path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(
                f"{self.path} is being written by {holder}. Wait for it to finish, or write to another --store."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"featx pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        self._lock_fd = fd

    def _cannot_write(self, what: Path, exc: OSError) -> StoreError:
        if exc.errno in _NO_SPACE:
            return _no_space(exc, what, f"{self.path} is unchanged.")
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return StoreError(
            f"cannot write {what}: {reason.lower()} (a read-only folder or disk?). A store's folder must be "
            f"writable (the store, its .lock and .journal live there): fix the permissions or choose another --store."
        )

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    # ---------------------------------------------------------- transactions
    @contextmanager
    def transaction(self) -> Iterator[FeatureStore]:
        """A FeatureStore on a copy of the store that replaces it atomically on success."""
        tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        self._check_space()
        try:
            if self.path.exists():
                FeatureStore(self.path).close()  # a damaged store is named as itself, not as its copy
                shutil.copyfile(self.path, tmp)
            st = FeatureStore(tmp, "a")
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in _NO_SPACE:
                raise _no_space(exc, tmp, self._unchanged()) from None
            raise self._cannot_write(tmp, exc) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        try:
            yield st
            st.close()
            _fsync(tmp)
            os.replace(tmp, self.path)
            _fsync(self.path.parent)
        except OSError as exc:
            st.close()
            tmp.unlink(missing_ok=True)
            raise _no_space(exc, tmp, self._unchanged()) from None
        except BaseException:
            st.close()
            tmp.unlink(missing_ok=True)
            raise

    def _unchanged(self) -> str:
        kept = f" and the computed rows are kept in {self.journal_path}" if self.journal_path.exists() else ""
        return f"{self.path} is unchanged{kept}."

    def _check_space(self) -> None:
        """Refuse a transaction that would not fit: HDF5 does not fail gracefully on a full disk."""
        size = self.path.stat().st_size if self.path.exists() else 0
        journal = self.journal_path.stat().st_size if self.journal_path.exists() else 0
        need = size + 2 * journal + (1 << 20)
        free = shutil.disk_usage(self.path.parent).free
        if free < need:
            raise StoreError(
                f"cannot update {self.path}: {free / 1e6:.0f} MB free on its disk, {need / 1e6:.0f} MB needed. "
                f"{self._unchanged()} Free space (or choose another --store) and rerun."
            )

    def register(
        self,
        manifest,
        name: str,
        dim: int,
        provenance: dict,
        identity: str,
        kind: str,
        overwrite: bool = False,
        with_mask: bool = False,
        **create,
    ) -> Registered:
        """Add the manifest's samples and the feature set in one transaction.

        Computed rows whose files changed since (``with_mask``: the mask too) are forgotten and
        recomputed (:mod:`featx.store.freshness`). ``create``: more arguments of
        :meth:`FeatureStore.create_feature_set` (dtype, feature_names).
        """
        with self.transaction() as st:
            rows = st.add_samples(manifest)
            st.create_feature_set(name, dim, provenance, identity, kind=kind, overwrite=overwrite, **create)
            removed = st.mark_membership(name, rows)
            stale = check_rows(st, name, rows, manifest, with_mask=with_mask)
            filled = st.filled(name)
        if removed:
            log.warning(
                "%s: %d sample(s) of %s are no longer in the manifest: kept, flagged 'removed', left out by fit",
                self.path,
                removed,
                name,
            )
        todo = [(int(r), s) for r, s in zip(rows, manifest) if overwrite or not filled[r]]
        return Registered(todo, removed, stale)

    # --------------------------------------------------------------- journal
    def start_journal(self, feature_set: str, identity: str, dim: int, dtype: str = "<f4") -> Journal:
        """Begin recording rows of ``feature_set`` (committed by :meth:`commit` or on exit)."""
        try:
            self.journal = Journal(
                self.journal_path,
                {
                    "feature_set": feature_set,
                    "identity": identity,
                    "dim": dim,
                    "dtype": dtype,
                    "pid": os.getpid(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                },
            )
        except OSError as exc:
            raise _no_space(exc, self.journal_path, f"{self.path} is unchanged.") from None
        return self.journal

    def commit(self) -> int:
        """Apply the journal to the store; returns the rows applied. The journal stays if this fails."""
        if self.journal is None:
            return 0
        self.journal.close()
        with self.transaction() as st:
            n = apply_journal(st, self.journal_path)
        self.journal_path.unlink(missing_ok=True)
        self.journal = None
        return n


def store_writer(path: str | Path) -> StoreWriter:
    """``with store_writer(path) as w:`` -> the store's single, crash-safe writer."""
    return StoreWriter(path)
