"""Per-subject aggregation and multi-sequence fusion (pure numpy; no model code).

- subject level: a subject's probability is the mean over its images/slices;
- ``vote`` / ``mean``: one model per sequence, then per subject the majority vote of
  the sequences' predicted classes (ties broken by the mean probability) or the
  mean of their probabilities;
- ``concat``: per subject, each sequence's mean feature vector, concatenated in
  sorted sequence order, so one model sees all sequences at once.
"""

from __future__ import annotations

import logging

import numpy as np

from featx.errors import FitError, short_list
from featx.store.feature_set import FeatureSet

log = logging.getLogger(__name__)

MODEL_FUSIONS = ("vote", "mean")  # one model per sequence, fused per subject (``concat`` fuses features)
MIXED = -1  # subject label code when a subject's samples carry different labels


def subject_level(subjects, y, proba) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean probability per subject.

    Parameters
    ----------
    subjects : array-like of str
    y : array-like of int
        Class index per sample.
    proba : ndarray, shape (n, C)

    Returns
    -------
    names, y_subject, proba_subject
        Sorted subject names; each subject's class (``MIXED`` if its samples disagree); mean probabilities.
    """
    names, inv = np.unique(np.asarray(subjects).astype(str), return_inverse=True)
    y = np.asarray(y)
    counts = np.bincount(inv, minlength=len(names)).astype(float)
    sums = np.zeros((len(names), proba.shape[1]))
    np.add.at(sums, inv, proba)
    lo = np.full(len(names), np.iinfo(np.int64).max)
    hi = np.full(len(names), -1)
    np.minimum.at(lo, inv, y)
    np.maximum.at(hi, inv, y)
    return names, np.where(lo == hi, hi, MIXED), sums / counts[:, None]


def fuse(per_sequence: dict, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Fuse subject-level probabilities of several sequence models.

    Parameters
    ----------
    per_sequence : dict
        Sequence -> (subject names, proba (S_q, C)).
    how : {'vote', 'mean'}

    Returns
    -------
    names, proba
        Every subject seen by any sequence; fused probabilities (vote: share of the
        sequences' votes, plus 1e-6 x the mean probability to break ties).
    """
    if how not in MODEL_FUSIONS:
        raise FitError(f"Unknown fusion {how!r}; choose vote or mean (or concat, which fuses features).")
    names = np.unique(np.concatenate([n for n, _ in per_sequence.values()]))
    n_classes = next(iter(per_sequence.values()))[1].shape[1]
    total = np.zeros((len(names), n_classes))
    votes = np.zeros((len(names), n_classes))
    seen = np.zeros(len(names))
    for subj, p in per_sequence.values():
        at = np.searchsorted(names, subj)
        ok = ~np.isnan(p).any(axis=1)
        total[at[ok]] += p[ok]
        votes[at[ok], p[ok].argmax(axis=1)] += 1
        seen[at[ok]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / seen[:, None]
        if how == "mean":
            return names, mean
        share = votes / seen[:, None]
        fused = share + 1e-6 * mean
        return names, fused / fused.sum(axis=1, keepdims=True)


def sequences_of(fs: FeatureSet) -> list[str]:
    """The sorted sequences of a feature set; a FitError when some rows have none."""
    if (fs.sequences == "").any():
        n = int((fs.sequences == "").sum())
        raise FitError(
            f"--fuse needs a 'sequence' column (T1, T2, FLAIR ...) on every row; {n} row(s) of "
            f"{fs.name!r} have none. Add it to the manifest and re-run extract (rows are reused)."
        )
    if (fs.subjects == "").any():
        raise FitError("--fuse combines a subject's sequences, so every row needs a 'subject'. Add the column.")
    names, y, _ = subject_level(fs.subjects, np.unique(fs.labels, return_inverse=True)[1], np.zeros((len(fs), 1)))
    if (y == MIXED).any():
        raise FitError(
            f"--fuse predicts one label per subject, but subject(s) {short_list(names[y == MIXED].tolist())} "
            "have rows with different labels. A paired design (left/right, pre/post) cannot be fused per subject: "
            "fit it without --fuse (folds still keep each subject's images together); otherwise fix the labels."
        )
    seqs = sorted(set(fs.sequences.tolist()))
    if len(seqs) < 2:
        raise FitError(f"--fuse needs at least two sequences; {fs.name!r} has only {seqs}.")
    return seqs


def concat_by_subject(fs: FeatureSet, sequences: list[str]) -> FeatureSet:
    """One row per subject: each sequence's mean feature vector, concatenated in ``sequences`` order.

    Subjects lacking a sequence are left out with a warning naming them; a subject
    whose rows carry different labels or splits is refused.
    """
    subjects = sorted(set(fs.subjects.tolist()))
    rows, kept, missing, first = [], [], [], []
    labels, splits = [], []
    for s in subjects:
        mine = fs.subjects == s
        lab, spl = set(fs.labels[mine].tolist()), set(fs.splits[mine].tolist())
        if len(lab) > 1 or len(spl) > 1:
            raise FitError(
                f"Subject {s!r} has rows with labels {sorted(lab)} / splits {sorted(spl)}; --fuse concat "
                "needs one label and one split per subject."
            )
        parts = []
        for q in sequences:
            sel = mine & (fs.sequences == q)
            if not sel.any():
                break
            parts.append(fs.X[sel].mean(axis=0))
        if len(parts) < len(sequences):
            missing.append(s)
            continue
        rows.append(np.concatenate(parts))
        kept.append(s)
        first.append(int(np.flatnonzero(mine)[0]))
        labels.append(lab.pop())
        splits.append(spl.pop())
    if missing:
        log.warning(
            "--fuse concat: %d subject(s) lack one of the sequences %s and are left out (%s)",
            len(missing),
            sequences,
            short_list(missing),
        )
    if not kept:
        raise FitError(f"No subject has all of the sequences {sequences}; --fuse concat has nothing to fit.")
    names = None
    if fs.feature_names:
        names = [f"{q}:{n}" for q in sequences for n in fs.feature_names]
    ids = np.array(kept)
    return FeatureSet(
        f"{fs.name}[concat {'+'.join(sequences)}]",
        np.vstack(rows).astype(fs.X.dtype),
        ids,
        np.array(labels),
        ids.copy(),
        np.array(splits),
        np.full(len(kept), "+".join(sequences)),
        fs.provenance,
        names,
        outcomes=fs.outcome_rows(np.array(first, dtype=np.int64)),
    )


def fuse_repeats(units: dict, how: str, names: np.ndarray) -> np.ndarray:
    """Fused subject-level probabilities per repeat.

    Parameters
    ----------
    units : dict
        Sequence -> (subjects of its samples, proba (R, n_q, C), NaN where untested).
    how : {'vote', 'mean'}
    names : ndarray of str
        All subjects, sorted; rows of the result.

    Returns
    -------
    ndarray, shape (R, S, C)
        NaN for a subject no sequence tested in that repeat.
    """
    first = next(iter(units.values()))[1]
    out = np.full((first.shape[0], len(names), first.shape[2]), np.nan)
    for r in range(first.shape[0]):
        fused = fuse_images({q: (subj, proba[r]) for q, (subj, proba) in units.items()}, how)
        if fused is not None:
            out[r, np.searchsorted(names, fused[0])] = fused[1]
    return out


def fuse_images(units: dict, how: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Image-level probabilities of several sequence models -> fused subject-level ones.

    ``units``: sequence -> (subjects of its images, proba (n_q, C), NaN rows ignored). Each
    sequence's subject probability is the mean over the subject's images, then :func:`fuse`.
    None when no sequence has a probability.
    """
    per = {}
    for q, (subj, proba) in units.items():
        ok = ~np.isnan(proba[:, 0])
        if ok.any():
            s, _, p = subject_level(np.asarray(subj)[ok], np.zeros(int(ok.sum()), int), proba[ok])
            per[q] = (s, p)
    return fuse(per, how) if per else None
