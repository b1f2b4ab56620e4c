"""Finished folds kept on disk, so a fit or bench that stops part-way does not start over.

Each (repeat, fold) a cross-validation finishes is written to ``OUT/.featx-partial/<key>/`` (one small
``.npz``: the test rows' probabilities, the fold's seconds, the tuned parameters, the threshold), atomically. The key
hashes everything that decides a fold's numbers: the features, labels and groups, the fold assignment,
the estimator as built, the tuning grid and inner folds, the seed. A rerun with the same inputs takes
the finished folds from there and computes the others; anything changed gives another key, so a stale
fold is never reused. A run that completes removes the folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PARTIAL = ".featx-partial"


def partial_dir(out) -> Path | None:
    """Where a run writing to ``out`` keeps its finished folds (None without an output folder)."""
    return None if out is None else Path(out) / PARTIAL


def finished(out) -> None:
    """A run into ``out`` completed: its finished folds are no longer needed."""
    root = partial_dir(out)
    if root is not None and root.exists():
        shutil.rmtree(root, ignore_errors=True)


class FoldCache:
    """The finished folds of one cross-validation (see the module docstring); ``root`` None keeps nothing."""

    def __init__(self, root: Path | None, X, y, fold_of, estimator, grid, groups, inner_k: int, seed: int):
        self.dir = None
        self.resumed = 0
        if root is None:
            return
        h = hashlib.sha256()
        for a in (X, y, fold_of):
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype, a.shape)).encode())
            h.update(memoryview(a).cast("B"))  # the bytes in place: a copy of a large X would double a fit's memory
        if groups is not None:
            h.update("\0".join(map(str, groups)).encode())
        h.update(json.dumps([repr(estimator), repr(sorted((grid or {}).items())), inner_k, seed]).encode())
        self.dir = root / h.hexdigest()[:24]

    def get(self, r: int, f: int):
        """(probabilities of the fold's test rows, seconds, tuned parameters, threshold) of a finished fold, or None."""
        if self.dir is None:
            return None
        path = self.dir / f"r{r}_f{f}.npz"
        try:
            with np.load(path) as z:
                out = z["proba"], float(z["seconds"]), json.loads(str(z["best"])), json.loads(str(z["threshold"]))
        except (OSError, KeyError, ValueError):  # not there, or torn: computed again
            return None
        self.resumed += 1
        return out

    def put(self, r: int, f: int, proba, seconds: float, best, threshold: float | None = None) -> None:
        if self.dir is None:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.dir / f".r{r}_f{f}.{os.getpid()}.npz"
            np.savez(tmp, proba=proba, seconds=seconds, best=json.dumps(best), threshold=json.dumps(threshold))
            os.replace(tmp, self.dir / f"r{r}_f{f}.npz")
        except OSError as exc:  # keeping folds is a convenience: the run goes on without it
            log.warning("cannot keep finished folds in %s (%s); a rerun would start over", self.dir, exc)
            self.dir = None

    def report(self, what: str) -> None:
        if self.resumed:
            log.warning(
                "%s: %d finished fold(s) taken from %s (a run that stopped part-way)", what, self.resumed, self.dir
            )
