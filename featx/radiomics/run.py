"""``featx radiomics``: pyradiomics -> the same store as the CNN features, case-parallel, resumable, explicit failures.

Cases run in a pool of worker processes (:mod:`featx.radiomics.pool`). Results go through the
store's journal like extraction's, so an interrupted run resumes.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from featx import __version__
from featx.dataset.manifest import Manifest
from featx.errors import ConfigError, FeatxError, short_list
from featx.failures import max_failures
from featx.images.readers import is_volume_path
from featx.progress import spinner
from featx.radiomics.case import CaseComputer, to_row
from featx.radiomics.config import RadiomicsConfig
from featx.radiomics.params import RadiomicsParams, describe, load_params, probe_names
from featx.radiomics.pool import run_cases, start_pool
from featx.store.freshness import Stale
from featx.store.open import RowDone, RowFailed, Shard, open_store, store_writer

log = logging.getLogger(__name__)


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
    stale: list[Stale] = field(default_factory=list)  # computed rows redone: their image or mask changed since
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (sample id, note) of computed rows
    wall_s: float = 0.0
    loop_s: float = 0.0

    @property
    def cases_per_s(self) -> float:
        return self.n_computed / self.loop_s if self.loop_s > 0 else 0.0


def choose_mode(manifest: Manifest, mode: str) -> str:
    """``auto``: 3d when every row is a whole volume (no slice index), else 2d; checks 3d rows are volumes."""
    flat = [s.sample_id for s in manifest if s.slice is not None or not is_volume_path(Path(s.path))]
    if mode == "auto":
        return "2d" if flat else "3d"
    if mode == "3d" and flat:
        raise ConfigError(
            f"3d computes one vector per volume, but {len(flat)} row(s) are 2D images or slices "
            f"({short_list(flat)}); give a manifest of volumes (one row each) or use mode 2d.",
            "mode",
        )
    return mode


def run_radiomics(
    cfg: RadiomicsConfig,
    manifest: Manifest | None = None,
    *,
    params: RadiomicsParams | None = None,
    progress: bool = True,
) -> RadiomicsSummary:
    """Compute pyradiomics features for every sample of ``manifest`` (default: ``cfg.manifest``) into ``cfg.store``.

    Parameters
    ----------
    cfg : RadiomicsConfig
    manifest : Manifest, optional
        Samples (images or volumes, with a ``mask`` column unless ``cfg.auto_mask``).
    params : RadiomicsParams, optional
        Resolved parameters instead of ``cfg.params`` (``featx predict`` rebuilds them from a model's
        provenance; ``cfg.mode``, ``auto_mask`` and ``label`` are then theirs).
    progress : bool
        Show progress bars.
    """
    t0 = time.perf_counter()
    cfg.require("store", *(() if manifest is not None else ("manifest",)))
    manifest = manifest if manifest is not None else Manifest.load(cfg.manifest)
    jobs = cfg.jobs or os.cpu_count() or 1
    limit = max_failures(cfg.max_failures, len(manifest))
    mode, auto_mask = (params.mode, params.auto_mask) if params is not None else (cfg.mode, cfg.auto_mask)
    mode = choose_mode(manifest, mode)
    if auto_mask is None:
        no_mask = [s.sample_id for s in manifest if not s.mask]
        if no_mask:
            raise FeatxError(
                f"{len(no_mask)} sample(s) have no mask ({short_list(no_mask)}): add a 'mask' column to "
                "the manifest, or choose --auto-mask whole (the whole image) or otsu (Otsu foreground)."
            )
    p = params if params is not None else load_params(cfg.params, mode, auto_mask, cfg.label)
    computer = CaseComputer(p)
    pool = start_pool(computer, jobs)  # workers import pyradiomics while this process prepares the store
    try:
        summary = _run(manifest, cfg, p, cfg.name or p.default_name(), pool, computer, jobs, limit, progress)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    summary.wall_s = time.perf_counter() - t0
    return summary


def _run(
    manifest, cfg: RadiomicsConfig, p: RadiomicsParams, name: str, pool, computer, jobs: int, limit: int, progress: bool
) -> RadiomicsSummary:
    """Probe (unless the store knows the names), register the samples, run the cases through the journal."""
    identity = p.identity()
    p.names = _known_names(cfg.store, name, identity, cfg.overwrite)
    if not p.names:
        with spinner(f"checking the radiomics settings ({p.source}, {p.mode})", enabled=progress):
            p.names = probe_names(p)
    provenance = describe(p) | {
        "config": cfg.record(),
        "featx_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with store_writer(cfg.store, Shard.parse(cfg.shard)) as w:
        todo, removed, stale = w.register(
            manifest,
            name,
            len(p.names),
            provenance,
            identity,
            "radiomics",
            cfg.overwrite,
            with_mask=p.auto_mask is None,
            dtype="float64",
            feature_names=p.names,
        )
        todo.sort(key=lambda rs: -_cost(rs[1]))  # largest first: no big case left alone at the end
        summary = RadiomicsSummary(
            name,
            Path(cfg.store),
            p.source,
            p.mode,
            jobs,
            len(p.names),
            len(w.block(len(manifest))),
            len(w.block(len(manifest))) - len(todo),
            n_removed=removed,
            stale=stale,
        )
        if not todo:
            return summary
        journal = w.start_journal(name, identity, len(p.names), dtype="<f8")
        t_loop = time.perf_counter()

        def sink(row, sample, result, why):
            if why is None:
                journal.append(
                    [RowDone(row, sample.sample_id, result.image_sha, result.mask_sha, result.note)],
                    result.values[None, :],
                    [],
                )
                if result.note:
                    summary.notes.append((sample.sample_id, result.note))
            else:
                journal.append([], np.zeros((0, len(p.names))), [RowFailed(row, sample.sample_id, why)])

        try:
            stats = run_cases(
                todo,
                computer,
                sink,
                jobs=jobs,
                limit=limit,
                label=f"radiomics {name}",
                progress=progress,
                where=str(cfg.store),
                finish=lambda out: to_row(out, p.names),
                pool=pool,
            )
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
    if overwrite or not Path(store).is_file():
        return []
    with open_store(store) as st:
        if name not in st.feature_names() or st.identity(name) != identity:
            return []
        return st.column_names(name) or []
