"""Saying what is wrong with a store: why it cannot be opened, what its layout lacks, which settings differ."""

from __future__ import annotations

import re
from pathlib import Path

import h5py

from featx.errors import StoreError, did_you_mean


def open_failure(path: Path, exc: OSError) -> str:
    """One line on why HDF5 could not open ``path``, and what to do."""
    text = str(exc)
    if isinstance(exc, BlockingIOError) or "unable to lock file" in text.lower() or "errno = 11" in text:
        return f"{path} is open for writing by another process (file locked). Wait for it to finish, or use another --store."
    if isinstance(exc, PermissionError) or "Permission denied" in text or "errno = 13" in text:
        return (
            f"{path}: permission denied. Make the file (and its folder) readable and writable, or use another --store."
        )
    if "truncated file" in text:
        sizes = dict(re.findall(r"\b(eof|stored_eof) = (\d+)", text))
        cut = f" ({int(sizes['eof']):,} of {int(sizes['stored_eof']):,} bytes)" if len(sizes) == 2 else ""
        return (
            f"{path} is truncated{cut}: a copy cut short, or a disk that filled while another program wrote it. "
            "Restore it from a copy, or compute the features again into a new --store."
        )
    if "file signature not found" in text:
        return f"{path} is not an HDF5 file (a featx store is one): pass the .h5 store 'featx extract' wrote."
    return f"{path}: not a readable featx store ({text}). Restore it from a copy, or use another --store."


def open_checked(path: Path, mode: str, fmt: str, shown: Path, attrs: dict) -> h5py.File:
    """A store file opened (``shown``: the name messages give), stamped with ``attrs`` when new, refused in one
    line when it is not a featx store of format ``fmt`` or lacks part of its layout."""
    try:
        h5 = h5py.File(path, mode)
    except OSError as exc:
        raise StoreError(open_failure(shown, exc)) from None
    if mode == "a" and "format" not in h5.attrs:
        h5.attrs.update({"format": fmt, **attrs})
    if h5.attrs.get("format") != fmt:
        found = h5.attrs.get("format")
        h5.close()
        raise StoreError(f"{shown}: not a featx store (format {found!r}, expected {fmt}).")
    damaged = layout_damage(h5)
    if damaged:
        h5.close()
        raise StoreError(
            f"{shown}: a damaged featx store ({damaged}). Restore it from a copy, or compute the features again into "
            "a new --store."
        )
    return h5


def layout_damage(h5) -> str:
    """What a readable file lacks of a featx store's layout ("" when nothing): objects lost to damage."""
    missing = []
    if "samples" in h5:
        missing += [f"samples/{c}" for c in ("id", "path", "label") if c not in h5["samples"]]
    sharded = h5.attrs.get("format") == "featx-store/2"  # an index: the rows live in the shards
    for name in h5.get("features", {}):
        g = h5["features"][name]
        missing += [
            f"features/{name}/{d}" for d in (("outside",) if sharded else ("X", "filled", "error")) if d not in g
        ]
        attrs = ("provenance", "identity", *(("parts", "folder") if sharded else ()))
        missing += [f"features/{name} attribute {a}" for a in attrs if a not in g.attrs]
    if "features" in h5 and len(h5["features"]) and "samples" not in h5:
        missing.append("samples")
    return f"missing {', '.join(missing)}" if missing else ""


def differences(old: dict, new: dict, keys=("spec", "intensity", "params")) -> str:
    """``field: old -> new`` for the settings that define a feature set."""
    out = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k}.{f}: {a.get(f)!r} -> {b.get(f)!r}" for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f)]
        elif a != b:
            out.append(f"{k}: {a!r} -> {b!r}")
    return "; ".join(out) or "other settings"


def missing_set_message(path, name: str, have: list[str]) -> str:
    """The store lacks feature set ``name``: the closest names it has, and the command that makes such a set."""
    close = [h for h in have if h.startswith(name + ".")] or []  # 'radiomics' -> 'radiomics.default'
    hint = f" Did you mean {close[0]!r}?" if len(close) == 1 else did_you_mean(name, have)
    maker = "featx radiomics" if name.split(".")[0] == "radiomics" else "featx extract"
    return (
        f"{path} has no feature set {name!r} (it has: {', '.join(have) or 'none'}).{hint} Run '{maker}' for it, "
        "or pass one of those to --features."
    )
