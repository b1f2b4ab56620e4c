"""Near-copies by cosine similarity, in blocked matrix products (no n x n matrix in memory): of the stored
embeddings, and of the images' pixel signatures (:mod:`featx.images.signature`).

The embeddings are centred on their mean before they are normalised: a CNN's pooled features are all positive, so
raw cosines of unrelated images sit high and close together (0.6-0.9); centred, unrelated images scatter around 0.
``benchmarks/near_copies.py`` measured both thresholds on real images with made copies (docs/data.md#near-copies):
the signature finds re-encoded, resized, mirrored and brightened copies (none missed at 0.95); the embedding
alone misses most re-encoded (JPEG) and cropped ones, so fit and bench, which read only the store, give a lower
bound, and ``featx audit`` reads the images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featx.images.signature import MIRROR

#: the default thresholds: centred cosine of embeddings, cosine of pixel signatures (benchmarks/near_copies.py)
DEFAULT_THRESHOLD = 0.95
SIGNATURE_THRESHOLD = 0.95
#: rows per block of the similarity product: a block x n float32 slab in memory at once
BLOCK = 1024


def normalised(X: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Rows centred (on ``center``, default their mean) and scaled to unit length, float32."""
    X = np.asarray(X, dtype=np.float32)
    X = X - (X.mean(axis=0) if center is None else center)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norm, 1e-12)


@dataclass(frozen=True)
class Pairs:
    """Pairs of rows ``(a, b)`` (a < b) whose centred cosine is at least the threshold."""

    a: np.ndarray
    b: np.ndarray
    cosine: np.ndarray

    def __len__(self) -> int:
        return len(self.a)


def near_pairs(
    Z: np.ndarray, threshold: float, keep=None, block: int = BLOCK, on_block=None, mirror: np.ndarray | None = None
) -> Pairs:
    """Every pair of the unit rows ``Z`` with a cosine >= ``threshold``, by blocks of rows (upper triangle only).

    ``keep(a, b)`` (index arrays) -> bool mask keeps only the pairs that matter (across subjects, across the split)
    before they are stored; ``on_block(rows)`` reports progress; ``mirror`` (signatures): also compare each row
    with the others' mirror images, keeping the better cosine.
    """
    n = len(Z)
    out_a, out_b, out_c = [], [], []
    for start in range(0, n, block):
        stop = min(start + block, n)
        S = Z[start:stop] @ Z[start:].T  # this block against itself and every later row
        if mirror is not None:
            S = np.maximum(S, Z[start:stop] @ (Z[start:] * mirror).T)
        S[np.tril_indices(stop - start, k=0, m=S.shape[1])] = -np.inf  # each pair once, no row with itself
        i, j = np.nonzero(S >= threshold)
        a, b = i + start, j + start
        if keep is not None and len(a):
            m = keep(a, b)
            a, b, i, j = a[m], b[m], i[m], j[m]
        out_a.append(a)
        out_b.append(b)
        out_c.append(S[i, j])
        if on_block is not None:
            on_block(stop - start)
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    a, b, c = cat(out_a, np.int64), cat(out_b, np.int64), cat(out_c, np.float32)
    order = np.argsort(-c, kind="stable")
    return Pairs(a[order], b[order], c[order])


def nearest_across(Z_query: np.ndarray, Z_ref: np.ndarray, block: int = BLOCK, mirror=None) -> np.ndarray:
    """For each (normalised) query row, its highest cosine to any reference row (-1 when there is none); with
    ``mirror``, to a reference row or its mirror image."""
    best = np.full(len(Z_query), -1.0, dtype=np.float32)
    if not len(Z_ref):
        return best
    for start in range(0, len(Z_query), block):
        q = Z_query[start : start + block]
        s = (q @ Z_ref.T).max(axis=1)
        if mirror is not None:
            s = np.maximum(s, (q @ (Z_ref * mirror).T).max(axis=1))
        best[start : start + block] = s
    return best


#: fit and bench check near-copies across their splits up to this many rows (beyond: 'featx audit' does it)
CHECK_MAX_ROWS = 20_000


def deep_columns(provenance: dict, n_columns: int) -> slice | None:
    """The columns of a network's embedding in a feature set (a deep set, or a combined set's first deep part), or
    None when it has none (radiomics): near-copies are judged on embeddings only."""
    kind = provenance.get("kind")
    if kind == "cnn":
        return slice(0, n_columns)
    if kind == "combined":
        start = 0
        for name, width in provenance.get("blocks", []):
            if (provenance.get("parts", {}).get(name) or {}).get("kind") == "cnn":
                return slice(start, start + int(width))
            start += int(width)
    return None


def split_contamination(
    X: np.ndarray | None, fold_of: np.ndarray, signatures: np.ndarray | None = None
) -> tuple[int, int]:
    """(rows with a near-copy among their own training rows, rows tested) over the folds of one repeat
    (``fold_of``: each row's test fold, -1 for rows only trained on): by embedding (``X``) or pixel signature, each
    at its threshold, whichever of the two is given."""
    scores = []
    if X is not None:
        scores.append((normalised(X), DEFAULT_THRESHOLD, None))
    if signatures is not None:
        scores.append((np.asarray(signatures, np.float32), SIGNATURE_THRESHOLD, MIRROR))
    hits = tested = 0
    for f in np.unique(fold_of[fold_of >= 0]):
        test = fold_of == f
        hit = np.zeros(int(test.sum()), bool)
        for Z, t, mirror in scores:
            hit |= nearest_across(Z[test], Z[~test], mirror=mirror) >= t
        hits += int(hit.sum())
        tested += int(test.sum())
    return hits, tested
