"""Every core for ``fit`` and ``bench``: fold fits (and bench cells) run in parallel worker processes.

``--jobs N`` (default: the cores this process may use: its CPU affinity, a cgroup CPU quota, and
``OMP_NUM_THREADS`` when set) runs the independent fits of a cross-validation, and every cell of a bench
at once, in joblib's process pool. Results come back in submission order and every fit is seeded by its
(repeat, fold) and runs on one thread (:func:`featx.evaluate.protocol.cv.fold_fit`), so the numbers are identical to
``--jobs 1`` and the total never oversubscribes.

``--ray ADDRESS`` sends the same fits to a Ray cluster through joblib's Ray backend
(``ray.util.joblib``); needs ``featx[ray]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from featx.cluster import register_ray_joblib


def usable_cores() -> int:
    """Cores this process may use: CPU affinity, a cgroup v2 CPU quota, and ``OMP_NUM_THREADS`` when set."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        n = min(n, int(omp))
    return max(1, n)


def resolve_jobs(jobs: int | None) -> int:
    """``--jobs``: the given number, or every usable core."""
    return usable_cores() if jobs is None else max(1, int(jobs))


@contextmanager
def ray_backend(address: str | None):
    """joblib's Ray backend for the calls inside, connected to ``address`` (``auto``, ``local`` or ``ray://``)."""
    if address is None:
        yield None
        return
    from joblib import parallel_backend

    register_ray_joblib(address)
    with parallel_backend("ray"):
        yield "ray"


def run_tasks(tasks: Sequence[tuple], jobs: int, backend: str | None = None) -> list:
    """Run ``(fn, args, on_done)`` tasks: ``fn(*args)`` each, in ``jobs`` worker processes when ``jobs > 1``;
    results in task order, and ``on_done(result)`` (when not None) called as each arrives, in order (to
    keep finished folds, to advance a progress bar)."""
    out = []
    if (jobs <= 1 and backend is None) or len(tasks) <= 1:
        results = (fn(*args) for fn, args, _ in tasks)
    else:
        from joblib import Parallel, delayed

        if backend == "ray":  # the cluster's workers; its joblib backend returns the whole list at the end
            run = Parallel(n_jobs=-1)
        else:  # results as they finish, in order: finished folds are kept even if a later one fails
            run = Parallel(n_jobs=min(jobs, len(tasks)), backend="loky", return_as="generator")
        results = run(delayed(fn)(*args) for fn, args, _ in tasks)
    for (_, _, on_done), result in zip(tasks, results):
        if on_done is not None:
            on_done(result)
        out.append(result)
    return out
