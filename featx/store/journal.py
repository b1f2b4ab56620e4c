"""A writer's journal: the rows it computed, appended as they come, before a commit makes them part of the store.

A journal file is a header (JSON) and length + CRC32 framed records; a torn last record (a kill in mid-write) is
ignored. Each record is one batch: typed entries (:class:`RowDone`, :class:`RowFailed`) and the features of the done
rows. Journals that featx wrote before the records were typed (tuples told apart by their length) still read.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from featx.errors import StoreError
from featx.images.signature import from_text

log = logging.getLogger(__name__)

_MAGIC = b"FEATXJ1\n"
_FRAME = struct.Struct("<II")  # payload length, crc32(payload)
NO_SPACE = (28, 27, 122)  # ENOSPC, EFBIG, EDQUOT
FSYNC_EVERY_S = 10.0  # journal fsync interval: kill -9 loses nothing (page cache); power loss at most this


@dataclass(frozen=True)
class RowDone:
    """A computed row: its store row and sample id, the sha256 of its file (and mask), a note, and the digest and
    signature of its decoded pixels ("" where none)."""

    row: int
    sample_id: str
    sha256: str
    mask_sha256: str = ""
    note: str = ""
    pixels: str = ""
    signature: str = ""


@dataclass(frozen=True)
class RowFailed:
    """A row that could not be computed, and why."""

    row: int
    sample_id: str
    reason: str
    sha256: str = ""
    mask_sha256: str = ""


class Batch(NamedTuple):
    """One journal record: rows the writer computed (with their features), rows that failed, and shard files that
    cluster workers wrote (their rows are in the files; the commit lists them)."""

    done: list[RowDone]
    X: np.ndarray
    failed: list[RowFailed]
    shards: list[str]


def _done(entry) -> RowDone:
    """A record as written now (a dict), or as featx wrote it before (row, id, sha256[, mask, note[, pixels[, sig]]])."""
    if isinstance(entry, dict):
        return RowDone(**entry)
    return RowDone(*entry[:7])


def _failed(entry) -> RowFailed:
    if isinstance(entry, dict):
        return RowFailed(**entry)
    return RowFailed(*entry[:5])


def no_space(exc: OSError, what: Path, saved: str) -> StoreError:
    reason = "the disk is full" if exc.errno in NO_SPACE else str(exc)
    return StoreError(f"cannot write {what}: {reason}. {saved} Free space (or choose another --store) and rerun.")


class Journal:
    """Append-only record of the rows one writer computed for one feature set (see the module docstring)."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        self.header = {**header, "uuid": header.get("uuid") or uuid.uuid4().hex}
        self.dtype = header.get("dtype", "<f4")
        self.rows_written = 0
        self.rows_ok = 0
        self._f = open(path, "wb")
        meta = json.dumps(self.header).encode()
        self._f.write(_MAGIC + struct.pack("<I", len(meta)) + meta)
        self._f.flush()
        self._synced = time.monotonic()

    def append(self, ok: list[RowDone], X: np.ndarray, failed: list[RowFailed]) -> None:
        """One batch: the ``ok`` rows with their features ``X`` (one row each), and the ``failed`` rows."""
        self._record({"ok": [asdict(e) for e in ok], "failed": [asdict(e) for e in failed]}, X)
        self.rows_written += len(ok) + len(failed)
        self.rows_ok += len(ok)

    def adopt(self, shard: Path, ok: int, failed: int) -> None:
        """A shard file a cluster worker wrote and sealed (``ok`` and ``failed`` rows): the commit lists it."""
        self._record({"ok": [], "failed": [], "shards": [str(shard)]}, np.zeros((0, int(self.header["dim"]))))
        self.rows_written += ok + failed
        self.rows_ok += ok

    def _record(self, meta: dict, X: np.ndarray) -> None:
        meta = json.dumps(meta).encode()
        payload = struct.pack("<I", len(meta)) + meta + np.ascontiguousarray(X, dtype=self.dtype).tobytes()
        try:
            self._f.write(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
            self._f.flush()
            if time.monotonic() - self._synced > FSYNC_EVERY_S:
                os.fsync(self._f.fileno())
                self._synced = time.monotonic()
        except OSError as exc:
            raise no_space(exc, self.path, f"The {self.rows_written} rows before this batch are kept in it.") from None

    def close(self) -> None:
        if not self._f.closed:
            try:
                self._f.close()
            except OSError:  # a full disk can fail the final flush; what was flushed stays readable
                pass


def read_journal(path: Path) -> tuple[dict, Iterator[Batch]]:
    """Header and an iterator of its records (:class:`Batch`); stops quietly at a torn or corrupt tail."""
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
                yield Batch(
                    [_done(e) for e in meta["ok"]], X, [_failed(e) for e in meta["failed"]], meta.get("shards", [])
                )

    return header, records()


def apply_journal(st, path: Path) -> int:
    """Write a journal's rows into ``st`` (a store in a transaction) by sample id; returns the rows applied.

    A sharded store makes the journal's rows one new shard, named by the journal's id: a journal whose shard the
    store lists already (a kill after the commit, before the journal was removed) adds nothing twice.
    """
    header, records = read_journal(path)
    name = header.get("feature_set")
    if not name:
        return 0
    if name not in st.feature_names() or st.identity(name) != header.get("identity"):
        log.warning("%s: left by a run for feature set %r with other settings; its rows are not used", path, name)
        for _ in records:
            pass
        return 0
    if header.get("uuid") and not st.begin_shard(name, header["uuid"]):
        for _ in records:
            pass
        return 0
    index = {sid: i for i, sid in enumerate(st.sample_ids())}
    applied = 0
    for ok, X, failed, shards in records:
        for shard in shards:
            applied += st.adopt(name, Path(shard))
        keep = [j for j, e in enumerate(ok) if e.sample_id in index]
        if keep:
            done = [ok[j] for j in keep]
            rows = np.array([index[e.sample_id] for e in done])
            st.write(name, rows, X[keep])
            st.set_sources(name, rows, [e.sha256 for e in done], "sha256")
            st.set_sources(name, rows, [e.mask_sha256 for e in done], "mask_sha256")
            st.set_sources(name, rows, [e.pixels for e in done], "pixels")
            noted = [(r, e.note) for r, e in zip(rows, done) if e.note]
            if noted:
                st.set_notes(name, [n[0] for n in noted], [n[1] for n in noted])
            signed = [(r, e.signature) for r, e in zip(rows, done) if e.signature]
            if signed:
                st.set_signatures(name, [s[0] for s in signed], np.stack([from_text(s[1]) for s in signed]))
        bad = [(index[f.sample_id], f) for f in failed if f.sample_id in index]
        if bad:
            st.mark_failed(name, [b[0] for b in bad], [b[1].reason for b in bad])
            st.set_sources(name, [b[0] for b in bad], [b[1].sha256 for b in bad], "sha256")
            st.set_sources(name, [b[0] for b in bad], [b[1].mask_sha256 for b in bad], "mask_sha256")
        applied += len(keep) + len(bad)
    return applied
