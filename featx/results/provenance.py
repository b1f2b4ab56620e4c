"""A typed view of a feature set's provenance (the store's record of what made its numbers), for the reports.

The provenance itself stays the plain mapping extract and radiomics write into the store; this
reads the entries a report shows, from any featx version (absent entries are None).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FeatureProvenance:
    """What computed a feature set: a backbone (kind ``cnn``), pyradiomics (``radiomics``) or fine-tuning."""

    kind: str
    backbone: str | None = None
    weights_id: str | None = None
    weights_sha256: str | None = None
    onnx_sha256: str | None = None
    runtime: str | None = None
    provider: str | None = None
    preprocessing: str | None = None
    intensity: str | None = None
    mask: str | None = None
    params_source: str | None = None
    radiomics_mode: str | None = None
    radiomics_settings: Mapping[str, Any] | None = None
    versions: Mapping[str, str] | None = None
    n_features: int | None = None
    parts: Mapping[str, Any] | None = None  # kind ``combined`` (early fusion): each part's own provenance

    @classmethod
    def of(cls, prov: Mapping[str, Any]) -> FeatureProvenance:
        spec = prov.get("spec") or {}
        params = prov.get("params") or {}
        return cls(
            kind=str(prov.get("kind", "?")),
            backbone=spec.get("name"),
            weights_id=spec.get("weights_id"),
            weights_sha256=spec.get("weights_sha256"),
            onnx_sha256=prov.get("onnx_sha256"),
            runtime=prov.get("runtime"),
            provider=prov.get("provider"),
            preprocessing=prov.get("preprocessing"),
            intensity=prov.get("intensity"),
            mask=prov.get("mask"),
            params_source=prov.get("params_source"),
            radiomics_mode=params.get("mode"),
            radiomics_settings=params or None,
            versions=prov.get("versions"),
            n_features=prov.get("n_features"),
            parts=prov.get("parts"),
        )

    def rows(self, dropped: tuple | list = ()) -> dict[str, str]:
        """The provenance table of a report: what made the features, one line per entry."""
        if self.kind == "combined":
            out = {"early fusion": " + ".join(self.parts or {}) + ", each block standardised on its own"}
            for part, prov in (self.parts or {}).items():
                own = [d.split(":", 1)[1] for d in dropped if d.startswith(part + ":")]
                out.update({f"{part}: {k}": v for k, v in FeatureProvenance.of(prov).rows(own).items()})
            return out
        if self.kind == "radiomics":
            s = self.radiomics_settings or {}
            versions = ", ".join(f"{k} {v}" for k, v in (self.versions or {}).items())
            return {
                "features": f"pyradiomics ({versions}), {self.radiomics_mode or '?'}, {self.n_features or '?'} features"
                + (f"; left out as NaN in some rows: {', '.join(dropped)}" if dropped else ""),
                "settings": f"{self.params_source or '?'}: image types {s.get('imageType')}, feature classes "
                f"{sorted(s.get('featureClass') or {})}, settings {s.get('setting')}",
                "mask": self.mask or "-",
                "intensity": self.intensity or "-",
            }
        return {
            "backbone": self.backbone or self.kind,
            "weights": f"{self.weights_id or '?'} (sha256 {self.weights_sha256 or 'none: random init'})",
            "ONNX sha256": self.onnx_sha256 or "-",
            "runtime": f"{self.runtime or '-'} on {self.provider or '-'}",
            "preprocessing": self.preprocessing or "-",
        }
