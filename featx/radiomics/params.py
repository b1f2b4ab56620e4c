"""Radiomics parameters: presets or a pyradiomics parameter file -> validated, effective settings.

A parameter set is pyradiomics' own format (``imageType``, ``featureClass``,
``setting``), validated by pyradiomics' schema before any case runs. featx then
fixes what depends on the mode (``shape`` in 3d, ``shape2D`` in 2d), turns off
pyradiomics' per-case diagnostics (featx records versions, settings and file
hashes itself), and runs the settings once on a synthetic image: that checks they
run at all and gives the feature names, which every case must then match.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from featx.config import Choice
from featx.errors import FeatxError
from featx.radiomics.case import compute_features

log = logging.getLogger(__name__)

PRESETS = ("default", "mr-2d", "ct-3d")
AUTO_MASKS = Choice("auto mask", ("whole", "otsu"))


def preset_path(name: str) -> Path:
    """The YAML file of a shipped preset."""
    return Path(str(resources.files("featx.radiomics").joinpath("presets", f"{name}.yaml")))


@dataclass
class RadiomicsParams:
    """Effective pyradiomics configuration for one run (picklable; workers rebuild the extractor from it)."""

    source: str  # preset name or params file path
    image_types: dict
    features: dict
    settings: dict
    mode: str
    auto_mask: str | None = None
    names: list[str] = field(default_factory=list)  # feature names, in column order

    @property
    def preset(self) -> str | None:
        return self.source if self.source in PRESETS else None

    def config(self) -> dict:
        """What defines the numbers (identity and provenance)."""
        import radiomics

        return {
            "imageType": self.image_types,
            "featureClass": self.features,
            "setting": self.settings,
            "mode": self.mode,
            "auto_mask": self.auto_mask,
            "pyradiomics": radiomics.__version__,
        }

    @classmethod
    def from_provenance(cls, prov: dict) -> RadiomicsParams:
        """The parameters a radiomics feature set was computed with (its :func:`describe` provenance)."""
        cfg = prov["params"]
        return cls(
            prov.get("params_source", "model"),
            cfg["imageType"],
            cfg["featureClass"],
            cfg["setting"],
            cfg["mode"],
            cfg.get("auto_mask"),
        )

    def identity(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True, default=str).encode()).hexdigest()

    def default_name(self) -> str:
        """``radiomics.<preset>``, or ``radiomics.<hash>`` of a params file's effective settings."""
        if self.preset:
            return f"radiomics.{self.preset}"
        cfg = {"imageType": self.image_types, "featureClass": self.features, "setting": self.settings}
        return "radiomics." + hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:8]

    def extractor(self):
        """A pyradiomics ``RadiomicsFeatureExtractor`` with exactly these settings."""
        from radiomics.featureextractor import RadiomicsFeatureExtractor

        quiet_radiomics()
        ex = RadiomicsFeatureExtractor()
        ex.settings = dict(self.settings)
        ex.enabledImagetypes = {k: dict(v or {}) for k, v in self.image_types.items()}
        ex.enabledFeatures = dict(self.features)
        ex._setTolerance()  # what pyradiomics' constructor does with geometryTolerance
        return ex


def quiet_radiomics() -> None:
    """pyradiomics installs a stderr handler at import; featx captures its messages per case instead."""
    import radiomics

    radiomics.setVerbosity(logging.CRITICAL + 10)
    logging.getLogger("radiomics").setLevel(logging.WARNING)  # INFO records cost time in every feature class
    pyk = logging.getLogger("pykwalify")
    pyk.addHandler(logging.NullHandler())
    pyk.setLevel(logging.CRITICAL + 10)
    pyk.propagate = False


def load_params(params: str, mode: str, auto_mask: str | None = None, label: int | None = None) -> RadiomicsParams:
    """Resolve ``params`` (a preset name or a pyradiomics YAML/JSON file) for ``mode``.

    Raises
    ------
    FeatxError
        Unknown preset, missing file, or settings pyradiomics' schema refuses (every
        problem it finds, with its path in the file).
    """
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    if mode not in ("2d", "3d"):
        raise ValueError(f"mode must be 2d or 3d (resolved), got {mode!r}")
    if auto_mask is not None:
        AUTO_MASKS.check(auto_mask)
    if params in PRESETS:
        path = preset_path(params)
    else:
        path = Path(params)
        if not path.is_file():
            raise FeatxError(
                f"--params {params!r} is neither a preset ({', '.join(PRESETS)}) nor an existing "
                "pyradiomics parameter file (.yaml or .json)."
            )
    quiet_radiomics()
    try:
        ex = RadiomicsFeatureExtractor(str(path))
    except Exception as exc:  # pykwalify's SchemaError, ruamel's parser errors, pyradiomics' ValueError
        raise FeatxError(f"{path}: not a valid pyradiomics parameter file: {_schema_message(exc)}") from None
    settings = dict(ex.settings)
    settings["additionalInfo"] = False  # per-case diagnostics: featx records versions, settings and hashes
    if label is not None:
        settings["label"] = int(label)
    features = dict(ex.enabledFeatures)
    if mode == "2d":
        features.pop("shape", None)  # 3D shape is undefined on one slice
    elif not settings.get("force2D"):
        features.pop("shape2D", None)  # pyradiomics computes it in 3d only with force2D
    if not features:
        raise FeatxError(f"{path}: no feature class is enabled for --mode {mode}.")
    return RadiomicsParams(str(params), dict(ex.enabledImagetypes), features, settings, mode, auto_mask)


def _schema_message(exc: Exception) -> str:
    text = str(exc)
    problems = [ln.strip()[2:].rstrip(".:") for ln in text.splitlines() if ln.strip().startswith("- ")]
    if problems:
        return "; ".join(dict.fromkeys(problems))
    return " ".join(text.split())[:400] or type(exc).__name__


def probe_names(p: RadiomicsParams) -> list[str]:
    """Feature names these settings produce, from one run on a synthetic image (also checks they run).

    Raises
    ------
    FeatxError
        When pyradiomics fails on the synthetic image: the settings cannot run.
    """
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    bounds = list(p.settings.get("resegmentRange") or [])  # keep the probe inside a resegmentation range
    lo = bounds[0] if bounds else 0
    hi = bounds[1] if len(bounds) > 1 else lo + 200
    size = (32, 32) if p.mode == "2d" else (24, 24, 24)  # small and fast, big enough for LoG sigma 10 mm
    grid = np.indices(size, dtype=float)
    texture = sum(np.sin(g / (3 + i)) for i, g in enumerate(grid)) + rng.normal(0, 0.5, size)
    texture = (texture - texture.min()) / np.ptp(texture)
    image = sitk.GetImageFromArray(lo + texture * (hi - lo))
    radius = np.sqrt(sum((g - n / 2) ** 2 for g, n in zip(grid, size)))
    mask = sitk.GetImageFromArray((radius < size[0] / 3).astype(np.int32) * int(p.settings.get("label", 1)))
    try:
        result, _ = compute_features(p.extractor(), image, mask)
    except Exception as exc:
        raise FeatxError(
            f"the radiomics settings {p.source!r} fail on a synthetic {p.mode} test image: "
            f"{type(exc).__name__}: {exc}. Check the parameter file."
        ) from None
    return list(result)


def describe(p: RadiomicsParams) -> dict:
    """Provenance entries for a radiomics feature set."""
    import pywt
    import radiomics
    import SimpleITK as sitk

    return {
        "kind": "radiomics",
        "params": p.config(),
        "params_source": p.source if p.preset else str(Path(p.source).resolve()),
        "versions": {
            "pyradiomics": radiomics.__version__,
            "SimpleITK": sitk.Version.VersionString(),
            "numpy": np.__version__,
            "PyWavelets": pywt.__version__,
        },
        "intensity": (
            "raw values as stored (volumes, DICOM with rescale slope/intercept; 2D files: grey levels, "
            "colour converted to luma); integer types below 32 bits widened to int32, which pyradiomics "
            "needs to discretise without overflow"
        ),
        "mask": {
            None: "the manifest's mask column",
            "whole": "the whole image where the manifest has no mask",
            "otsu": "Otsu foreground (voxels above Otsu's threshold) where the manifest has no mask",
        }[p.auto_mask],
        "n_features": len(p.names),
    }
