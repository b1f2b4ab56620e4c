"""pyradiomics -> the same store as the CNN features, case-parallel, resumable, with explicit failures.

Cases run in a pool of worker processes (``--jobs``), one case each, at most two
per worker in flight, so memory holds a few volumes, never the cohort. Results go
through the store's journal like extraction's, so an interrupted run resumes. A
worker that dies (killed by the OS, e.g. out of memory) does not stop the run: the
cases it may have held are rerun alone, so the one that kills a worker is named and
recorded as failed.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from featx import __version__
from featx.errors import FeatxError
from featx.dataset.manifest import Manifest, short_list
from featx.extract.pipeline import BatchStats, aborted, failure_reason, parse_max_failures
from featx.progress import spinner, progress_bar
from featx.store.writer import store_writer

if TYPE_CHECKING:
    from featx.radiomics.params import RadiomicsParams

log = logging.getLogger(__name__)

MODES = ("auto", "2d", "3d")


@dataclass
class RadiomicsSummary:
    """What a radiomics run did."""

    feature_set: str
    store: Path
    params: str
    mode: str
    jobs: int
    n_features: int
    n_samples: int
    n_already: int
    n_computed: int = 0
    n_removed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (sample id, note) of computed rows
    wall_s: float = 0.0
    loop_s: float = 0.0

    @property
    def cases_per_s(self) -> float:
        return self.n_computed / self.loop_s if self.loop_s > 0 else 0.0


def choose_mode(manifest: Manifest, mode: str) -> str:
    """``auto``: 3d when every row is a whole volume (no slice index), else 2d; checks 3d rows are volumes."""
    from featx.images.volume import is_volume_path

    if mode not in MODES:
        raise FeatxError(f"Unknown --mode {mode!r}; choose auto, 2d or 3d.")
    flat = [s.sample_id for s in manifest if s.slice is not None or not is_volume_path(Path(s.path))]
    if mode == "auto":
        return "2d" if flat else "3d"
    if mode == "3d" and flat:
        raise FeatxError(f"--mode 3d computes one vector per volume, but {len(flat)} row(s) are 2D images or slices "
                         f"({short_list(flat)}); give a manifest of volumes (one row each) or use --mode 2d.")
    return mode


def run_radiomics(
    manifest: Manifest,
    store: str | Path,
    *,
    params: str | RadiomicsParams = "default",
    mode: str = "auto",
    jobs: int | None = None,
    auto_mask: str | None = None,
    label: int | None = None,
    name: str | None = None,
    overwrite: bool = False,
    max_failures: str | int | None = None,
    progress: bool = True,
) -> RadiomicsSummary:
    """Compute pyradiomics features for every sample of ``manifest`` into ``store``.

    Parameters
    ----------
    manifest : Manifest
        Samples (images or volumes, with a ``mask`` column unless ``auto_mask``).
    store : path
        HDF5 store, created when missing; the same one ``featx extract`` writes.
    params : str or RadiomicsParams
        A preset (``default``, ``mr-2d``, ``ct-3d``) or a pyradiomics parameter file; or resolved
        parameters (``featx predict`` rebuilds them from a model's provenance; ``mode``, ``auto_mask``
        and ``label`` are then ignored).
    mode : {'auto', '2d', '3d'}
        One vector per 2D sample (image or slice) or per volume; ``auto``: 3d when every row is a volume.
    jobs : int, optional
        Worker processes (default: every core).
    auto_mask : {'whole', 'otsu'}, optional
        Mask for samples without one; without it such samples are refused.
    label : int, optional
        Mask value of the region (default the parameter set's ``label``, 1).
    name : str, optional
        Feature-set name; default ``radiomics.<preset>`` or ``radiomics.<settings hash>``.
    overwrite : bool
        Recompute every row (and replace a feature set made with other settings).
    max_failures : int or str
        Stop once more cases than this failed (``N`` or ``P%``); computed rows stay.
    progress : bool
        Show a progress bar.

    Returns
    -------
    RadiomicsSummary
    """
    from featx.radiomics.case import CaseComputer
    from featx.radiomics.params import RadiomicsParams, load_params

    t0 = time.perf_counter()
    jobs = jobs or os.cpu_count() or 1
    if jobs < 1:
        raise FeatxError(f"--jobs must be at least 1, got {jobs}.")
    limit = parse_max_failures(max_failures, len(manifest))
    if isinstance(params, RadiomicsParams):
        mode, auto_mask = params.mode, params.auto_mask
    mode = choose_mode(manifest, mode)
    if auto_mask is None:
        no_mask = [s.sample_id for s in manifest if not s.mask]
        if no_mask:
            raise FeatxError(f"{len(no_mask)} sample(s) have no mask ({short_list(no_mask)}): add a 'mask' column to "
                             "the manifest, or choose --auto-mask whole (the whole image) or otsu (Otsu foreground).")
    p = params if isinstance(params, RadiomicsParams) else load_params(params, mode, auto_mask, label)
    name = name or p.default_name()
    computer = CaseComputer(p)
    pool = start_pool(computer, jobs)  # workers import pyradiomics while this process prepares the store
    try:
        summary = _run(manifest, store, p, name, pool, computer, jobs=jobs, limit=limit, overwrite=overwrite,
                       progress=progress)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    summary.wall_s = time.perf_counter() - t0
    return summary


def _run(manifest, store, p, name, pool, computer, *, jobs, limit, overwrite, progress) -> RadiomicsSummary:
    """Probe (unless the store knows the names), register the samples, run the cases through the journal."""
    from featx.radiomics.case import to_row
    from featx.radiomics.params import describe, probe_names

    identity = p.identity()
    p.names = _known_names(store, name, identity, overwrite)
    if not p.names:
        with spinner(f"checking the radiomics settings ({p.source}, {p.mode})", enabled=progress):
            p.names = probe_names(p)
    provenance = describe(p) | {"featx_version": __version__,
                                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    with store_writer(store) as w:
        todo, removed = w.register(manifest, name, len(p.names), provenance, identity, "radiomics", overwrite,
                                   dtype="float64", feature_names=p.names)
        todo.sort(key=lambda rs: -_cost(rs[1]))  # largest first: no big case left alone at the end
        summary = RadiomicsSummary(name, Path(store), p.source, p.mode, jobs, len(p.names), len(manifest),
                                   len(manifest) - len(todo), n_removed=removed)
        if todo:
            journal = w.start_journal(name, identity, len(p.names), dtype="<f8")
            t_loop = time.perf_counter()

            def sink(row, sample, result, why):
                if why is None:
                    journal.append([(row, sample.sample_id, result.image_sha, result.mask_sha, result.note)],
                                   result.values[None, :], [])
                    if result.note:
                        summary.notes.append((sample.sample_id, result.note))
                else:
                    journal.append([], np.zeros((0, len(p.names))), [(row, sample.sample_id, why, "", "")])

            try:
                stats = run_cases(todo, computer, sink, jobs=jobs, limit=limit, label=f"radiomics {name}",
                                  progress=progress, where=str(store), finish=lambda out: to_row(out, p.names),
                                  pool=pool)
                summary.failures = stats.failures
            finally:
                summary.n_computed = journal.rows_ok
                summary.loop_s = time.perf_counter() - t_loop
        # leaving the writer commits the journal (also after an error: nothing computed is lost)
    return summary


def _cost(sample) -> int:
    """Bytes of a sample's image (a folder: its files), a proxy of how long the case takes."""
    try:
        path = Path(sample.path)
        return sum(f.stat().st_size for f in path.iterdir()) if path.is_dir() else path.stat().st_size
    except OSError:
        return 0


def _known_names(store, name: str, identity: str, overwrite: bool) -> list[str]:
    """Feature names of an existing set with these settings (no probe needed to resume)."""
    from featx.store.store import FeatureStore

    if overwrite or not Path(store).is_file():
        return []
    with FeatureStore(store) as st:
        if name not in st.feature_names() or st.identity(name) != identity:
            return []
        return st.column_names(name) or []


# ----------------------------------------------------------------------------------- the worker pool
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
) -> BatchStats:
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
    stats = BatchStats()
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
