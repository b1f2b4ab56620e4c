"""Manifest + backbone -> batches -> runtime -> store. Resumable: only unfilled rows are computed.

Decoding and preprocessing run in a thread pool (PIL and numpy release the GIL)
with a bounded look-ahead of batches, so memory stays flat; every batch carries
its row indices and the store writes by index.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from featx import __version__
from featx.errors import FeatxError
from featx.images import Preprocessor
from featx.images.loader import SampleReader
from featx.images.loader import describe as describe_window
from featx.dataset.manifest import Manifest
from featx.extract.pipeline import DEFAULT_LOOKAHEAD, SampleLoader, parse_max_failures, run_pipeline
from featx.progress import spinner
from featx.store.writer import store_writer

log = logging.getLogger(__name__)

TTA_CHOICES = ("none", "hflip")


@dataclass
class ExtractSummary:
    """What an extraction did."""

    feature_set: str
    store: Path
    spec_name: str
    provider: str
    onnx_path: Path | None  # None for the torch runtime
    n_samples: int
    n_already: int
    n_extracted: int
    n_removed: int = 0  # rows of the feature set no longer in the manifest (kept, flagged)
    failures: list[tuple[str, str]] = field(default_factory=list)
    wall_s: float = 0.0  # whole call: model load, export check, extraction
    loop_s: float = 0.0  # decoding + inference + writing + commit
    compute_s: float = 0.0  # time in the model
    wait_s: float = 0.0  # time the model waited for decoded images

    @property
    def images_per_s(self) -> float:
        """Extraction throughput (excludes model loading and export)."""
        return self.n_extracted / self.loop_s if self.loop_s > 0 else 0.0


def extract(
    manifest: Manifest,
    backbone: str,
    store: str | Path,
    *,
    weights: str = "imagenet",
    name: str | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    provider: str = "auto",
    models_dir: str | Path = "models_onnx",
    overwrite: bool = False,
    max_failures: str | int | None = None,
    window: str = "auto",
    layer: str | None = None,
    runtime: str = "auto",
    precision: str = "fp32",
    compile: bool = False,
    tta: str = "none",
    decode: str = "thread",
    lookahead: int = DEFAULT_LOOKAHEAD,
    ray: str | None = None,
    progress: bool = True,
    interpolation: str | None = None,
    resize_to_input: bool = False,
) -> ExtractSummary:
    """Compute backbone features for every sample of ``manifest`` into ``store``.

    Parameters
    ----------
    manifest : Manifest
        Samples to extract; their ids key the store rows.
    backbone : str
        Registered backbone (``featx backbones``).
    store : path
        HDF5 store, created when missing.
    weights : str
        ``imagenet``, ``random`` or a weights file (see :func:`featx.backbones.weights.load_backbone`).
    name : str, optional
        Feature-set name; default the arch (``resnet18``) for ImageNet weights, else the spec name.
    batch_size, workers : int
        Inference batch size; decoding threads (default: CPU count, at most 8).
    provider : {'auto', 'cpu', 'cuda'}
        ONNX Runtime execution provider.
    models_dir : path
        Where ONNX exports are cached.
    overwrite : bool
        Recompute every row (and replace a feature set made with other settings).
    max_failures : int or str
        Abort once more samples than this failed (``N`` or ``P%``); written rows stay.
    window : str
        Intensity window for volume and DICOM samples (:mod:`featx.images.intensity`).
    layer : str, optional
        Where to cut the backbone (``featx backbones`` lists the layers); default the pooled penultimate layer.
    runtime : {'auto', 'onnx', 'torch'}
        ``auto``: ONNX Runtime, except on a GPU machine whose ONNX Runtime has no GPU provider,
        where torch runs on the GPU instead.
    precision : {'fp32', 'fp16', 'bf16'}
        fp16 on ONNX Runtime needs TensorRT; torch runs fp16/bf16 under autocast on the GPU.
    compile : bool
        ``torch.compile`` the model (torch runtime; worth it for large GPU jobs).
    tta : {'none', 'hflip'}
        ``hflip``: each row is the mean of the features of the image and of its mirror.
    decode : {'thread', 'process'}
        Decoding workers (threads measured faster, see ``benchmarks/extract.py``).
    lookahead : int
        Batches decoded ahead of the model (bounds memory).
    ray : str, optional
        Run on a Ray cluster: ``auto`` (the running one, or ``$RAY_ADDRESS``), ``local`` (start one
        here) or an address such as ``ray://head:10001``; see
        :mod:`featx.extract.ray`. The store is the same as a local run's.
    progress : bool
        Show a progress bar.
    interpolation : {'bilinear', 'bicubic'}, optional
        Resize filter instead of the weights' own (e.g. bicubic for Inception-v3 as a study used it).
    resize_to_input : bool
        Resize the short side straight to the input size (299 for Inception-v3) instead of the weights'
        larger resize + centre crop, so a lesion crop keeps its margins.

    Returns
    -------
    ExtractSummary
    """
    from featx.backbones.export import export_onnx
    from featx.backbones.external import is_onnx_ref, load_onnx_backbone
    from featx.backbones.runtime import OrtRuntime, TorchRuntime
    from featx.backbones.weights import load_backbone
    from featx.backbones.finetuned import is_finetuned_ref, load_finetuned

    t0 = time.perf_counter()
    if interpolation not in (None, "bilinear", "bicubic"):
        raise FeatxError(f"Unknown --interpolation {interpolation!r}; choose bilinear or bicubic (default: the weights' own).")
    kind = choose_runtime(runtime, provider, precision)  # refuse bad options before any model work
    parse_max_failures(max_failures, len(manifest))
    if tta not in TTA_CHOICES:
        raise FeatxError(f"Unknown --tta {tta!r}; choose one of {', '.join(TTA_CHOICES)}.")
    if decode not in ("thread", "process"):
        raise FeatxError(f"Unknown --decode {decode!r}; choose thread or process.")
    if ray is not None and kind != "onnx":
        raise FeatxError("--ray runs the backbone on ONNX Runtime in Ray actors; use --runtime onnx with it.")
    reader = SampleReader(window, keep_grey=True)
    exported = finetuned = None
    if is_onnx_ref(backbone):
        if kind != "onnx":
            raise FeatxError(f"{backbone}: a user ONNX model runs on --runtime onnx only.")
        exported = load_onnx_backbone(backbone)
        spec = exported.spec
    elif is_finetuned_ref(backbone):
        if weights != "imagenet" or layer is not None:
            raise FeatxError(f"{backbone} is a fine-tuned backbone with its own weights and layer; drop --weights/--layer.")
        spec, model, finetuned = load_finetuned(backbone, models_dir)
    else:
        spec, model = load_backbone(backbone, weights, layer=layer)
    if kind == "onnx":
        if exported is None:
            with spinner(f"ONNX export of {spec.name} (reused when cached)", enabled=progress):
                exported = export_onnx(spec, model, models_dir)
            del model
        cache_dir = Path(models_dir) / "tensorrt_cache"
        if ray is None:
            runner = OrtRuntime(exported.onnx_path, provider=provider, precision=precision, cache_dir=cache_dir)
        else:  # the actors build their own sessions; nothing runs here
            from featx.extract.ray import OrtFactory

            runner = OrtFactory(exported.onnx_path.read_bytes(), provider, precision, str(cache_dir))
        import onnxruntime

        runtime_version = f"onnxruntime {onnxruntime.__version__}"
    else:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        runner = TorchRuntime(model, device=device, precision=precision, compile=compile)
        if device == "cuda":
            with spinner(f"warming up {runner.provider}", enabled=progress):
                runner.warm_up(batch_size, spec.input_shape)
        runtime_version = f"torch {torch.__version__}"
    if interpolation is not None or resize_to_input:  # preprocessing only: the network (and its export) is unchanged
        from dataclasses import replace

        spec = replace(spec, interpolation=interpolation or spec.interpolation,
                       resize_size=spec.crop_size if resize_to_input else spec.resize_size)
    layer_suffix = f"@{spec.cut_layer}" if "@" in spec.name else ""  # non-default layers are named in the spec
    plain = weights == "imagenet" and not is_onnx_ref(backbone) and finetuned is None
    name = name or (spec.arch + layer_suffix if plain else spec.name)
    provenance = {
        "kind": "cnn",
        "spec": spec.to_dict(),
        "onnx_file": exported.onnx_path.name if exported else None,
        "onnx_sha256": exported.onnx_sha256 if exported else None,
        "opset": exported.sidecar["opset"] if exported else None,
        "exporter": exported.sidecar["exporter"] if exported else None,
        "runtime": runtime_version,
        "provider": runner.provider,
        "precision": precision,
        "preprocessing": (
            f"resize short side {spec.resize_size} ({spec.interpolation}, antialiased), centre crop "
            f"{spec.crop_size}, /255, normalise mean {list(spec.mean)} std {list(spec.std)}; {spec.channel_policy}"
        ),
        "intensity": describe_window(window),
        # what 'featx predict' passes to extract() to compute the same features for new images
        "args": {"backbone": str(backbone), "weights": str(weights), "layer": layer, "window": window, "tta": tta,
                 "interpolation": interpolation, "resize_to_input": resize_to_input},
        "featx_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if finetuned is not None:  # fit/bench warn when these features are cross-validated on their training rows
        provenance["finetune"] = {k: finetuned.get(k) for k in ("run", "trained_on", "base_weights", "freeze", "classes")}
    # fp16/bf16 change the numbers slightly: such features never mix with fp32 rows under one name
    identity = hashlib.sha256((spec.to_json() + "|window=" + window
                               + ("" if precision == "fp32" else f"|precision={precision}")).encode()).hexdigest()
    pre = Preprocessor.from_spec(spec)

    if tta != "none":
        provenance["tta"] = "mean of the features of the image and of its horizontal mirror"
        identity = hashlib.sha256(f"{identity}|tta={tta}".encode()).hexdigest()

    with store_writer(store) as w:
        todo, removed = w.register(manifest, name, spec.feature_dim, provenance, identity, "cnn", overwrite)
        summary = ExtractSummary(
            name, Path(store), spec.name, runner.provider, exported.onnx_path if exported else None,
            n_samples=len(manifest), n_already=len(manifest) - len(todo), n_extracted=0, n_removed=removed,
        )
        limit = parse_max_failures(max_failures, len(manifest))
        if todo:
            journal = w.start_journal(name, identity, spec.feature_dim)
            t_loop = time.perf_counter()
            try:
                if ray is not None:
                    from featx.extract.ray import run_on_ray

                    stats = run_on_ray(ray, todo, SampleLoader(reader, pre), runner, journal.append,
                                       dim=spec.feature_dim, batch_size=batch_size, limit=limit, label=f"extract {name} (ray)",
                                       progress=progress, tta=tta, where=str(store))
                else:
                    compute = runner.run if tta == "none" else _hflip_mean(runner.run)
                    stats = run_pipeline(todo, SampleLoader(reader, pre), compute, journal.append,
                                         batch_size=batch_size, limit=limit, label=f"extract {name}",
                                         workers=workers, mode=decode, lookahead=lookahead, progress=progress,
                                         where=str(store))
                summary.failures = stats.failures
                summary.compute_s, summary.wait_s = stats.compute_s, stats.wait_s
            finally:
                summary.n_extracted = journal.rows_ok  # what reached the journal, also when the run stops early
        # leaving the writer commits the journal to the store (also after an error: nothing computed is lost)
    if todo:
        summary.loop_s = time.perf_counter() - t_loop
    summary.wall_s = time.perf_counter() - t0
    return summary


def _hflip_mean(run):
    """Test-time augmentation: mean of the features of each image and of its mirror (one batch of 2n)."""

    def compute(x: np.ndarray) -> np.ndarray:
        y = run(np.concatenate([x, np.ascontiguousarray(x[..., ::-1])]))
        n = len(x)
        return (y[:n] + y[n:]) / 2

    return compute


def choose_runtime(runtime: str, provider: str, precision: str) -> str:
    """``auto``/``onnx``/``torch`` -> ``onnx`` or ``torch``, refusing combinations that cannot run here."""
    from featx.backbones.runtime import TORCH_PRECISIONS, gpu_present, provider_candidates

    if runtime not in ("auto", "onnx", "torch"):
        raise FeatxError(f"Unknown --runtime {runtime!r}; choose auto, onnx or torch.")
    if runtime == "torch":
        if precision not in TORCH_PRECISIONS:
            raise FeatxError(f"Unknown --precision {precision!r}; choose one of {', '.join(TORCH_PRECISIONS)}.")
        return "torch"
    if runtime == "auto" and provider == "auto" and gpu_present():
        try:
            on_gpu = provider_candidates("auto", "fp32")[0] != "cpu"
        except FeatxError:
            on_gpu = False
        if not on_gpu:
            log.warning("this ONNX Runtime has no usable GPU provider; running torch on the GPU instead "
                        "(pip install onnxruntime-gpu to use ONNX Runtime there)")
            return "torch"
    if precision == "bf16":
        raise FeatxError("--precision bf16 runs on --runtime torch only.")
    provider_candidates(provider, precision)
    return "onnx"
