"""``RadiomicsConfig``: every setting of ``featx radiomics`` (``featx.toml`` section ``[radiomics]``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from featx.config import Choice, Config, setting
from featx.failures import DEFAULT_MAX_FAILURES, check_max_failures
from featx.radiomics.params import AUTO_MASKS, PRESETS
from featx.store.open import check_shard

MODES = Choice("mode", ("auto", "2d", "3d"))


@dataclass(frozen=True)
class RadiomicsConfig(Config):
    """How ``featx radiomics`` computes a feature set; the pyradiomics settings themselves are ``params``."""

    section = "radiomics"
    manifest: Path | None = setting(None, "Manifest CSV: images or volumes with a 'mask' column (or use --auto-mask).")
    store: Path | None = setting(None, "HDF5 feature store (created if missing; the same one 'featx extract' writes).")
    params: str = setting(
        "default", f"Preset ({', '.join(PRESETS)}) or a pyradiomics parameter file (.yaml/.json).", identity=True
    )
    mode: str = setting(
        "auto",
        "2d: one vector per image or slice; 3d: one per volume; auto: 3d when every row is a volume.",
        choice=MODES,
        identity=True,
    )
    jobs: int | None = setting(None, "Worker processes, one case each (default: every core).", minimum=1)
    auto_mask: str | None = setting(
        None,
        "Mask for rows without one: whole (the whole image) or otsu (Otsu foreground). Recorded.",
        choice=AUTO_MASKS,
        identity=True,
    )
    label: int | None = setting(None, "Mask value of the region (default: the parameters' label, 1).", identity=True)
    name: str | None = setting(None, "Feature-set name (default: radiomics.<preset> or radiomics.<settings hash>).")
    shard: str | None = setting(
        None,
        "Compute block I of N of the manifest (I/N, 0 <= I < N), or 'slurm': this job's block in a SLURM job "
        "array. The jobs write one store at once; a rerun of a killed job resumes its block.",
        check=check_shard,
    )
    overwrite: bool = setting(False, "Recompute all rows (and replace a feature set made with other settings).")
    max_failures: str = setting(
        DEFAULT_MAX_FAILURES,
        "Stop after more than N (or P%) failed cases; computed rows are kept.",
        check=check_max_failures,
    )
