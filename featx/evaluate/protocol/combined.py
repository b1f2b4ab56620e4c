"""Early fusion: a feature-set expression ``A+B`` is one feature set, the blocks side by side.

Only samples present (and finite) in every part take part. Each block keeps its own identity: the
columns are named ``part:column``, the provenance lists every part, and the heads standardise (and,
with ``--pca``, reduce) each block on its own inside the training folds (:class:`~featx.evaluate.
estimators.Head`'s ``blocks``), so a 102-d radiomics block is not drowned by 1,280 CNN columns.
"""

from __future__ import annotations

import logging

import numpy as np

from featx.errors import FitError, short_list
from featx.store.feature_set import FeatureSet

log = logging.getLogger(__name__)

#: joins the parts of an early-fusion expression
SEP = "+"
KIND = "combined"


def parts_of(expr: str, known: list[str] | None = None) -> list[str]:
    """The feature sets an expression names: ``A+B`` -> ``[A, B]``; a name the store has (even with a ``+``) is one."""
    if known is not None and expr in known:
        return [expr]
    parts = [p.strip() for p in expr.split(SEP)]
    if any(not p for p in parts):
        raise FitError(f"Feature-set expression {expr!r} has an empty part; write it as A+B (e.g. resnet18+radiomics).")
    if len(set(parts)) < len(parts):
        raise FitError(f"Feature-set expression {expr!r} names a part twice.")
    return parts


def common_rows(sets: list[FeatureSet], what: str = "bench") -> list[FeatureSet]:
    """Each set restricted to the samples every set has, in the first set's order (a warning names the others)."""
    common = set(sets[0].ids.tolist())
    for fs in sets[1:]:
        common &= set(fs.ids.tolist())
    if not common:
        raise FitError(
            f"The feature sets {[fs.name for fs in sets]} share no labelled sample; the {what} needs feature sets "
            "computed on the same manifest."
        )
    out = []
    order = [i for i in sets[0].ids.tolist() if i in common]
    for fs in sets:
        left = len(fs) - len(common)
        if left:
            log.warning(
                "%s: %d sample(s) not in every feature set are left out of the %s (%s)",
                fs.name,
                left,
                what,
                short_list(sorted(set(fs.ids.tolist()) - common)),
            )
        pos = {v: i for i, v in enumerate(fs.ids.tolist())}
        out.append(fs.subset(np.array([pos[i] for i in order], dtype=np.int64)))
    return out


def combine(sets: list[FeatureSet], what: str = "combined feature set") -> FeatureSet:
    """The parts side by side on the rows they share: one feature set named ``A+B``.

    A sample whose label, subject or split differs between the parts is refused: the parts then
    come from different manifests, and no row of theirs can be trusted to be the same image.
    """
    name = SEP.join(fs.name for fs in sets)
    sets = common_rows(sets, what)
    first = sets[0]
    for fs in sets[1:]:
        for col in ("labels", "subjects", "splits"):
            differ = np.flatnonzero(getattr(fs, col) != getattr(first, col))
            if len(differ):
                i = differ[0]
                raise FitError(
                    f"Sample {first.ids[i]!r} has {col[:-1]} {getattr(first, col)[i]!r} in {first.name!r} and "
                    f"{getattr(fs, col)[i]!r} in {fs.name!r} ({len(differ)} sample(s) differ): the parts were "
                    "computed from different manifests. Compute them again from one manifest."
                )
    names = [f"{fs.name}:{n}" for fs in sets for n in fs.names]
    provenance = {
        "kind": KIND,
        "parts": {fs.name: fs.provenance for fs in sets},
        "blocks": [[fs.name, int(fs.X.shape[1])] for fs in sets],
    }
    return FeatureSet(
        name,
        np.hstack([fs.X.astype(np.float64) for fs in sets]),
        first.ids,
        first.labels,
        first.subjects,
        first.splits,
        first.sequences,
        provenance,
        names,
        None if any(fs.copy_keys is None for fs in sets) else np.hstack([fs.copy_keys for fs in sets]),
        next((fs.signatures for fs in sets if fs.signatures is not None), None),  # one image per row: any part's
        first.outcomes,
    )


def blocks_of(fs: FeatureSet, repeat: int = 1) -> tuple[int, ...] | None:
    """The widths of a combined set's blocks (``repeat`` times over, for sequences concatenated side by side);
    None for a plain feature set."""
    blocks = fs.provenance.get("blocks") if fs.provenance.get("kind") == KIND else None
    return None if not blocks else tuple(int(w) for _, w in blocks) * repeat


def part_columns(names: list[str], part: str) -> list[str]:
    """The columns of ``part`` among a combined set's column names (``part:column``), without the prefix."""
    prefix = part + ":"
    return [n[len(prefix) :] for n in names if n.startswith(prefix)]
