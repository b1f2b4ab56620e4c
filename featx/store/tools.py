"""``featx store info`` and ``featx store export``: a store summarised, a feature set as CSV or Parquet."""

from __future__ import annotations

import csv
import fcntl
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from featx.config import Choice
from featx.errors import ConfigError, StoreError
from featx.store.open import open_store
from featx.store.sharded import ShardedStore, data_dir_of
from featx.store.store import FAILED, OK, REMOVED, TODO, FeatureStore
from featx.store.writer import StoreWriter

EXPORT_FORMATS = Choice("format", ("csv", "parquet"))
_META = ("id", "label", "subject", "sequence", "split", "slice", "path")
_CHUNK = 4096  # rows per write: exports stream, whatever the store's size


def describe_store(path: str | Path) -> dict:
    """Everything ``featx store info`` prints, as a dict."""
    path = Path(path)
    with open_store(path) as st:
        labels = Counter(st._column("label").tolist())
        subjects = {s for s in st._column("subject").tolist() if s}
        sets = []
        for name in st.feature_names():
            attrs = st.set_attrs(name)
            status = st.status(name)
            sets.append(
                {
                    "name": name,
                    "kind": attrs.get("kind", ""),
                    "dim": int(attrs["feature_dim"]),
                    "ok": int((status == OK).sum()),
                    "failed": int((status == FAILED).sum()),
                    "to_do": int((status == TODO).sum()),
                    "removed": int((status == REMOVED).sum()),
                    "made_with": _made_with(st.provenance(name)),
                    "noted": int((st.notes(name) != "").sum()),
                    "parts": len(st.parts(name)) if isinstance(st, ShardedStore) else 1,
                    "created": attrs.get("created", ""),
                    "updated": attrs.get("updated", ""),
                }
            )
        attrs = st.attrs()
        info = {
            "path": str(path),
            "size_mb": round(_size(path) / 1e6, 2),
            "format": attrs.get("format"),
            "featx_version": attrs.get("featx_version"),
            "created": attrs.get("created"),
            "samples": st.n_samples,
            "labels": dict(sorted(labels.items())),
            "subjects": len(subjects),
            "feature_sets": sets,
        }
    writers = data_dir_of(path) / "writers"
    held = [_holder(lock) for lock in [path.with_name(path.name + ".lock"), *sorted(writers.glob("*.lock"))]]
    info["writer"] = "; ".join(sorted({h for h in held if h}))
    journals = [path.with_name(path.name + ".journal"), *writers.glob("*.journal")]
    pending = [j for j in journals if j.exists() and not _holder(j.with_suffix(".lock"))]
    if pending:
        mb = sum(j.stat().st_size for j in pending) / 1e6
        info["pending_journal"] = (
            f"{len(pending)} journal(s) in {pending[0].parent} ({mb:.1f} MB of rows not yet in the store)"
        )
    return info


def _size(path: Path) -> int:
    """Bytes of a store: its file, and its folder of shards when it has one."""
    folder = data_dir_of(path)
    return (
        path.stat().st_size + sum(f.stat().st_size for f in folder.rglob("*.h5"))
        if folder.is_dir()
        else path.stat().st_size
    )


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


def _holder(lock: Path) -> str:
    """Who holds a writer's lock now ("" when nobody: the lock is held while a writer lives)."""
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
    with open_store(path) as st:
        status = st.status(name)
        rows = np.flatnonzero((status == OK) | (include_removed & (status == REMOVED) & st.filled(name)))
        if not len(rows):
            raise StoreError(f"{path}: feature set {name!r} has no computed rows to export.")
        names = st.column_names(name) or [f"f{i:04d}" for i in range(int(st.set_attrs(name)["feature_dim"]))]
        meta = {c: st._column(c)[rows] for c in _META}
        chunks = ((st.features(name, rows[i : i + _CHUNK]), slice(i, i + _CHUNK)) for i in range(0, len(rows), _CHUNK))
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            (_write_csv if fmt == "csv" else _write_parquet)(out, meta, names, chunks)
        except OSError as exc:
            raise StoreError(f"cannot write {out}: {exc.strerror or exc}. Choose another --out.") from None
    return out, len(rows)


def _write_csv(out, meta, names, chunks) -> None:
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*_META, *names])
        for block, sl in chunks:
            for j, x in enumerate(block):
                w.writerow([meta[c][sl][j] for c in _META] + [repr(float(v)) for v in x])


def _write_parquet(out, meta, names, chunks) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise StoreError("Parquet export needs pyarrow: pip install 'featx[parquet]' (or use --format csv).") from None
    writer = None
    try:
        for block, sl in chunks:
            cols = {c: pa.array(meta[c][sl].tolist()) for c in _META}
            cols.update({n: pa.array(block[:, k]) for k, n in enumerate(names)})
            table = pa.table(cols)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def compact_store(path: str | Path, out: str | Path | None = None) -> tuple[Path, int]:
    """Write a store whole into one file (``featx-store/1``: readable by plain h5py and by featx before 0.16), to
    share it; returns (file, bytes).

    Without ``out``, the store itself becomes that one file: its shards are merged and its folder removed. That
    needs every writer to have finished (refused otherwise). The next writer makes it sharded again without copying.
    """
    path = Path(path)
    if out is not None:
        out = Path(out)
        _write_single(path, out)
        return out, out.stat().st_size
    writer = StoreWriter(path)
    with writer:  # applies what killed writers left
        pass
    held = [h for lock in sorted(writer.writers.glob("*.lock")) if (h := _holder(lock))]
    if held:
        raise StoreError(f"{path} is being written by {held[0]}. Compact it when every writer has finished.")
    with writer.locked():
        tmp = path.with_name(f"{path.name}.compact{os.getpid()}")
        try:
            _write_single(path, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        shutil.rmtree(data_dir_of(path), ignore_errors=True)
    return path, path.stat().st_size


def _write_single(path: Path, out: Path) -> None:
    """Every feature set of ``path``, all rows, into the single-file layout at ``out`` (written aside, then named)."""
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    with open_store(path) as src:  # a missing or broken store is named as itself
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            with FeatureStore(tmp, "a") as dst:
                src.h5.copy(src.h5["samples"], dst.h5, "samples")
                dst.h5.attrs["created"] = src.attrs().get("created", dst.h5.attrs["created"])
                for name in src.feature_names():
                    _copy_set(src, dst, name)
            os.replace(tmp, out)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(
                f"cannot write {out}: {exc.strerror or exc}. Free space, or choose another --out."
            ) from None
        except StoreError:  # the new file could not be created (FeatureStore names why)
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {out}: it cannot be created there. Choose another --out.") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _copy_set(src, dst: FeatureStore, name: str) -> None:
    """One feature set, every row: features, state and what each row was computed from."""
    attrs = src.set_attrs(name)
    dim = int(attrs["feature_dim"])
    dtype = attrs.get("dtype") or src.h5["features"][name]["X"].dtype.name
    names = src.column_names(name)
    dst.create_feature_set(name, dim, src.provenance(name), attrs["identity"], attrs.get("kind", ""), dtype=dtype,
                           feature_names=names)  # fmt: skip
    g = dst.h5["features"][name]
    filled, status = src.filled(name), src.status(name)
    for lo in range(0, len(filled), _CHUNK):
        rows = lo + np.flatnonzero(filled[lo : lo + _CHUNK])
        if len(rows):
            block = np.full((min(_CHUNK, len(filled) - lo), dim), np.nan, dtype=g["X"].dtype)
            block[rows - lo] = src.features(name, rows)
            g["X"][lo : lo + len(block)] = block
    g["filled"][:] = filled
    g["status"][:] = status
    g["error"][:] = src.errors(name)
    for c, values in src.sources(name).items():
        g[c][:] = values
    notes = src.notes(name)
    if (notes != "").any():
        dst.set_notes(name, np.flatnonzero(notes != ""), notes[notes != ""])
    sig = src.signatures(name)
    if sig is not None:
        g.create_dataset("signature", data=sig, maxshape=(None, sig.shape[1]), chunks=(1024, sig.shape[1]))
    g.attrs.update({k: attrs[k] for k in ("created", "updated") if k in attrs})
