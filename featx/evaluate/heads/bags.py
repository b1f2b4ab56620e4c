"""Bags for attention-MIL (``featx fit --head abmil``): a feature set of slice rows -> one row per subject or volume,
its slices' embeddings one after another (NaN-padded to the largest bag), and the attention the fitted head gives
each slice, written for the report."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from featx.config import Choice
from featx.errors import FitError, short_list
from featx.store.feature_set import FeatureSet

BAGS = Choice("bag", ("subject", "volume"))
#: a bag array beyond this many bytes is said (the largest bag sets every bag's width)
LARGE_BYTES = 2 << 30


def bag_keys(fs: FeatureSet, by: str) -> np.ndarray:
    """Each row's bag: its subject (its id where it has none), or its volume (the id before ``#slice``)."""
    BAGS.check(by)
    if by == "subject":
        return np.array([s or i for s, i in zip(fs.subjects, fs.ids)], dtype=object)
    return np.array([i.rsplit("#", 1)[0] for i in fs.ids], dtype=object)


def bags_of(fs: FeatureSet, by: str) -> tuple[FeatureSet, list[np.ndarray]]:
    """(one row per bag, each bag's instance ids in row order); every bag's rows must share a label and a split."""
    keys = bag_keys(fs, by)
    order = list(dict.fromkeys(keys.tolist()))
    rows = [np.flatnonzero(keys == k) for k in order]
    mixed = [k for k, r in zip(order, rows) if len(set(fs.labels[r])) > 1 or len(set(fs.splits[r])) > 1]
    if mixed:
        raise FitError(
            f"--head abmil: {len(mixed)} {by} bag(s) hold rows of several labels or splits ({short_list(mixed)}); "
            f"a bag has one label and one split: fix the manifest, or use --bag "
            f"{'volume' if by == 'subject' else 'subject'}."
        )
    d, k = fs.X.shape[1], max(len(r) for r in rows)
    if len(rows) * k * d * 4 > LARGE_BYTES:
        raise FitError(
            f"--head abmil: {len(rows)} bags of up to {k} slices x {d} features need "
            f"{len(rows) * k * d * 4 / 2**30:.1f} GiB; choose fewer slices per volume (manifest build --slices)."
        )
    X = np.full((len(rows), k, d), np.nan, np.float32)
    for j, r in enumerate(rows):
        X[j, : len(r)] = fs.X[r]
    first = np.array([r[0] for r in rows])
    bags = FeatureSet(
        f"{fs.name}[abmil bags by {by}]",
        X.reshape(len(rows), k * d),
        np.array(order, dtype=object),
        fs.labels[first],
        np.array([fs.subjects[r[0]] or key for r, key in zip(rows, order)], dtype=object),
        fs.splits[first],
        np.full(len(rows), "", dtype=object),
        fs.provenance,
        outcomes=fs.outcome_rows(first),
    )
    return bags, [fs.ids[r] for r in rows]


def write_attention(path: Path, model, bags: FeatureSet, instances: list) -> Path:
    """``attention.csv``: each bag's instances with the attention the head fitted on all development bags gives
    them (rank 1: the slice that mattered most)."""
    weights = model.attention_weights(bags.X)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["bag", "label", "split", "instance", "attention", "rank"])
        for bag, label, split, ids, a in zip(bags.ids, bags.labels, bags.splits, instances, weights):
            a = a[: len(ids)]
            ranks = np.argsort(np.argsort(-a)) + 1
            for i, v, r in zip(ids, a, ranks):
                w.writerow([bag, label, split, i, f"{v:.6f}", int(r)])
    return path
