"""The rows a fit scores, and how they are split: shared by fit, bench and finetune, so their folds agree.

Protocol (``split='cv'``, the default): samples whose ``split`` is ``test`` are held out;
stratified K-fold CV (x repeats; grouped by subject when subjects are known) runs on the rest.
``split='fixed'``: one train/test split, the manifest's split column or ``test_size`` of the subjects.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace

import numpy as np

from featx.audit.near import CHECK_MAX_ROWS, DEFAULT_THRESHOLD, SIGNATURE_THRESHOLD, deep_columns, split_contamination
from featx.dataset.copies import cross_copies, find_copies
from featx.errors import FitError, short_list
from featx.evaluate.protocol.combined import combine, parts_of
from featx.evaluate.protocol.folds import Folds, load_folds, make_folds, make_holdout, manifest_split, subject_leaks
from featx.evaluate.protocol.memory import check_memory
from featx.evaluate.protocol.outcomes import with_events, with_values
from featx.evaluate.protocol.settings import SplitSettings
from featx.store.feature_set import FeatureSet
from featx.store.open import open_store
from featx.store.pooled import stale_groups

log = logging.getLogger(__name__)


def load_for_fit(store, features: str, s=None, memory_checked: bool = False) -> tuple[FeatureSet, list[str]]:
    """The rows of ``features`` with a target, without NaN/inf columns (named in the returned list).

    ``features`` may be an early-fusion expression ``A+B`` (:mod:`featx.evaluate.protocol.combined`): the parts
    side by side on the rows they share, the dropped columns named ``part:column``. ``s``: the run's settings;
    with ``target`` regression the rows are those with a ``value`` (:func:`with_values`), else the labelled ones;
    the memory a fit of them needs is checked first (:func:`check_memory`) unless ``memory_checked``.
    """
    if s is not None and not memory_checked:
        check_memory(store, [features], s)
    with open_store(store) as st:
        parts = parts_of(features, st.feature_names())
        loaded = [st.load(p) for p in parts]
        for p in parts:
            stale = stale_groups(st, p)
            if stale:
                raise FitError(
                    f"{p!r} was pooled from {st.provenance(p)['pooled']['from']!r}, whose rows changed since for "
                    f"{len(stale)} group(s) ({short_list(stale, 3)}). Run 'featx pool' again, then fit."
                )
    if len(parts) == 1:
        fs, dropped = _finite_columns(loaded[0], features)
    else:
        dropped, kept = [], []
        for part in loaded:  # named first, so a dropped column keeps its place in the names
            part, gone = _finite_columns(part.named(), part.name)
            dropped += [f"{part.name}:{n}" for n in gone]
            kept.append(part if _target(s) != "classification" else _labelled(part, part.name))
        fs = combine(kept)
    if _target(s) == "regression":
        return with_values(fs, features, s.value, s.cv if s.split == "cv" else 2), dropped
    if _target(s) == "survival":
        return with_events(fs, features, s.time, s.event), dropped
    return _labelled(fs, features), dropped


def _target(s) -> str:
    return "classification" if s is None else getattr(s, "target", "classification")


def _finite_columns(fs: FeatureSet, features: str) -> tuple[FeatureSet, list[str]]:
    fs, dropped = fs.without_nonfinite_columns()
    if dropped:
        log.warning(
            "%s: left out %d feature(s) that are NaN/inf in some rows (%s); 'featx store export' shows "
            "them, each row's note says why",
            features,
            len(dropped),
            short_list(dropped),
        )
    if fs.X.shape[1] == 0:
        raise FitError(f"Every feature of {features!r} is NaN/inf in some row; nothing to fit. Check the rows' notes.")
    return fs, dropped


def _labelled(fs: FeatureSet, features: str) -> FeatureSet:
    labelled = fs.labels != ""
    if not labelled.all():
        log.warning("%d sample(s) of %s have no label and are left out", int((~labelled).sum()), features)
        fs = fs.subset(labelled)
    if len(fs) == 0:
        raise FitError(f"No labelled samples in feature set {features!r}. Give the manifest a 'label' column.")
    tuned = fs.provenance.get("finetune")
    if tuned:
        log.warning(
            "%s comes from a backbone fine-tuned on %s labelled samples (%s; run %s): scores on samples it was "
            "trained on are optimistic. Score these features on rows the fine-tuning never saw (its held-out "
            "test rows), and compare fine-tuning itself with 'featx bench --finetuned RUN'.",
            features,
            (tuned.get("trained_on") or {}).get("n", "?"),
            (tuned.get("trained_on") or {}).get("what", "?"),
            tuned.get("run"),
        )
    return fs


def plan_split(fs: FeatureSet, s: SplitSettings) -> tuple[FeatureSet, FeatureSet, Folds]:
    """(development rows, held-out test rows, folds over the development rows), by the split settings ``s``.

    ``split_by='image'`` deliberately ignores the subjects when drawing folds (each image is
    its own group): what a slice-level random split reports, for showing the leak side by side
    with the grouped split. Never use it for a result you report as is.
    """
    split, test_size, split_by = s.split, s.test_size, s.split_by
    has_subjects = bool((fs.subjects != "").all())
    fs, copies, record = _copies(fs, s, has_subjects)
    if not has_subjects:
        log.warning("no subject ids: each sample is its own group, so slices of one patient may leak across folds")
    elif split_by == "image":
        log.warning(
            "--split-by image: folds ignore the subjects, so one patient's slices sit on both sides of a "
            "split and every metric is optimistic (a slice-level leak, kept only for comparison)"
        )
    if split == "fixed":
        dev, test = fs, fs.subset(np.zeros(len(fs), bool))
        if test_size is not None and (fs.splits == "test").any():
            raise FitError(
                "The manifest already marks 'test' rows; --test-size would draw another test set. Drop "
                "--test-size to use the manifest's split, or clear its 'split' column."
            )
    else:
        is_test = fs.splits == "test"
        dev, test = fs.subset(~is_test), fs.subset(is_test)
        if len(dev) == 0:
            raise FitError("Every sample is in the 'test' split: nothing to cross-validate on. Mark some as train/val.")
        both = sorted(set(dev.subjects.tolist()) & set(test.subjects.tolist())) if has_subjects else []
        if both:
            raise FitError(
                f"Subject {both[0]!r}"
                + (f" (and {len(both) - 1} more)" if len(both) > 1 else "")
                + " has rows in the 'test' split and outside it: refusing a split that puts one patient "
                "on both sides (its slices would leak into the test side and inflate every metric). "
                "Give all of a subject's rows the same split."
            )
    subjects = dev.subjects if has_subjects and split_by == "subject" else None
    groups = subjects
    if record is not None and record["policy"] == "together":
        in_dev = np.isin(copies.ids, dev.ids)
        joined = copies.joined_units()[in_dev]
        if len(set(joined.tolist())) < len(set(copies.units[in_dev].tolist())):
            groups = joined  # copies among the development rows: their units are joined (a union of groups)
    if s.folds is not None:
        folds = load_folds(s.folds, dev.ids, subjects)
        if groups is not subjects:
            _warn_split_copies(folds, groups, s.folds)
    elif split == "fixed":
        folds = (
            make_holdout(dev.labels, groups, test_size, s.seed, s.repeats)
            if test_size is not None
            else manifest_split(dev.splits, subjects)
        )
    else:
        folds = make_folds(dev.labels, groups, k=s.cv, seed=s.seed, repeats=s.repeats)
    if groups is not subjects and subjects is None:
        folds = replace(folds, grouped=False)  # grouped by copies only: no subjects to report by
    return dev, test, replace(folds, copies=record)


def _copies(fs: FeatureSet, s: SplitSettings, has_subjects: bool):
    """(the rows to split, the copies among ``fs``, the protocol's record of them or None when there are none).

    The rows lose the test rows that are copies of training rows when the manifest's split column puts copies on
    both sides and ``s.drop_test_copies`` asks for it; otherwise those rows are named and counted."""
    copies = find_copies(fs.ids, fs.copy_keys, fs.subjects if has_subjects else None, fs.labels)
    if not copies:
        return fs, copies, None
    policy = s.copies if s.split_by == "subject" else "apart"
    record = {**copies.to_dict(policy), "summary": copies.summary(policy)}
    log.warning("%s", record["summary"])
    fixed_by_manifest = s.split == "cv" or s.test_size is None
    crossing = cross_copies(copies, fs.splits == "test") if fixed_by_manifest else np.zeros(len(fs), bool)
    if crossing.any():
        ids = fs.ids[crossing].tolist()
        record.update(test_copies=len(ids), test_copies_dropped=bool(s.drop_test_copies))
        what = (
            f"{len(ids)} test row(s) are exact copies of training rows ({short_list(ids, 5)}): the manifest's "
            "split column puts them on both sides, which featx cannot change"
        )
        if s.drop_test_copies:
            log.warning("%s; --drop-test-copies leaves them out of scoring", what)
            fs = fs.subset(~crossing)
        else:
            log.warning("%s; they are scored and counted in the report (--drop-test-copies leaves them out)", what)
        record["summary"] += f"; {what}" + ("; left out of scoring" if s.drop_test_copies else "; scored")
    return fs, copies, record


def _warn_split_copies(folds: Folds, groups, where) -> None:
    """Folds loaded from an earlier run that split copies apart: say so (they are used as given)."""
    for r in range(folds.repeats):
        if subject_leaks(folds, groups, r):
            log.warning(
                "The folds from %s put exact copies of one image on different sides: scores on them are optimistic. "
                "Drop --folds to draw folds that keep copies together.",
                where,
            )
            return


def check_design(dev: FeatureSet, test: FeatureSet, folds: Folds) -> None:
    """Refuse, before any fitting, a design no head can be trained on; say what a split cannot score.

    * every training side (each fold's, or the fixed split's) needs two classes, else a FitError names it;
    * a test side with one class (the fixed split's, or the held-out test rows): AUC, sensitivity or
      specificity are not computable there; they are reported as such, and a warning says so now;

    A paired design (subjects with images of several labels: left/right organs, pre/post scans) is
    fine: folds keep a subject's images together, scores are per image, and the subject-level scores
    say why they are not computable. ``--fuse`` (one label per subject) refuses it, naming the subjects.
    """
    y = np.asarray(dev.labels)
    fixed = folds.kind == "fixed"
    warned = False
    for r, f, train, held in folds.split():
        counts = Counter(y[train].tolist())
        if len(counts) < 2:
            only, n = next(iter(counts.items())) if counts else ("none", 0)
            where = "The training side of the fixed split" if fixed else f"The training folds of fold {f + 1}"
            where += f" (draw {r + 1})" if folds.repeats > 1 else ""
            fix = (
                "Put rows of every class outside the test split (the manifest's 'split' column), or use --test-size."
                if fixed
                else "Use fewer folds (--cv) or add samples of the other classes."
            )
            raise FitError(
                f"{where} holds only class {only!r} ({n} rows): a classifier needs two classes to learn. {fix}"
            )
        if fixed and not warned and len(set(y[held].tolist())) < 2:
            warned = True
            log.warning(
                "The test side of the fixed split%s holds only class %s (%d rows): AUC, sensitivity or "
                "specificity are not computable on it (reported as such). Put rows of every class in the test split.",
                f" (draw {r + 1})" if folds.repeats > 1 else "",
                ", ".join(repr(c) for c in sorted(set(y[held].tolist()))) or "none",
                len(held),
            )
    if len(test) and len(set(test.labels.tolist())) < 2:
        log.warning(
            "The held-out test split holds only class %r (%d rows): AUC, sensitivity or specificity are not "
            "computable on it (reported as such).",
            test.labels[0],
            len(test),
        )


def split_classes(dev: FeatureSet, test: FeatureSet, positive: str | None) -> list[str]:
    """The classes (sorted labels of the development rows), refusing an unknown positive class or test-only labels."""
    classes = sorted(set(dev.labels))
    if positive is not None and positive not in classes:
        raise FitError(f"--positive {positive!r} is not a label (labels: {', '.join(classes)}).")
    unseen = sorted(set(test.labels) - set(classes))
    if unseen:
        raise FitError(f"Test labels {unseen} never occur outside the test split; no model can learn them.")
    return classes


def near_copy_record(dev: FeatureSet, test: FeatureSet, folds: Folds) -> dict | None:
    """How many scored rows have a near-copy among the rows their model trained on: the held-out test rows against
    the development rows, and each fold's rows against its training folds (the first repeat). By the pixel signatures
    stored at extraction and the network's embedding (``featx audit``'s rule and thresholds), whichever the set has;
    None when it has neither (radiomics); too many rows: not checked, said so."""
    cols = deep_columns(dev.provenance, dev.X.shape[1])
    signed = dev.signatures is not None and (not len(test) or test.signatures is not None)
    if (cols is None and not signed) or not len(dev):
        return None
    by = " or ".join(x for x, ok in (("embedding", cols is not None), ("pixel signature", signed)) if ok)
    record: dict = {"threshold": DEFAULT_THRESHOLD, "signature_threshold": SIGNATURE_THRESHOLD, "by": by}
    if len(dev) + len(test) > CHECK_MAX_ROWS:
        record["summary"] = (
            f"near-copies across the split not checked ({len(dev) + len(test)} rows, more than {CHECK_MAX_ROWS}): "
            "run 'featx audit'"
        )
        return record

    def part(fs):
        return (None if cols is None else fs.X[:, cols]), (fs.signatures if signed else None)

    X, S = part(dev)
    hits, tested = split_contamination(X, folds.fold_of[0], S)
    scope = "test side of the fixed split" if folds.kind == "fixed" else "out-of-fold rows"
    record.update(scored=tested, scored_with_near_copy=hits, scope=scope)
    parts = [f"{hits} of {tested} {scope} have a near-copy ({by} >= 0.95) in their training rows"]
    if len(test):
        Xt, St = part(test)
        X2 = None if X is None else np.vstack([X, Xt])
        S2 = None if S is None else np.vstack([S, St])
        fold_of = np.r_[np.full(len(dev), -1), np.zeros(len(test), int)]
        t_hits, _ = split_contamination(X2, fold_of, S2)
        record.update(test=len(test), test_with_near_copy=t_hits)
        parts.append(f"{t_hits} of {len(test)} held-out test rows have one among the development rows")
    record["summary"] = "; ".join(parts) + (
        ": 'featx audit' shows them" if hits or record.get("test_with_near_copy") else ""
    )
    return record
