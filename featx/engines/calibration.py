"""The fidelity gate of ``featx extract`` (see :mod:`featx.engines.fidelity`): a calibration batch of the
manifest's own images, an fp32 reference of the same model, and the check before any row is computed."""

from __future__ import annotations

import numpy as np

from featx.dataset.manifest import Manifest
from featx.engines.fidelity import CALIBRATION_IMAGES, Calibration, Fidelity, compare, run_batches
from featx.engines.runtime import OrtRuntime, TorchRuntime, provider_candidates
from featx.errors import FeatxError


def calibration_batch(
    manifest: Manifest, loader, n: int = CALIBRATION_IMAGES, offset: float = 0.0, ids=None
) -> tuple[np.ndarray, list[str], list[str]]:
    """``(batch, sample ids, file sha256s)``: up to ``n`` preprocessed images spread evenly over the manifest
    (``offset`` of a step along, so two samples of one manifest differ), unreadable ones skipped; or the
    rows ``ids`` (those still in the manifest) when given."""
    if ids:
        where = {s.sample_id: i for i, s in enumerate(manifest)}
        rows = np.array([where[i] for i in ids if i in where], dtype=int)
    else:
        k = min(n, len(manifest))
        step = len(manifest) / k
        rows = np.unique(np.minimum(len(manifest) - 1, (np.arange(k) * step + offset * step).astype(int)))
    xs, names, shas = [], [], []
    for i in rows:
        sample = manifest[int(i)]
        try:
            x, sha, *_ = loader(sample)
        except Exception:  # noqa: BLE001 - the extraction names it; calibration needs readable images only
            continue
        xs.append(x), names.append(sample.sample_id), shas.append(sha if isinstance(sha, str) else "|".join(sha))
    if not xs:
        raise FeatxError(
            f"none of the {len(rows)} calibration images of the manifest could be read, so the reduced precision "
            "cannot be calibrated or checked; fix the images (featx extract --precision fp32 names each) first."
        )
    return np.stack(xs), names, shas


def fp32_reference(model, exported, device: str = "cpu") -> tuple:
    """``(run, name)``: fp32 of the same model where the engine runs (torch ``model`` on ``device``, when there is
    no ``exported`` file), or ONNX Runtime fp32 on the export (CUDA when it starts, else CPU: never a TensorRT
    fp32 engine build just for the check)."""
    if exported is None:
        rt = TorchRuntime(model, device=device, precision="fp32")
        return rt.run, f"fp32 ({rt.provider})"
    provider = "cuda" if "cuda" in provider_candidates("auto", "fp32") else "cpu"
    rt = OrtRuntime(exported.onnx_path, provider=provider)
    return rt.run, f"fp32 (ONNX Runtime {rt.provider})"


def fidelity_of(run, engine: str, batch: np.ndarray, want: np.ndarray, ids, reference: str, cfg) -> Fidelity:
    """The engine ``run``'s features of ``batch`` against the fp32 ones ``want``, under ``cfg``'s gate."""
    got = run_batches(run, batch, cfg.batch_size)
    return compare(got, want, ids, engine=engine, reference=reference, min_fidelity=cfg.min_fidelity)


def gate(cfg, manifest: Manifest, loader, backbone, runner) -> dict:
    """Check the reduced-precision engine of ``runner`` against fp32 before it computes any row.

    Returns the figures for the provenance; raises :class:`~featx.engines.fidelity.FidelityError`
    when the gate fails. On Ray the engines are built in the actors: the batch and its fp32 features
    travel with the actor factory, and each actor checks its own engine before its first batch.
    """
    batch, ids, _ = calibration_batch(manifest, loader)
    ref_run, ref_name = fp32_reference(backbone.model, runner.exported, runner.device)
    want = run_batches(ref_run, batch, cfg.batch_size)
    if cfg.ray is not None:
        runner.run.calibration = Calibration(batch, want, tuple(ids), ref_name, cfg.min_fidelity, cfg.batch_size)
        return {
            "engine": f"{cfg.precision} in each Ray actor",
            "reference": ref_name,
            "n": len(ids),
            "min_fidelity": cfg.min_fidelity,
            "checked": "by each actor before its first batch",
        }
    return fidelity_of(runner.run, runner.provider, batch, want, ids, ref_name, cfg).check().to_dict()
