"""Pooled feature sets: a stored set's rows pooled per subject or per volume into a new set of the same store,
without extracting again (``featx pool``).

Each pooled row is a new sample ``<by>:<group>`` (its label, subject and split: the group's, which must agree), its
features the ``mean``, ``max`` or both (``mean+max``, side by side) of the group's computed rows. The provenance
points to the source set and its identity; each pooled row keeps a fingerprint of the rows it pooled (their ids and
values), so a rerun recomputes exactly the groups whose source rows changed (an image replaced and extracted again),
and ``fit`` refuses a pooled set whose source changed since (:func:`stale_groups`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from featx.errors import ConfigError, FitError, short_list
from featx.store.feature_set import FeatureSet
from featx.store.open import open_store, store_writer

POOL_BY = ("subject", "volume", "lesion")
POOL_HOW = ("mean", "max", "mean+max")


@dataclass
class PoolSummary:
    """What a pooling did."""

    name: str
    source: str
    groups: int
    rows: int  # source rows pooled
    updated: list  # groups (re)computed in this run
    unchanged: int


def _row_id(by: str, group: str) -> str:
    """A pooled row's sample id: the lesion row's own id, else ``<by>:<group>``."""
    return group if by == "lesion" else f"{by}:{group}"


def _groups(fs: FeatureSet, by: str, paths: dict, lesion_of: dict | None = None) -> dict[str, np.ndarray]:
    if by == "lesion":  # a volume's slice rows -> the one lesion row of that volume
        ids = fs.ids.tolist()
        real = {p: _real(p) for p in {paths[i] for i in ids}}  # each volume resolved once, not once per slice
        out: dict[str, list] = {}
        for i, sid in enumerate(ids):
            lesion = lesion_of.get(real[paths[sid]])
            if lesion:
                out.setdefault(lesion, []).append(i)
        return {k: np.asarray(v) for k, v in out.items()}
    if by == "subject":
        missing = fs.ids[fs.subjects == ""].tolist()
        if missing:
            raise FitError(
                f"{len(missing)} row(s) of {fs.name!r} have no subject ({short_list(missing, 5)}): pooling by subject "
                "needs every row's subject. Give the manifest a 'subject' column, or pool --by volume."
            )
        keys = fs.subjects
    else:
        keys = np.array([paths[i] for i in fs.ids.tolist()], dtype=object)
    out: dict[str, list] = {}
    for i, k in enumerate(keys.tolist()):
        out.setdefault(str(k), []).append(i)
    return {k: np.asarray(v) for k, v in out.items()}


def _agree(fs: FeatureSet, group: str, rows: np.ndarray, column: str) -> str:
    values = sorted(set(getattr(fs, column)[rows].tolist()))
    if len(values) > 1:
        raise FitError(
            f"Group {group!r} of {fs.name!r} has rows with {column[:-1]}s {values}: a pooled row takes one. Pool by "
            "a unit whose rows share it, or fix the manifest."
        )
    return values[0] if values else ""


def pool_rows(X: np.ndarray, how: str) -> np.ndarray:
    """One pooled vector of the rows ``X``."""
    parts = {"mean": [X.mean(axis=0)], "max": [X.max(axis=0)], "mean+max": [X.mean(axis=0), X.max(axis=0)]}[how]
    return np.concatenate(parts)


def _fingerprint(ids, X: np.ndarray) -> str:
    h = hashlib.sha256("|".join(ids).encode())
    h.update(np.ascontiguousarray(X).tobytes())
    return h.hexdigest()


def pool_feature_set(
    store, source: str, by: str = "subject", how: str = "mean", name: str | None = None, lesions=None
) -> PoolSummary:
    """Pool ``source``'s computed rows per ``by`` into feature set ``name`` (default ``SOURCE~BY-HOW``).

    ``by`` ``lesion`` pools a volume's slice rows onto that volume's row of ``lesions`` (a lesion manifest, from
    ``manifest build --unit lesion``): the pooled row *is* the lesion row (its id, label, subject, split), so the
    pooled set shares its rows, and its folds, with the 3D, 2.5D and radiomics sets of those lesions.

    Raises
    ------
    ConfigError
        An unknown ``by`` or ``how``.
    FitError
        Rows without the unit, or a group whose label or split differ.
    """
    if by not in POOL_BY:
        raise ConfigError(f"must be one of {', '.join(POOL_BY)}, got {by!r}.", "by")
    if how not in POOL_HOW:
        raise ConfigError(f"must be one of {', '.join(POOL_HOW)}, got {how!r}.", "how")
    name = name or f"{source}~{by}-{how}"
    with open_store(store) as st:
        fs = st.load(source)
        identity = st.identity(source)
        paths = dict(zip(st.sample_ids().tolist(), st.sample_paths().tolist()))
        old_prov = st.provenance(name) if name in st.feature_names() else {}
    if fs.provenance.get("pooled"):
        raise FitError(f"{source!r} is a pooled set already; pool its source instead.")
    lesion_of, lesion_rows = _lesion_map(lesions, by)
    groups = _groups(fs, by, paths, lesion_of)
    if by == "lesion":
        if not groups:
            raise FitError(
                f"no row of {source!r} lies in a volume of the lesion manifest: pool the slices of those "
                "volumes (the same image files)."
            )
        left = sorted(set(lesion_rows) - set(groups))
        if left:
            raise FitError(
                f"{len(left)} lesion(s) have no computed slice row in {source!r} ({short_list(left)}): "
                "extract their slices first, or leave them out of the lesion manifest."
            )
    samples, X, prints = [], [], []
    for g, rows in sorted(groups.items()):
        if by == "lesion":
            _agree_with(fs, rows, lesion_rows[g])
            samples.append(lesion_rows[g])
        else:
            samples.append(
                SimpleNamespace(  # a sample as the store registers it (the first row's file stands for the group)
                    sample_id=_row_id(by, g),
                    path=Path(paths[fs.ids[rows[0]]]),
                    label=_agree(fs, g, rows, "labels") or None,
                    subject=(_agree(fs, g, rows, "subjects") or None) if by == "volume" else g,
                    sequence=None,
                    split=_agree(fs, g, rows, "splits") or None,
                    slice=None,
                )
            )
        X.append(pool_rows(np.asarray(fs.X[rows], dtype=np.float64), how))
        prints.append(_fingerprint(fs.ids[rows].tolist(), fs.X[rows]))
    X = np.asarray(X)
    was = old_prov.get("pooled") or {}
    before = dict(zip(was.get("groups", []), was.get("fingerprints", [])))
    updated = [s.sample_id for s, p in zip(samples, prints) if before.get(s.sample_id) != p]
    names = None
    if fs.feature_names:
        names = [f"{h}:{n}" for h in how.split("+") for n in fs.feature_names]
    provenance = {
        **{k: v for k, v in fs.provenance.items() if k not in ("pooled",)},
        "pooled": {
            "from": source,
            "source_identity": identity,
            "by": by,
            "how": how,
            "groups": [s.sample_id for s in samples],
            "fingerprints": prints,
            "rows_per_group": [int(len(groups[g])) for g in sorted(groups)],
            **({"lesion_of": lesion_of} if by == "lesion" else {}),
        },
    }
    pooled_identity = hashlib.sha256(f"{identity}|pooled|{by}|{how}".encode()).hexdigest()
    dtype = "float64" if fs.X.dtype == np.float64 else "float32"
    with store_writer(store) as w, w.transaction() as st:
        rows = st.add_samples(samples)
        kind = fs.provenance.get("kind", "cnn")
        st.create_feature_set(name, X.shape[1], provenance, pooled_identity, kind, dtype=dtype, feature_names=names)
        st.set_provenance(name, provenance)
        st.write(name, rows, X)
        st.mark_membership(name, rows)
    return PoolSummary(name, source, len(samples), len(fs), updated, len(samples) - len(updated))


def _real(path) -> str:
    """A file's path with links and ``..`` resolved: two manifests name one volume alike."""
    return str(Path(path).resolve())


def _lesion_map(lesions, by: str) -> tuple[dict, dict]:
    """``({image path: lesion id}, {lesion id: lesion sample})`` of a lesion manifest; one lesion per volume."""
    if by != "lesion":
        if lesions is not None:
            raise ConfigError("a lesion manifest is for --by lesion.", "lesions")
        return {}, {}
    if lesions is None:
        raise ConfigError(
            "--by lesion needs the lesion rows: --lesions lesions.csv (manifest build --unit lesion).", "lesions"
        )
    of, rows, twice = {}, {}, []
    for s in lesions:
        key = _real(s.path)
        if key in of:
            twice.append(key)
        of[key], rows[s.sample_id] = s.sample_id, s
    if twice:
        raise FitError(
            f"{len(twice)} volume(s) hold several lesions ({short_list(twice)}): slice rows cannot be given to one "
            "lesion yet; pool --by volume, or use one lesion row per volume."
        )
    return of, rows


def _agree_with(fs: FeatureSet, rows: np.ndarray, lesion) -> None:
    """The slice rows pooled onto a lesion row carry its label (and subject, when they have one)."""
    for column, value in (("labels", lesion.label), ("subjects", lesion.subject)):
        seen = {v for v in getattr(fs, column)[rows].tolist() if v}
        if value and seen and seen != {value}:
            raise FitError(
                f"lesion {lesion.sample_id!r} is {column[:-1]} {value!r} but its slice rows in {fs.name!r} say "
                f"{sorted(seen)}: build both manifests from the same volume CSV."
            )


def stale_groups(st, name: str) -> list[str]:
    """The groups of pooled set ``name`` whose source rows changed since it was pooled ([] when fresh or not
    pooled); a source that is gone or was remade with other settings makes every group stale."""
    pooled = st.provenance(name).get("pooled")
    if not pooled:
        return []
    source = pooled["from"]
    if source not in st.feature_names() or st.identity(source) != pooled["source_identity"]:
        return list(pooled["groups"])
    fs = st.load(source)
    paths = dict(zip(st.sample_ids().tolist(), st.sample_paths().tolist()))
    groups = _groups(fs, pooled["by"], paths, pooled.get("lesion_of"))
    now = {_row_id(pooled["by"], g): _fingerprint(fs.ids[r].tolist(), fs.X[r]) for g, r in groups.items()}
    return [g for g, p in zip(pooled["groups"], pooled["fingerprints"]) if now.get(g) != p]


def describe(summary: PoolSummary) -> str:
    """One line on a pooling."""
    return (
        f"{summary.name}: {summary.groups} pooled rows from {summary.rows} rows of {summary.source}; "
        f"{len(summary.updated)} computed now, {summary.unchanged} unchanged"
    )
