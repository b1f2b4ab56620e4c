"""The Task: what a run predicts, for which rows, and which rows belong together.

Every scorer, comparison, selection and curve of ``fit`` and ``bench`` takes a Task (and the bootstrap settings)
instead of loose ``(y, classes, groups, folds, positive)`` parameters. ``kind`` says what the target is:

* ``classification``: ``y`` holds class codes into ``classes`` (sorted names); ``positive`` is the positive class of a
  binary task (None: the second class);
* ``regression``: ``y`` holds the numbers to predict (``--value COLUMN``), ``classes`` is empty;
* ``survival``: ``y`` holds (event, time) records, scikit-survival's structured array (``--time``, ``--event``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from featx.config import Choice
from featx.evaluate.protocol.folds import Folds
from featx.evaluate.protocol.outcomes import event_times

#: what a run predicts: the manifest's label, a number (``--value COLUMN``), or a time to an event (``--time``,
#: ``--event``)
TARGETS = Choice("target", ("classification", "regression", "survival"))


@dataclass(frozen=True, eq=False)
class Task:
    """The target of ``n`` rows, their units and their folds.

    Attributes
    ----------
    kind : {'classification', 'regression', 'survival'}
    y : ndarray, shape (n,)
        Class codes (classification), the values (regression), or (event, time) records (survival).
    classes : tuple of str
        Class names, in code order.
    positive : str, optional
        The positive class of a binary task, as the user named it (None: the second class).
    groups : ndarray of str, optional
        The subject of each row when the folds are grouped by subject (the unit the bootstrap resamples); None:
        each row is its own unit.
    folds : Folds, optional
        The folds the rows were predicted in; None for rows scored once (a held-out test split).
    times : tuple of float
        Survival: where each row's survival function is evaluated (the integrated Brier score's grid).
    horizons : tuple of float
        Survival: the times of the time-dependent AUC.
    reference : ndarray, optional
        Survival: the rows whose censoring distribution weights Uno's C, the time-dependent AUC and the Brier
        score (the development rows).
    risk_cut : float
        Survival: the quantile of a training fold's risk scores that splits low from high risk.
    """

    kind: str
    y: np.ndarray
    classes: tuple = ()
    positive: str | None = None
    groups: np.ndarray | None = None
    folds: Folds | None = None
    times: tuple = ()
    horizons: tuple = ()
    reference: np.ndarray | None = None
    risk_cut: float = 0.5

    @classmethod
    def classification(cls, labels, classes=None, *, positive=None, groups=None, folds=None) -> Task:
        """A classification Task of rows labelled ``labels`` (names, coded into ``classes``; default: the sorted
        labels)."""
        labels = np.asarray(labels).astype(str)
        classes = sorted(set(labels.tolist())) if classes is None else list(classes)
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[v] for v in labels], dtype=np.int64)
        return cls("classification", y, tuple(classes), positive, None if groups is None else np.asarray(groups), folds)

    @classmethod
    def survival(cls, event, time, *, groups=None, folds=None) -> Task:
        """A survival Task: ``y`` is scikit-survival's structured array of (``event``, ``time``)."""
        y = np.empty(len(time), dtype=[("event", bool), ("time", float)])
        y["event"], y["time"] = np.asarray(event, bool), np.asarray(time, float)
        return cls("survival", y, (), None, None if groups is None else np.asarray(groups), folds)

    @classmethod
    def regression(cls, values, *, groups=None, folds=None) -> Task:
        """A regression Task of rows with the numbers ``values``."""
        return cls(
            "regression", np.asarray(values, float), (), None, None if groups is None else np.asarray(groups), folds
        )

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def width(self) -> int:
        """Columns of one prediction: a probability per class, the one value of a regression, or a survival head's
        outputs (risk, its fold's cut-off, then the survival probability at each of ``times``)."""
        if self.kind == "survival":
            return 2 + len(self.times)
        return self.n_classes if self.kind == "classification" else 1

    @property
    def n_proba(self) -> int | None:
        """The class columns of a classifier's ``predict_proba`` (None: a regressor's ``predict``)."""
        return self.n_classes if self.kind == "classification" else None

    @property
    def pos(self) -> int | None:
        """The code of the positive class of a binary task (None: multi-class)."""
        if self.n_classes != 2:
            return None
        return self.classes.index(self.positive) if self.positive is not None else 1

    def rows(self, sel) -> Task:
        """The same Task on the rows ``sel`` selects (a boolean mask or indices), with their folds."""
        return replace(
            self,
            y=self.y[sel],
            groups=None if self.groups is None else self.groups[sel],
            folds=None if self.folds is None else self.folds.subset(sel),
        )

    def without_folds(self) -> Task:
        """The rows alone: for predictions made once (a test split, a pooled comparison)."""
        return replace(self, folds=None)


def tasks_of(dev, test, folds: Folds, classes: list, s) -> tuple[Task, Task]:
    """The Tasks of the development rows (with ``folds``) and of the test rows of a run with split settings ``s``:
    grouped by subject when the folds are."""
    groups = lambda f: f.subjects if folds.grouped else None  # noqa: E731
    if getattr(s, "target", "classification") == "survival":
        return survival_tasks(dev, test, folds, s, groups)
    if getattr(s, "target", "classification") == "regression":
        values = lambda f: f.outcomes[s.value].astype(float)  # noqa: E731
        task = Task.regression(values(dev), groups=groups(dev), folds=folds)
        return task, Task.regression(values(test), groups=groups(test))
    task = Task.classification(dev.labels, classes, positive=s.positive, groups=groups(dev), folds=folds)
    return task, Task.classification(test.labels, classes, positive=s.positive, groups=groups(test))


def survival_tasks(dev, test, folds: Folds, s, groups) -> tuple[Task, Task]:
    """The survival Tasks of a split: the development rows' (event, time) with ``folds``; the survival functions
    evaluated on a grid of the development rows' event times (10th to 80th percentile: inside every fold's follow-up);
    the horizons given (``--horizons``) or the quartiles of the event times; the development rows as the
    censoring reference."""

    def of(f, **kw):
        event, time = event_times(f, s.time, s.event)
        return Task.survival(event, time, groups=groups(f), **kw)

    task = of(dev, folds=folds)
    happened = task.y["time"][task.y["event"]]
    grid = np.unique([float(f"{t:.4g}") for t in np.percentile(happened, np.linspace(10, 80, 15))])  # readable times
    times = tuple(float(t) for t in grid)
    quartiles = (float(f"{t:.4g}") for t in np.percentile(happened, (25, 50, 75)))
    horizons = tuple(float(h) for h in s.horizons) or tuple(quartiles)
    extra = dict(times=times, horizons=horizons, reference=task.y, risk_cut=s.risk_cut)
    return replace(task, **extra), replace(of(test), **extra)
