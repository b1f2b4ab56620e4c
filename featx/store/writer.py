"""Crash-safe writers of a feature store: many at once, and a commit costs what it writes.

HDF5 is not crash-safe: a process killed while it has a file open for writing can leave it unreadable. So no file
a reader may open is ever changed in place (the layout: :mod:`featx.store.sharded`):

* a writer's computed rows go to its own journal, ``STORE.h5.d/writers/<set>.<shard>.journal`` (length + CRC32
  framed records; a torn last record is ignored), locked by its own ``.lock`` (``flock``: the kernel drops it when
  the process dies, even on ``kill -9``). Two writers of one feature set and one shard are refused; writers of other
  sets, or of other shards of one set, run at once;
* a *transaction* takes the index lock ``STORE.h5.lock`` (held for the transaction only: they queue), copies the
  index (the samples table and the sets' attributes, never features) to ``STORE.h5.tmp<pid>``, changes the copy,
  writes the rows it changed as one new shard file (flushed, fsynced, renamed into place), fsyncs the copy and
  ``os.replace``-s it over the index (atomic on POSIX);
* a commit is one transaction that turns the journal into a shard named by the journal's id, then drops the
  journal.

Every kill leaves a readable store: before the index's rename, the old index (a new shard is listed nowhere: it is
removed by the next writer); after it, the new one and perhaps a journal whose shard the index lists already (the
next writer sees the shard's name and drops the journal). A writer starting applies the journals of writers that
died (their locks are free), so a rerun continues where a killed one stopped. Readers open the index at any time.

A store made by an earlier featx (one file, ``featx-store/1``) is upgraded by its first writer without copying its
features: the old file is linked into the folder as the sets' first part, and a new index replaces it.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import h5py

from featx.errors import StoreError
from featx.store.freshness import Stale, check_rows
from featx.store.jobs import Shard
from featx.store.journal import NO_SPACE, Journal, apply_journal, no_space
from featx.store.locks import Lock
from featx.store.sharded import INDEX_FORMAT, ShardedStore, data_dir_of, folder_name
from featx.store.shards import fsync
from featx.store.store import FeatureStore
from featx.store.upgrade import upgrade_index

log = logging.getLogger(__name__)

INDEX_WAIT_S = 600.0  # transactions are short; a lock held this long is a stuck process


class Registered(NamedTuple):
    """What :meth:`StoreWriter.register` found: the (row, sample) pairs to compute, the rows that left
    the manifest (kept, flagged removed), and the computed rows recomputed because their files changed."""

    todo: list
    removed: int
    stale: list[Stale]


def store_format(path: Path) -> str | None:
    """The format attribute of a store file (None when missing)."""
    try:
        with h5py.File(path, "r") as h5:
            return h5.attrs.get("format")
    except OSError:
        FeatureStore(path).close()  # names what is wrong with it
        raise


class StoreWriter:
    """A writer of a store: its transactions, and its journal; use as a context manager.

    Parameters
    ----------
    path : path
        The ``.h5`` store (created by the first transaction when missing).
    shard : Shard, optional
        The part of each manifest this writer computes (``--shard I/N``); writers of other shards run at once.
    """

    def __init__(self, path: str | Path, shard: Shard | None = None):
        self.path = Path(path)
        self.shard = shard
        self.data_dir = data_dir_of(self.path)
        self.writers = self.data_dir / "writers"
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.journal: Journal | None = None
        self.journal_path: Path | None = None
        self._slot: Lock | None = None

    # -------------------------------------------------------------- lifetime
    def __enter__(self) -> StoreWriter:
        try:
            self.writers.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._cannot_write(self.data_dir, exc) from None
        with self._index_locked():
            self._upgrade()
            self._clean()
        self._recover()
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
            if self._slot is not None:
                self._slot.release()
                self._slot = None

    def locked(self):
        """The index lock, held for a block: no transaction runs meanwhile (``featx store compact``)."""
        return self._index_locked()

    @contextmanager
    def _index_locked(self) -> Iterator[None]:
        lock = Lock(self.lock_path)
        try:
            got = lock.acquire(wait_s=INDEX_WAIT_S)
        except OSError as exc:
            raise self._cannot_write(self.lock_path, exc) from None
        if not got:
            raise StoreError(
                f"{self.path}: its index has been locked by {lock.holder} for {INDEX_WAIT_S:.0f} s (a stuck "
                "process?). Stop that process, or write to another --store."
            )
        try:
            yield
        finally:
            lock.release()

    def _upgrade(self) -> None:
        """A single-file store (``featx-store/1``) becomes an index and one part, without copying its features."""
        if not self.path.exists():
            return
        fmt = store_format(self.path)
        if fmt == INDEX_FORMAT:
            return
        FeatureStore(self.path).close()  # not a featx store (FORMAT), or a damaged one: named as itself
        self.writers.mkdir(parents=True, exist_ok=True)
        base = f"base-{uuid.uuid4().hex[:12]}.h5"
        tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        try:
            try:
                os.link(self.path, self.data_dir / base)  # the same file under a second name: nothing copied
            except OSError:  # a file system without hard links
                shutil.copyfile(self.path, self.data_dir / base)
                fsync(self.data_dir / base)
            upgrade_index(self.path, base, tmp)
            fsync(tmp)
            os.replace(tmp, self.path)
            fsync(self.path.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._cannot_write(tmp, exc) from None
        log.info("%s: upgraded to the sharded layout (%s); its features were not copied", self.path, INDEX_FORMAT)

    def _clean(self) -> None:
        """Remove what killed writers left and no index lists: copies of the index, unlisted shards, the folders
        of sets an ``--overwrite`` replaced. Runs under the index lock: no transaction is in flight."""
        for pattern in (".tmp*", ".compact*"):  # a copy of the index, a compaction killed midway
            for stale in self.path.parent.glob(self.path.name + pattern):
                stale.unlink(missing_ok=True)
        if not self.path.exists():
            return
        with ShardedStore(self.path) as st:
            listed = set(st.part_files())
            folders = {f.parent for f in listed} | {
                self.data_dir / st.set_attrs(n)["folder"] for n in st.feature_names()
            }
        for entry in self.data_dir.iterdir():
            if entry.name == "writers":
                continue
            if entry.is_dir() and entry not in folders:
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.is_dir():
                for f in entry.iterdir():
                    if f not in listed:
                        f.unlink(missing_ok=True)
            elif entry not in listed:
                entry.unlink(missing_ok=True)

    def _recover(self) -> None:
        """Commit the journals of writers that died (their lock is free), and one an earlier featx left; remove the
        shards of cluster workers that no journal names."""
        legacy = self.path.with_name(self.path.name + ".journal")
        if legacy.exists():
            self._apply(legacy)
        left = {p.with_suffix("") for p in [*self.writers.glob("*.journal"), *self.writers.glob("*.incoming")]}
        for slot_path in sorted(left):
            slot = Lock(slot_path.with_suffix(slot_path.suffix + ".lock"))
            if slot.acquire():
                try:
                    journal = slot_path.with_suffix(slot_path.suffix + ".journal")
                    if journal.exists():
                        self._apply(journal)
                    shutil.rmtree(slot_path.with_suffix(slot_path.suffix + ".incoming"), ignore_errors=True)
                finally:
                    slot.release()

    def _apply(self, journal: Path) -> None:
        with self.transaction() as st:
            n = apply_journal(st, journal)
        journal.unlink()
        shutil.rmtree(journal.with_suffix(".incoming"), ignore_errors=True)  # the workers' shards: listed now
        if n:
            log.warning("%s: recovered %d rows from a run that was interrupted", self.path, n)

    def _cannot_write(self, what: Path, exc: OSError) -> StoreError:
        if exc.errno in NO_SPACE:
            return no_space(exc, what, f"{self.path} is unchanged.")
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return StoreError(
            f"cannot write {what}: {reason.lower()} (a read-only folder or disk?). A store's folder must be "
            f"writable (the store, its .lock and its .d folder live there): fix the permissions or choose another "
            "--store."
        )

    # ---------------------------------------------------------- transactions
    @contextmanager
    def transaction(self) -> Iterator[ShardedStore]:
        """The store's index, on a copy that replaces it atomically on success, with the rows changed in one new
        shard per feature set."""
        with self._index_locked():
            self._upgrade()  # compacted into one file since this writer started
            tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
            self._check_space()
            try:
                if self.path.exists():
                    shutil.copyfile(self.path, tmp)
                st = ShardedStore(tmp, "a", data_dir=self.data_dir, store=self.path)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                if exc.errno in NO_SPACE:
                    raise no_space(exc, tmp, self._unchanged()) from None
                raise self._cannot_write(tmp, exc) from None
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            written = []
            try:
                yield st
                written = st.finish()
                st.close()
                fsync(tmp)
                os.replace(tmp, self.path)
                fsync(self.path.parent)
            except BaseException as exc:
                st.close()
                tmp.unlink(missing_ok=True)
                for f in written:  # listed by no index
                    f.unlink(missing_ok=True)
                if isinstance(exc, OSError):
                    raise no_space(exc, tmp, self._unchanged()) from None
                raise
            for folder in st.dropped:
                shutil.rmtree(folder, ignore_errors=True)

    def _unchanged(self) -> str:
        kept = f" and the computed rows are kept in {self.journal_path}" if self.journal is not None else ""
        return f"{self.path} is unchanged{kept}."

    def _check_space(self) -> None:
        """Refuse a transaction that would not fit: HDF5 does not fail gracefully on a full disk."""
        size = self.path.stat().st_size if self.path.exists() else 0
        journals = sum(j.stat().st_size for j in self.writers.glob("*.journal"))
        need = size + journals + (1 << 20)  # a copy of the index, and the journals' rows as shards
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
        :meth:`FeatureStore.create_feature_set` (dtype, feature_names). With a :class:`Shard`, the rows to compute
        are those of the shard's block of the manifest.
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
        todo = [(int(rows[i]), manifest[i]) for i in self.block(len(rows)) if overwrite or not filled[rows[i]]]
        return Registered(todo, removed, stale)

    def block(self, n: int) -> range:
        """The positions of a manifest of ``n`` rows this writer computes (its shard's block, or all)."""
        return self.shard.positions(n) if self.shard else range(n)

    # --------------------------------------------------------------- journal
    def start_journal(self, feature_set: str, identity: str, dim: int, dtype: str = "<f4") -> Journal:
        """Begin recording rows of ``feature_set`` (committed by :meth:`commit` or on exit).

        Raises
        ------
        StoreError
            When another process writes the same feature set and shard now.
        """
        slot = f"{folder_name(feature_set).rsplit('-', 1)[0]}.{self.shard or 'all'}"
        lock = Lock(self.writers / f"{slot}.lock")
        if not lock.acquire():
            part = f" (shard {self.shard.index}/{self.shard.count})" if self.shard else ""
            raise StoreError(
                f"{self.path}: feature set {feature_set!r}{part} is being written by {lock.holder}. Wait for it to "
                "finish, or give each job its own --shard I/N."
            )
        self._slot = lock
        self.journal_path = self.writers / f"{slot}.journal"
        if self.journal_path.exists():  # left by a killed run of this slot, which died after this writer started
            self._apply(self.journal_path)
        shutil.rmtree(self.incoming, ignore_errors=True)  # shards of a killed run that no journal names
        header = {
            "feature_set": feature_set,
            "identity": identity,
            "dim": dim,
            "dtype": dtype,
            "pid": os.getpid(),
            "shard": str(self.shard or "all"),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        try:
            self.journal = Journal(self.journal_path, header)
        except OSError as exc:
            raise no_space(exc, self.journal_path, f"{self.path} is unchanged.") from None
        return self.journal

    def commit(self) -> int:
        """Apply the journal to the store as one shard; returns the rows applied. The journal stays if this fails."""
        if self.journal is None:
            return 0
        self.journal.close()
        with self.transaction() as st:
            n = apply_journal(st, self.journal_path)
        self.journal_path.unlink(missing_ok=True)
        shutil.rmtree(self.incoming, ignore_errors=True)
        self.journal = None
        return n

    @property
    def incoming(self) -> Path:
        """Where cluster workers write the shards of this writer's rows (on storage they share with it)."""
        if self.journal_path is None:
            raise StoreError("start_journal first: the workers' shards belong to a journal")
        return self.journal_path.with_suffix(".incoming")


def store_writer(path: str | Path, shard: Shard | None = None) -> StoreWriter:
    """``with store_writer(path) as w:`` -> a crash-safe writer of the store (several may run at once)."""
    return StoreWriter(path, shard)
