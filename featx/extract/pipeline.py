"""The extraction pipeline: decode workers -> bounded queue -> batched compute -> writer thread.

* Decoding and preprocessing run in a pool of workers (threads by default: PIL's
  decoders and resamplers and numpy release the GIL; ``benchmarks/extract.py``
  measures threads against processes). At most ``lookahead`` batches are in flight,
  so memory is bounded whatever the data set size.
* The calling thread batches what the workers finish, in order, and runs the model.
* A writer thread appends results to the sink (the store's journal) while the next
  batch computes. Its queue is bounded too.

Every batch carries its row indices and sample ids; a failing sample is recorded
with its reason and the run goes on, up to a limit.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np

from featx.failures import RunStats, aborted, failure_reason
from featx.images.loader import content_hash, pixel_digest
from featx.images.raster import image_notes
from featx.images.signature import pixel_signature, to_text
from featx.progress import progress_bar
from featx.store.open import RowDone, RowFailed

log = logging.getLogger(__name__)

DEFAULT_LOOKAHEAD = 3  # batches decoding ahead of the model (benchmarks/extract.py --lookahead)


class SampleLoader:
    """Picklable ``loader(sample) -> (preprocessed CHW float32, sha256 of its file, note, pixel digest)``.

    The note says what to know of an image that decodes but may mislead (:func:`image_notes`), else "". The pixel
    digest (:func:`~featx.images.loader.pixel_digest`) and signature (:mod:`featx.images.signature`) find copies and
    near-copies whose files differ.
    """

    def __init__(self, reader, preprocess):
        self.reader, self.preprocess = reader, preprocess

    def __call__(self, sample):
        im = self.reader(sample)
        pixels = pixel_digest(im), to_text(pixel_signature(im))
        return self.preprocess(im), content_hash(sample.path), image_notes(im, sample.path), pixels


def ok_entry(row: int, sample_id: str, sha, note: str, pixels: tuple = ("", "")) -> RowDone:
    """The journal entry of a computed row.

    ``sha``: the file's sha256, or ``(image sha256, mask sha256)`` for a lesion crop, whose mask places the crop
    (also as one ``"image\nmask"`` string, as it travels through Ray); ``pixels``: the decoded pixels' digest and
    signature."""
    if isinstance(sha, str) and "\n" in sha:
        sha = tuple(sha.split("\n", 1))
    sha, mask_sha = sha if isinstance(sha, tuple) else (sha, "")
    return RowDone(row, sample_id, sha, mask_sha, note, *pixels)


def _pool(mode: str, workers: int) -> Executor:
    """Decoding workers: threads, or processes (forkserver: never fork a process that has runtime threads)."""
    if mode == "thread":
        return ThreadPoolExecutor(max_workers=workers)
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("forkserver"), initializer=ignore_interrupts
    )


def ignore_interrupts() -> None:
    """A worker process leaves Ctrl-C to the main process, which stops the run with one line (the terminal sends
    SIGINT to every process of the group: a worker would print a traceback of its own)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Writer(threading.Thread):
    """Drains a bounded queue into ``sink``; the first error stops it and is re-raised by the producer."""

    def __init__(self, sink: Callable, depth: int = 2):
        super().__init__(name="featx-writer", daemon=True)
        self.sink, self.q, self.error = sink, queue.Queue(maxsize=depth), None

    def run(self) -> None:
        while (item := self.q.get()) is not None:
            if self.error is None:
                try:
                    self.sink(*item)
                except BaseException as exc:  # surfaced in the producer thread
                    self.error = exc

    def put(self, item) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(item)

    def finish(self) -> None:
        self.q.put(None)
        self.join()
        if self.error is not None:
            raise self.error


def run_pipeline(
    todo: Sequence[tuple[int, object]],
    load: Callable,
    compute: Callable[[np.ndarray], np.ndarray],
    sink: Callable,
    *,
    batch_size: int,
    limit: int,
    label: str,
    workers: int | None = None,
    mode: str = "thread",
    lookahead: int = DEFAULT_LOOKAHEAD,
    progress: bool = True,
    where: str = "the store",
) -> RunStats:
    """Run ``todo`` ((row, sample) pairs) through ``load`` -> ``compute`` -> ``sink``.

    ``sink(ok, X, failed)`` gets ``ok`` = [:class:`~featx.store.journal.RowDone`], the feature rows ``X``, and
    ``failed`` = [:class:`~featx.store.journal.RowFailed`].

    Raises
    ------
    ExtractionAborted
        When more than ``limit`` samples failed; what the sink got is kept.
    """
    workers = workers or min(8, os.cpu_count() or 1)
    stats = RunStats()
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    writer = _Writer(sink)
    writer.start()
    t0 = time.perf_counter()
    try:
        with _pool(mode, workers) as pool, progress_bar(label, total=len(todo), enabled=progress) as bar:
            pending: deque = deque()
            nxt = 0
            while pending or nxt < len(batches):
                while nxt < len(batches) and len(pending) < lookahead:
                    pending.append([(r, s, pool.submit(load, s)) for r, s in batches[nxt]])
                    nxt += 1
                ok, xs, failed = [], [], []
                t_wait = time.perf_counter()
                for r, s, fut in pending.popleft():
                    try:
                        x, sha, note, pixels = fut.result()
                        ok.append(ok_entry(int(r), s.sample_id, sha, note, pixels))
                        xs.append(x)
                        if note:
                            stats.notes.append((s.sample_id, note))
                            log.warning("note: %s: %s", s.sample_id, note)
                    except Exception as exc:  # any per-image failure is recorded, never fatal
                        why = failure_reason(exc, s)
                        failed.append(RowFailed(int(r), s.sample_id, why))
                        stats.failures.append((s.sample_id, why))
                        log.warning("failed: %s", why)
                t_run = time.perf_counter()
                stats.wait_s += t_run - t_wait
                X = compute(np.stack(xs)) if xs else np.zeros((0, 0), np.float32)
                stats.compute_s += time.perf_counter() - t_run
                writer.put((ok, X, failed))
                stats.done += len(ok)
                bar.update(len(ok) + len(failed), rate=(stats.done + len(stats.failures)) / (time.perf_counter() - t0))
                if len(stats.failures) > limit:
                    for later in pending:
                        for _, _, fut in later:
                            fut.cancel()
                    raise aborted(stats, limit, where)
    finally:
        writer.finish()
    return stats
