"""``featx store info`` and ``featx store export``: a store summarised, a feature set as CSV or Parquet."""

from __future__ import annotations

import csv
import fcntl
import os
from collections import Counter
from pathlib import Path

import numpy as np

from featx.config import Choice
from featx.errors import ConfigError, StoreError
from featx.store.store import FAILED, OK, REMOVED, TODO, FeatureStore

EXPORT_FORMATS = Choice("format", ("csv", "parquet"))
_META = ("id", "label", "subject", "sequence", "split", "slice", "path")
_CHUNK = 4096  # rows per write: exports stream, whatever the store's size


def describe_store(path: str | Path) -> dict:
    """Everything ``featx store info`` prints, as a dict."""
    path = Path(path)
    with FeatureStore(path) as st:
        labels = Counter(st._column("label").tolist())
        subjects = {s for s in st._column("subject").tolist() if s}
        sets = []
        for name in st.feature_names():
            g = st.h5["features"][name]
            status = st.status(name)
            prov = st.provenance(name)
            sets.append(
                {
                    "name": name,
                    "kind": g.attrs.get("kind", ""),
                    "dim": int(g.attrs["feature_dim"]),
                    "ok": int((status == OK).sum()),
                    "failed": int((status == FAILED).sum()),
                    "to_do": int((status == TODO).sum()),
                    "removed": int((status == REMOVED).sum()),
                    "made_with": _made_with(prov),
                    "noted": int((st.notes(name) != "").sum()),
                    "created": g.attrs.get("created", ""),
                    "updated": g.attrs.get("updated", ""),
                }
            )
        info = {
            "path": str(path),
            "size_mb": round(path.stat().st_size / 1e6, 2),
            "format": st.h5.attrs.get("format"),
            "featx_version": st.h5.attrs.get("featx_version"),
            "created": st.h5.attrs.get("created"),
            "samples": st.n_samples,
            "labels": dict(sorted(labels.items())),
            "subjects": len(subjects),
            "feature_sets": sets,
        }
    lock = path.with_name(path.name + ".lock")
    journal = path.with_name(path.name + ".journal")
    info["writer"] = _writer_state(lock)
    if journal.exists():
        info["pending_journal"] = f"{journal} ({journal.stat().st_size / 1e6:.1f} MB of rows not yet in the store)"
    return info


def _made_with(prov: dict) -> str:
    """One line on what computed a feature set: backbone spec and provider, or pyradiomics settings."""
    if prov.get("kind") == "radiomics":
        params = prov.get("params", {})
        return (
            f"pyradiomics {params.get('pyradiomics', '?')}, {prov.get('params_source', '?')}, {params.get('mode', '?')}"
        )
    engine = prov.get("engine") or {}
    how = f"{engine.get('runtime')} {engine.get('precision')}" if engine else prov.get("precision", "")
    auto = (prov.get("auto") or {}).get("chosen")
    how += " (chosen by --precision auto)" if auto else ""
    return ", ".join(x for x in ((prov.get("spec") or {}).get("name", ""), prov.get("provider", ""), how) if x)


def _writer_state(lock: Path) -> str:
    """Who is writing the store now, if anyone (the lock is held while a writer lives)."""
    if not lock.exists():
        return ""
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return ""
    except BlockingIOError:
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
    finally:
        os.close(fd)


def export_feature_set(
    path: str | Path, name: str, out: str | Path, fmt: str | None = None, include_removed: bool = False
) -> tuple[Path, int]:
    """Write the computed rows of feature set ``name`` with their ids and labels; returns (file, rows).

    Columns: id, label, subject, sequence, split, slice, path, then one column per
    feature (the set's ``feature_names`` when it has them, else ``f0000`` ...).
    """
    out = Path(out)
    fmt = fmt or out.suffix.lstrip(".").lower()
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(
            f"{out}: unknown format {fmt!r}; give an --out ending in .csv or .parquet, or a format: "
            f"{', '.join(EXPORT_FORMATS)}.",
            "format",
        )
    with FeatureStore(path) as st:
        g = st._group(name)
        filled = g["filled"][:]
        if not include_removed and "status" in g:
            filled &= g["status"][:] != REMOVED
        rows = np.flatnonzero(filled)
        if not len(rows):
            raise StoreError(f"{path}: feature set {name!r} has no computed rows to export.")
        names = st.column_names(name) or [f"f{i:04d}" for i in range(g["X"].shape[1])]
        meta = {c: st._column(c)[rows] for c in _META}
        chunks = ((rows[i : i + _CHUNK], slice(i, i + _CHUNK)) for i in range(0, len(rows), _CHUNK))
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            (_write_csv if fmt == "csv" else _write_parquet)(out, g["X"], meta, names, chunks)
        except OSError as exc:
            raise StoreError(f"cannot write {out}: {exc.strerror or exc}. Choose another --out.") from None
    return out, len(rows)


def _write_csv(out, X, meta, names, chunks) -> None:
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*_META, *names])
        for rows, sl in chunks:
            block = X[rows[0] : rows[-1] + 1][rows - rows[0]]
            for j, x in enumerate(block):
                w.writerow([meta[c][sl][j] for c in _META] + [repr(float(v)) for v in x])


def _write_parquet(out, X, meta, names, chunks) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise StoreError("Parquet export needs pyarrow: pip install 'featx[parquet]' (or use --format csv).") from None
    writer = None
    try:
        for rows, sl in chunks:
            block = X[rows[0] : rows[-1] + 1][rows - rows[0]]
            cols = {c: pa.array(meta[c][sl].tolist()) for c in _META}
            cols.update({n: pa.array(block[:, k]) for k, n in enumerate(names)})
            table = pa.table(cols)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
