"""What a fit needs in memory, and a refusal before anything is read when the machine cannot give it
(``benchmarks/fit_memory.py`` measures the peaks)."""

from __future__ import annotations

from pathlib import Path

from featx.errors import FitError
from featx.evaluate.protocol.combined import parts_of
from featx.evaluate.protocol.parallel import resolve_jobs
from featx.store.open import open_store

#: peak memory of a fit over the size of its feature matrix: the matrix, then each worker's training rows, their
#: standardised copy and the solver's (benchmarks/fit_memory.py: logreg 4.9x with --jobs 1, 8.9x with --jobs 2)
PER_JOB = 4.0


def available_memory() -> int | None:
    """Bytes the system can give without swapping (Linux's MemAvailable, and a cgroup v2 limit when lower); None
    where neither is known."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit, used = (Path(f"/sys/fs/cgroup/memory.{f}").read_text().strip() for f in ("max", "current"))
        if limit != "max":
            room = int(limit) - int(used)
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


def fit_memory(matrices: dict, jobs: int) -> int:
    """Bytes a fit (or a bench) of feature matrices ``name -> nbytes`` needs at its peak, about: every matrix held
    at once, and :data:`PER_JOB` times the largest for each of ``jobs`` fits side by side."""
    return int(sum(matrices.values()) + PER_JOB * jobs * max(matrices.values(), default=0))


def check_memory(store, features: list[str], s) -> None:
    """FitError, before anything is read, when the feature sets ``features`` of ``store`` (combined ones: their
    parts) would not fit in the memory this machine has free with ``s.jobs`` fits at once: their size, what a fit
    needs and what to do. Never a run that swaps the machine to death."""
    available = available_memory()
    if available is None:
        return
    with open_store(store) as st:
        sizes = {}
        for f in features:
            for part in parts_of(f, st.feature_names()):
                sizes[part] = st.matrix_size(part)
    matrices = {name: size[2] for name, size in sizes.items()}
    jobs = resolve_jobs(getattr(s, "jobs", None))
    need = fit_memory(matrices, jobs)
    if need <= available:
        return
    gib = 2**30
    largest = max(sizes, key=lambda n: sizes[n][2])
    rows, cols, nbytes = sizes[largest]
    one_job = fit_memory(matrices, 1)
    hint = f" With --jobs 1 it needs about {one_job / gib:.1f} GiB." if jobs > 1 and one_job <= available else ""
    raise FitError(
        f"{largest!r} is {rows:,} rows x {cols:,} features ({nbytes / gib:.1f} GiB); fitting it with --jobs {jobs} "
        f"needs about {need / gib:.1f} GiB and this machine has {available / gib:.1f} GiB free.{hint} Otherwise fit "
        "fewer rows (pool them per subject with 'featx pool', or a smaller manifest) or fewer features (a smaller "
        "backbone or layer); --pca works inside each fit and does not shrink the matrix."
    )
