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
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from featx.failures import RunStats, aborted, failure_reason
from featx.progress import progress_bar

log = logging.getLogger(__name__)
_COMPUTER: Callable | None = None


def _init_worker(computer: Callable, threads: int) -> None:
    global _COMPUTER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to report, in one line
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
    pool = ProcessPoolExecutor(
        width,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_init_worker,
        initargs=(computer, threads),
    )
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
    run = _Cases(computer, sink, limit, where, finish)
    with progress_bar(label, total=len(todo), enabled=progress) as run.bar:
        queue, suspects = deque(todo), run.suspects
        while queue or suspects:
            alone = bool(suspects)  # after a worker died: its cases, one at a time, to find the culprit
            source, width, depth = (suspects, 1, 1) if alone else (queue, jobs, 2 * jobs)
            run.round(pool or start_pool(computer, width), source, depth, alone)
            pool = None
    return run.stats


_DIED = (
    "the worker process died computing it (killed by the OS, most often out of memory); run it with fewer "
    "--jobs or smaller settings (resampling, filters)"
)


class _Cases:
    """The bookkeeping of :func:`run_cases`: every finished case to the sink, the suspects of a dead worker."""

    def __init__(self, computer, sink, limit: int, where: str, finish):
        self.computer, self.sink, self.limit, self.where, self.finish = computer, sink, limit, where, finish
        self.stats, self.suspects, self.bar, self.t0 = RunStats(), deque(), None, time.perf_counter()

    def record(self, row, sample, result, why) -> None:
        self.sink(row, sample, result, why)
        if why is None:
            self.stats.done += 1
        else:
            self.stats.failures.append((sample.sample_id, why))
            log.warning("failed: %s", why)
        self.bar.update(1, rate=(self.stats.done + len(self.stats.failures)) / (time.perf_counter() - self.t0))
        if len(self.stats.failures) > self.limit:
            raise aborted(self.stats, self.limit, self.where)

    def round(self, pool: ProcessPoolExecutor, source: deque, depth: int, alone: bool) -> None:
        """Run cases from ``source`` (at most ``depth`` in flight) until it is empty or a worker dies; the cases
        in flight when one dies become suspects. The pool is shut down at the end."""
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
                    broken |= self._finished(fut, row, sample, alone)
            if broken:
                self.suspects.extend(inflight.values())
                inflight.clear()
        finally:
            for fut in inflight:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def _finished(self, fut, row, sample, alone: bool) -> bool:
        """Record one finished case; True when its worker died."""
        try:
            result = fut.result()
            if self.finish is not None:
                result = self.finish(result)
        except BrokenProcessPool:
            if alone:
                self.record(row, sample, None, f"{sample.sample_id} ({sample.path}): {_DIED}")
            else:
                self.suspects.append((row, sample))
            return True
        except Exception as exc:  # a case's failure is recorded, never fatal
            self.record(row, sample, None, failure_reason(exc, sample))
        else:
            self.record(row, sample, result, None)
        return False
