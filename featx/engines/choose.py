"""The engine that computes a feature set: a runtime at a precision, ready to ``run(batch)``.

* ``torch``: eager (or compiled) PyTorch, fp32/fp16/bf16;
* ``onnx``: ONNX Runtime on featx's export (fp32, TensorRT fp16), or on its int8 QDQ model;
* ``openvino``: OpenVINO on the export (f32, bf16) or on the int8 model;
* ``auto`` (``--precision auto``): each (runtime, precision) this CPU offers is timed on a batch of the
  manifest's own images and checked by the fidelity gate; the fastest that passes wins (fp32 ONNX
  Runtime when nothing faster does). The choice is cached per model, CPU (model and speed flags),
  thread count and batch size in ``models_dir/auto/``, and a feature set keeps the engine it was
  made with on every rerun.

int8 models are calibrated on ``calibration`` images spread over the manifest; a rerun of the same
feature set calibrates on the images recorded in its provenance, so the same model comes back.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from featx.backbones.export import ExportedModel, export_onnx
from featx.backbones.weights import sha256_file
from featx.engines.calibration import fidelity_of, fp32_reference
from featx.engines.cpu import cpu_signature, omp_threads
from featx.engines.fidelity import CALIBRATION_IMAGES, run_batches
from featx.engines.openvino_runtime import OpenVinoRuntime, cpu_capabilities, openvino_available, to_pixels
from featx.engines.quantize import METHOD, int8_path, quantize_int8
from featx.engines.runtime import OrtFactory, OrtRuntime, TorchRuntime
from featx.errors import ConfigError, FeatxError
from featx.progress import spinner

log = logging.getLogger(__name__)

#: images -> (preprocessed batch, sample ids, file sha256s): ``images(n, offset, ids)``
Images = Callable[..., tuple]


@dataclass
class Engine:
    """The model, ready to run: ``run(batch) -> features``, where and at what precision it runs, and what it is."""

    run: object
    provider: str
    runtime_version: str
    exported: ExportedModel | None
    device: str = "cpu"  # where the torch runtime runs
    precision: str = "fp32"
    kind: str = "onnx"
    details: dict = field(default_factory=dict)  # int8 calibration, auto's measurements: into the provenance
    fidelity: dict | None = None  # the gate's figures when auto measured them already
    identity_extra: str = ""  # what else makes its numbers (the int8 calibration)
    run_pixels: object = None  # features of uint8 (N, H, W, 3) pixels, normalised in the compiled graph (OpenVINO)


def build_engine(
    backbone, kind: str, cfg, progress: bool, images: Images, previous: dict | None, rows_left: int | None = None
) -> Engine:
    """The engine of ``kind`` at ``cfg.precision`` (see the module docstring). ``previous``: the provenance of
    the feature set this run continues, if any; ``rows_left``: the rows this run will compute (None: unknown), which
    bounds what ``auto`` spends on timing (:func:`auto_plan`)."""
    if kind == "torch":
        return _torch_engine(backbone, cfg, progress)
    exported = _exported(backbone, cfg, progress)
    if kind == "auto":
        return _auto(exported, cfg, progress, images, previous, rows_left)
    return _engine(exported, kind, cfg.precision, cfg, progress, images, previous)


def _torch_engine(backbone, cfg, progress: bool) -> Engine:
    import torch

    if not backbone.trainable:
        raise ConfigError(f"{cfg.backbone}: a user ONNX model runs on runtime onnx only.", "runtime")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rt = TorchRuntime(backbone.model, device=device, precision=cfg.precision, compile=cfg.compile)
    if device == "cuda":
        with spinner(f"warming up {rt.provider}", enabled=progress):
            rt.warm_up(cfg.batch_size, backbone.spec.input_shape)
    return Engine(rt.run, rt.provider, f"torch {torch.__version__}", None, device, cfg.precision, "torch")


def _exported(backbone, cfg, progress: bool) -> ExportedModel:
    exported = backbone.exported
    if exported is None:
        with spinner(f"ONNX export of {backbone.spec.name} (reused when cached)", enabled=progress):
            exported = export_onnx(backbone.spec, backbone.model, cfg.models_dir)
        backbone.model = None  # the runtime holds the model from here on
    return exported


def _engine(exported, kind: str, precision: str, cfg, progress: bool, images: Images, previous) -> Engine:
    """ONNX Runtime or OpenVINO at ``precision`` on the export (or its int8 model)."""
    import onnxruntime

    details, extra, path = {}, "", exported.onnx_path
    if precision == "int8":
        path, details, extra = _int8(exported, cfg, progress, images, previous)
    if kind == "openvino":
        spec = exported.spec
        pixels = (spec.mean, spec.std) if spec.volume is None else None  # 8-bit pixels in: 2D images only
        rt = OpenVinoRuntime(path, precision, cache_dir=Path(cfg.models_dir) / "openvino_cache", pixels=pixels)
        return Engine(
            rt.run,
            rt.provider,
            rt.version,
            exported,
            "cpu",
            precision,
            kind,
            details,
            None,
            extra,
            rt.run_pixels if pixels else None,
        )
    version = f"onnxruntime {onnxruntime.__version__}"
    cache_dir = Path(cfg.models_dir) / "tensorrt_cache"
    if cfg.ray is not None:  # the actors build their own sessions; nothing runs here
        factory = OrtFactory(exported.onnx_path.read_bytes(), cfg.provider, precision, str(cache_dir))
        return Engine(factory, factory.provider, version, exported, "cpu", precision, kind)
    rt = OrtRuntime(
        path, provider="cpu" if precision == "int8" else cfg.provider, precision=precision, cache_dir=cache_dir
    )
    provider = f"{rt.provider} int8" if precision == "int8" else rt.provider
    return Engine(rt.run, provider, version, exported, "cpu", precision, kind, details, None, extra)


def _int8(exported, cfg, progress: bool, images: Images, previous) -> tuple[Path, dict, str]:
    """The int8 model (cached by content), its provenance and identity part."""
    made = (previous or {}).get("int8") or {}
    kept = Path(cfg.models_dir) / "int8" / made.get("model", "-")
    if kept.is_file() and sha256_file(kept) == made.get("sha256"):  # the very model the feature set was made with
        return kept, {"int8": made}, f"|int8={kept.stem.rsplit('-', 1)[-1]}"
    recorded = made.get("calibration_ids")
    batch, ids, shas = images(cfg.calibration, 0.5, tuple(recorded) if recorded else None)
    if made and ids != list(recorded or []):
        raise FeatxError(
            f"this feature set's int8 model ({made.get('model')}) is not in {kept.parent}, and its calibration "
            f"images are not all in this manifest: copy that file from where the feature set was made into "
            f"{kept.parent}, or extract a new feature set."
        )
    path = int8_path(exported.onnx_path, exported.onnx_sha256, shas, cfg.models_dir)
    with spinner(f"int8: calibrating on {len(ids)} images (reused when cached)", enabled=progress):
        path, _ = quantize_int8(exported.onnx_path, exported.onnx_sha256, batch, shas, cfg.models_dir)
    details = {
        "int8": {
            "method": METHOD,
            "model": path.name,
            "sha256": sha256_file(path),
            "calibration_images": len(ids),
            "calibration_ids": list(ids),
        }
    }
    return path, details, f"|int8={path.stem.rsplit('-', 1)[-1]}"


def _candidates() -> list[tuple[str, str]]:
    """(runtime, precision) pairs worth timing on this machine, fp32 ONNX Runtime (the reference) first."""
    out = [("onnx", "fp32"), ("onnx", "int8")]
    if openvino_available():
        caps = cpu_capabilities()
        out += [("openvino", "fp32")] + ([("openvino", "bf16")] if "BF16" in caps else []) + [("openvino", "int8")]
    return out


def _rate(engine: Engine, batch, batch_size: int, passes: int = 3) -> float:
    """img/s of ``engine`` on ``batch`` fed as the pipeline feeds it (8-bit pixels where it takes them): the
    median of ``passes`` timed passes after a warm one."""
    run, x = engine.run, batch
    if engine.run_pixels is not None:
        spec = engine.exported.spec
        run, x = engine.run_pixels, to_pixels(batch, spec.mean, spec.std)
    rates = []
    for i in range(passes + 1):
        t0 = time.perf_counter()
        run_batches(run, x, batch_size)
        if i:
            rates.append(len(x) / (time.perf_counter() - t0))
    return statistics.median(rates)


def _auto_key(exported, cfg) -> str:
    text = (
        f"{exported.onnx_sha256}|{cpu_signature()}|threads={omp_threads()}|batch={cfg.batch_size}|{METHOD}"
        f"|min_fidelity={cfg.min_fidelity}|calibration={cfg.calibration}|timing=as-fed"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: timing every candidate costs about this many images' worth of fp32 work (32 images, 4 passes, 5 candidates,
#: two int8 calibrations); a job smaller than a few times that is not worth timing
AUTO_COST_IMAGES = 1_000
#: below this many rows to compute, the int8 candidates (their calibration is the dearest part) are not timed
AUTO_INT8_MIN_ROWS = 5 * AUTO_COST_IMAGES


def auto_plan(rows_left: int | None, candidates: list) -> tuple[list, str]:
    """The candidates worth timing for a job of ``rows_left`` rows, and why any were left out: the timing stays in
    proportion to the job (a 64-image job is not worth a minute of measurements)."""
    if rows_left is None or rows_left >= AUTO_INT8_MIN_ROWS:
        return candidates, ""
    if rows_left < AUTO_COST_IMAGES // 4:
        return candidates[:1], f"{rows_left} rows to compute: fewer than timing the engines would cost"
    kept = [c for c in candidates if c[1] != "int8"]
    return kept, f"{rows_left} rows to compute: int8 (its calibration) not timed below {AUTO_INT8_MIN_ROWS}"


def describe_auto(auto: dict) -> list[str]:
    """A few lines on what ``--precision auto`` chose and why: each candidate's rate and fidelity."""
    if not auto:
        return []
    lines = [f"--precision auto chose {' '.join(auto['chosen'])} ({auto.get('source', '')})"]
    if auto.get("skipped"):
        lines[0] += f"; {auto['skipped']}"
    for row in auto.get("candidates", []):
        what = f"  {row['runtime']} {row['precision']}: "
        if "refused" in row:
            lines.append(what + f"refused ({row['refused']})")
            continue
        fid = row.get("fidelity") or {}
        cos = f", mean cosine to fp32 {fid['mean_cosine']:.4f}" if "mean_cosine" in fid else ""
        gate = "" if row["precision"] == "fp32" or fid.get("passed", True) else " (fails the fidelity gate)"
        lines.append(what + (f"{row['img_per_s']:.0f} img/s" if "img_per_s" in row else "not timed") + cos + gate)
    return lines


def _auto(exported, cfg, progress: bool, images: Images, previous, rows_left: int | None = None) -> Engine:
    """The fastest (runtime, precision) that passes the fidelity gate on the manifest's images."""
    prev = (previous or {}).get("auto") or {}
    cache = Path(cfg.models_dir) / "auto" / f"{exported.onnx_path.stem}-{_auto_key(exported, cfg)}.json"
    skipped = ""
    if prev.get("chosen"):  # a feature set keeps the engine it was made with
        candidates, source = [tuple(prev["chosen"])], "as the feature set was made"
    elif cache.is_file():
        candidates, source = [tuple(json.loads(cache.read_text())["chosen"])], f"measured before ({cache.name})"
    else:
        candidates, skipped = auto_plan(rows_left, _candidates())
        source = "measured now" if len(candidates) > 1 else "nothing timed"
    if prev.get("chosen") and rows_left == 0:  # nothing left to compute: the recorded engine, nothing measured
        engine = _engine(exported, *prev["chosen"], cfg, progress, images, previous)
        engine.details["auto"] = {k: v for k, v in prev.items() if k != "skipped"}
        engine.details["auto"]["source"] = "as the feature set was made; nothing left to compute, nothing measured"
        engine.fidelity = (previous or {}).get("fidelity")
        return engine
    if candidates == [("onnx", "fp32")]:  # the reference itself: nothing to time, nothing to check
        engine = _engine(exported, "onnx", "fp32", cfg, progress, images, previous)
        rows = [{"runtime": "onnx", "precision": "fp32"}]
        engine.details["auto"] = {
            "chosen": ["onnx", "fp32"],
            "source": source,
            "cpu": cpu_signature(),
            "candidates": rows,
        }
        if skipped:
            engine.details["auto"]["skipped"] = skipped
        return engine
    images = functools.lru_cache(maxsize=None)(images)  # the int8 candidates share one calibration decode
    batch, ids, _ = images(CALIBRATION_IMAGES, 0.0, None)
    reference, ref_name = fp32_reference(None, exported)
    want = run_batches(reference, batch, cfg.batch_size)
    rows, best = [], None
    for kind, precision in candidates:
        row = {"runtime": kind, "precision": precision}
        with spinner(f"--precision auto: timing {kind} {precision} on {len(ids)} images", enabled=progress):
            try:
                engine = _engine(exported, kind, precision, cfg, False, images, previous)
                fid = fidelity_of(engine.run, engine.provider, batch, want, ids, ref_name, cfg)
                if len(candidates) > 1:  # one candidate (kept, remembered, or a small job): no choice to time
                    row["img_per_s"] = _rate(engine, batch, cfg.batch_size)
                row["fidelity"] = fid.to_dict()
            except FeatxError as exc:
                row["refused"] = str(exc)
                rows.append(row)
                continue
        rows.append(row)
        passed = precision == "fp32" or fid.passed
        if passed and (best is None or row.get("img_per_s", 0) > best[1].get("img_per_s", 0)):
            best = (engine, row)
    if best is None:  # the one remembered engine no longer passes here: measure every candidate again
        if source != "measured now":
            log.warning("the remembered engine (%s) fails here; measuring every candidate", candidates[0])
            cache.unlink(missing_ok=True)
            return _auto(exported, cfg, progress, images, None, rows_left)
        raise FeatxError("--precision auto: no engine could run this model; use --precision fp32.")
    engine, row = best
    chosen = [row["runtime"], row["precision"]]
    if source == "measured now":
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"chosen": chosen, "cpu": cpu_signature(), "candidates": rows}, indent=2))
    engine.details["auto"] = {"chosen": chosen, "source": source, "cpu": cpu_signature(), "candidates": rows}
    if skipped:
        engine.details["auto"]["skipped"] = skipped
    engine.fidelity = row.get("fidelity") if row["precision"] != "fp32" else None
    return engine
