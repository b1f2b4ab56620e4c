"""The rows of a target without classes: a regression's values and a survival target's (event, time), read from the
manifest's outcome columns the store keeps, checked cell by cell, and labelled with the strata of the folds."""

from __future__ import annotations

import logging

import numpy as np

from featx.errors import FitError, short_list
from featx.store.feature_set import FeatureSet

log = logging.getLogger(__name__)

EVENT_WORDS = {"1": True, "0": False, "true": True, "false": False, "yes": True, "no": False}


def _outcome(fs: FeatureSet, features: str, column: str) -> list[str]:
    if column not in fs.outcomes:
        kept = ", ".join(sorted(fs.outcomes)) or "none"
        raise FitError(
            f"{features!r}: the store keeps no outcome column {column!r} (it keeps: {kept}). Add the column to the "
            "manifest and run 'featx extract' (or 'featx radiomics') with it again: known rows are not recomputed."
        )
    return [str(c).strip() for c in fs.outcomes[column]]


def event_times(fs: FeatureSet, time: str, event: str) -> tuple[np.ndarray, np.ndarray]:
    """(event, time) of the rows of ``fs`` (checked by :func:`with_events`)."""
    events = np.array([EVENT_WORDS[c.lower()] for c in _outcome(fs, fs.name, event)], dtype=bool)
    return events, np.array([float(c) for c in _outcome(fs, fs.name, time)])


def with_events(fs: FeatureSet, features: str, time: str, event: str) -> FeatureSet:
    """The rows of ``fs`` with a follow-up ``time`` (a number > 0) and an ``event`` (1/0, yes/no, true/false),
    labelled ``event`` or ``censored`` (the strata of the folds). Rows missing either are left out (said so); a
    cell that is neither is a FitError naming its sample; no event at all is refused."""
    times, events = _outcome(fs, features, time), _outcome(fs, features, event)
    bad, has = [], np.zeros(len(fs), bool)
    for i, (t, e) in enumerate(zip(times, events)):
        if not t or not e:
            continue
        try:
            ok_time = float(t) > 0 and np.isfinite(float(t))
        except ValueError:
            ok_time = False
        if not ok_time:
            bad.append(f"{fs.ids[i]}: {time} {t!r}")
        elif e.lower() not in EVENT_WORDS:
            bad.append(f"{fs.ids[i]}: {event} {e!r}")
        else:
            has[i] = True
    if bad:
        raise FitError(
            f"{features!r}: {len(bad)} row(s) hold no positive time or no 1/0 event ({short_list(bad)}); fix or "
            "empty those cells in the manifest."
        )
    if not has.all():
        log.warning(
            "%d sample(s) of %s lack a %r time or an %r event and are left out",
            int((~has).sum()),
            features,
            time,
            event,
        )
        fs = fs.subset(has)
    ev, _ = event_times(fs, time, event)
    if not ev.any():
        raise FitError(f"{features!r}: no row has an event in {event!r}; a survival model needs events.")
    out = fs.subset(np.ones(len(fs), bool))
    out.labels = np.where(ev, "event", "censored").astype(object)
    return out


#: at most this many value bins stratify the folds of a regression
VALUE_BINS = 5


def with_values(fs: FeatureSet, features: str, column: str, k: int) -> FeatureSet:
    """The rows of ``fs`` with a number in the outcome column ``column``, their labels replaced by value bins that
    stratify the folds: quantiles of the subjects' values, as many (2 to :data:`VALUE_BINS`) as leave ``k``
    subjects in each. Rows without a value are left out (said so); a cell that is not a number is a FitError
    naming its sample."""
    cells = _outcome(fs, features, column)
    values = np.full(len(fs), np.nan)
    bad = []
    for i, cell in enumerate(cells):
        if not cell.strip():
            continue
        try:
            v = float(cell)
        except ValueError:
            v = np.nan
        if np.isfinite(v):
            values[i] = v
        else:
            bad.append(f"{fs.ids[i]}: {cell!r}")
    if bad:
        raise FitError(
            f"{features!r}: {len(bad)} row(s) hold no finite number in {column!r} ({short_list(bad)}); "
            "fix or empty those cells in the manifest."
        )
    has = ~np.isnan(values)
    if not has.all():
        log.warning("%d sample(s) of %s have no %r value and are left out", int((~has).sum()), features, column)
        fs = fs.subset(has)
    if len(fs) < 3:
        raise FitError(f"{features!r}: {len(fs)} row(s) have a {column!r} value; a regression needs more.")
    return value_strata(fs, column, k)


def value_strata(fs: FeatureSet, column: str, k: int) -> FeatureSet:
    """``fs`` with each row labelled by the quantile bin of its subject's ``column`` value (``v1`` lowest): the
    strata of the folds of a regression."""
    values = fs.outcomes[column].astype(float)
    units = np.where(fs.subjects != "", fs.subjects, fs.ids)
    names, first = np.unique(units, return_index=True)
    unit_value = values[first]
    bins = int(np.clip(len(names) // max(k, 1), 1, VALUE_BINS))
    if bins < 2:
        raise FitError(
            f"A {k}-fold CV of a regression is stratified by the value in at least 2 bins of {k} subjects; there "
            f"are {len(names)} subjects with a {column!r} value. Use fewer folds (--cv) or add data."
        )
    edges = np.quantile(unit_value, np.linspace(0, 1, bins + 1)[1:-1])
    unit_bin = np.searchsorted(edges, unit_value, side="right")
    labels = np.array([f"v{b + 1}" for b in unit_bin[np.searchsorted(names, units)]], dtype=object)
    out = fs.subset(np.ones(len(fs), bool))
    out.labels = labels
    return out
