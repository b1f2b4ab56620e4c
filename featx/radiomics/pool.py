"""The radiomics worker pool: cases in worker processes; a worker that dies fails only its case.

Cases run in ``jobs`` processes (forkserver: no runtime threads are forked), one case each,
at most two per worker in flight, so memory holds a few volumes, never the cohort. When a
worker dies (killed by the OS, most often for memory), the cases it may have held are rerun
one at a time, so the one that kills its worker is named and recorded as failed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Sequence

from featx.failures import RunStats, aborted, failure_reason
from featx.progress import progress_bar

log = logging.getLogger(__name__)
_COMPUTER: Callable | None = None


def _init_worker(computer: Callable, threads: int) -> None:
    global _COMPUTER
    _COMPUTER = computer
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)  # jobs x threads = cores, no oversubscription
    warm_up = getattr(computer, "warm_up", None)
    if warm_up is not None:
        warm_up()


def _run_one(sample):
    return _COMPUTER(sample)


def _ready() -> None:
    """A no-op task: submitting one per worker starts them all at once."""


def start_pool(computer: Callable, width: int) -> ProcessPoolExecutor:
    """A pool of ``width`` worker processes, started now (forkserver: no runtime threads are forked)."""
    threads = max(1, (os.cpu_count() or 1) // width)
    pool = ProcessPoolExecutor(width, mp_context=multiprocessing.get_context("forkserver"),
                               initializer=_init_worker, initargs=(computer, threads))
    for _ in range(width):
        pool.submit(_ready)
    return pool


def run_cases(
    todo: Sequence[tuple[int, object]],
    computer: Callable,
    sink: Callable,
    *,
    jobs: int,
    limit: int,
    label: str,
    progress: bool = True,
    where: str = "the store",
    finish: Callable | None = None,
    pool: ProcessPoolExecutor | None = None,
) -> RunStats:
    """Run ``computer(sample)`` for each (row, sample) of ``todo`` in ``jobs`` processes.

    ``sink(row, sample, result, reason)`` gets every case as it finishes: ``reason``
    is None on success, else why it failed. ``finish(output)``, run here, turns a
    worker's output into the result (it may raise: the case fails). ``pool``: an
    already started pool of ``jobs`` workers to use first (it is shut down here).

    Raises
    ------
    ExtractionAborted
        When more than ``limit`` cases failed; what the sink got is kept.
    """
    stats = RunStats()
    queue, suspects = deque(todo), deque()
    t0 = time.perf_counter()

    def record(row, sample, result, why):
        sink(row, sample, result, why)
        if why is None:
            stats.done += 1
        else:
            stats.failures.append((sample.sample_id, why))
            log.warning("failed: %s", why)
        bar.update(1, rate=(stats.done + len(stats.failures)) / (time.perf_counter() - t0))
        if len(stats.failures) > limit:
            raise aborted(stats, limit, where)

    with progress_bar(label, total=len(todo), enabled=progress) as bar:
        while queue or suspects:
            alone = bool(suspects)  # after a worker died: its cases, one at a time, to find the culprit
            source, width, depth = (suspects, 1, 1) if alone else (queue, jobs, 2 * jobs)
            if pool is None:
                pool = start_pool(computer, width)
            inflight: dict = {}
            try:
                broken = False
                while (source or inflight) and not broken:
                    while source and len(inflight) < depth:
                        row, sample = source.popleft()
                        inflight[pool.submit(_run_one, sample)] = (row, sample)
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for fut in done:
                        row, sample = inflight.pop(fut)
                        try:
                            result = fut.result()
                            if finish is not None:
                                result = finish(result)
                        except BrokenProcessPool:
                            broken = True
                            if alone:
                                record(row, sample, None, f"{sample.sample_id} ({sample.path}): the worker process "
                                       "died computing it (killed by the OS, most often out of memory); run it with "
                                       "fewer --jobs or smaller settings (resampling, filters)")
                            else:
                                suspects.append((row, sample))
                        except Exception as exc:  # a case's failure is recorded, never fatal
                            record(row, sample, None, failure_reason(exc, sample))
                        else:
                            record(row, sample, result, None)
                if broken:
                    suspects.extend(inflight.values())
                    inflight.clear()
            finally:
                for fut in inflight:
                    fut.cancel()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = None
    return stats
