"""Does a stored row still describe its file? The check every rerun makes before it skips a row.

A row is fresh when it was computed from the file(s) the manifest names now:

* same path(s) and same size and mtime as when it was computed: fresh, nothing is read;
* otherwise (the file was touched, copied, or the id now names another file: another site
  with the same relative names) the file is hashed; the same sha256 as recorded: fresh (the
  new path and stat are recorded); another: **stale**.

Stale rows are recomputed by the run that found them (the run says how many and why); the
old values are forgotten at once, so no reader sees them again. Rows with no record of their
file (made by a featx that did not keep one) are recomputed too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.images.loader import content_hash

log = logging.getLogger(__name__)


def file_stat(path: str | Path) -> str:
    """``size:mtime_ns`` of a file; of a folder (a DICOM series): ``files:total size:newest mtime_ns``."""
    path = Path(path)
    st = path.stat()
    if not path.is_dir():
        return f"{st.st_size}:{st.st_mtime_ns}"
    stats = [f.stat() for f in path.iterdir() if f.is_file()]
    return f"{len(stats)}:{sum(s.st_size for s in stats)}:{max((s.st_mtime_ns for s in stats), default=0)}"


@dataclass(frozen=True)
class Stale:
    """A computed row whose file changed: which sample, and why it is recomputed."""

    sample_id: str
    reason: str


def inputs_of(sample, with_mask: bool) -> list[Path]:
    return [Path(sample.path), *([Path(sample.mask)] if with_mask and sample.mask else [])]


def fingerprint(paths: list[Path], cache: dict) -> tuple[str, str]:
    """(source, stat) of a row's files; stat is "" when a file cannot be read (the run then reports it)."""
    source = "|".join(map(str, paths))
    try:
        stat = "|".join(cache[p] if p in cache else cache.setdefault(p, file_stat(p)) for p in paths)
    except OSError:
        stat = ""
    return source, stat


def check_rows(st, name: str, rows, samples, *, with_mask: bool) -> list[Stale]:
    """Record what the manifest's rows of ``name`` come from; forget and return the stale computed ones.

    ``rows`` are the store rows of ``samples`` (:meth:`FeatureStore.add_samples`). Rows still to
    compute get the current source and stat recorded (their hashes come with their features).
    """
    filled = st.filled(name)
    rec = st.sources(name)
    cache: dict[Path, str] = {}
    updates: dict[int, tuple[str, str]] = {}
    stale: list[tuple[int, Stale]] = []
    for r, s in zip(np.asarray(rows, dtype=np.int64).tolist(), samples):
        paths = inputs_of(s, with_mask)
        source, stat = fingerprint(paths, cache)
        if (source, stat) == (rec["source"][r], rec["stat"][r]) and stat:
            continue
        updates[r] = (source, stat)
        if not filled[r]:
            continue
        why = _changed(paths, source, rec["source"][r], rec["sha256"][r], rec["mask_sha256"][r], with_mask)
        if why:
            stale.append((r, Stale(s.sample_id, why)))
    if updates:
        keys = list(updates)
        st.set_sources(name, keys, [updates[r][0] for r in keys], "source")
        st.set_sources(name, keys, [updates[r][1] for r in keys], "stat")
    if stale:
        st.invalidate(name, [r for r, _ in stale])
        log.warning(
            "%s: %d row(s) of %s are recomputed because their files changed since they were computed (%s)",
            st.path,
            len(stale),
            name,
            "; ".join(f"{x.sample_id}: {x.reason}" for _, x in stale[:5]) + (" ..." if len(stale) > 5 else ""),
        )
    return [x for _, x in stale]


def _changed(paths: list[Path], source: str, old_source: str, sha: str, mask_sha: str, with_mask: bool) -> str:
    """Why a computed row no longer matches its files, or "" when its content is unchanged."""
    moved = bool(old_source) and source != old_source
    where = f"it was computed from {old_source}, the manifest now names {source}" if moved else ""
    if not sha or (with_mask and len(paths) > 1 and not mask_sha):
        return where or "no record of the file it was computed from"
    try:
        now = [content_hash(p) for p in paths]
    except OSError as exc:
        return f"cannot read {exc.filename or paths[0]} ({os.strerror(exc.errno) if exc.errno else exc})"
    if now[0] != sha:
        return where or f"{paths[0].name} changed (another sha256)"
    if with_mask and len(now) > 1 and now[1] != mask_sha:
        return where or f"its mask {paths[1].name} changed (another sha256)"
    return ""
