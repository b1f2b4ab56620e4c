"""Inference runtimes behind one interface: ``run(batch) -> (N, D) float32``.

ONNX Runtime is the default. The CUDA provider is only requested when a GPU is
really present (asking for it on a CPU machine prints alarming errors).
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from featx.config import Choice
from featx.engines.cpu import omp_threads
from featx.errors import ConfigError, FeatxError, RuntimeUnavailableError

log = logging.getLogger(__name__)

PROVIDERS = Choice("provider", ("auto", "cpu", "cuda", "tensorrt"))
RUNTIMES = Choice("runtime", ("auto", "onnx", "torch", "openvino"))
PRECISIONS = Choice("precision", ("fp32", "fp16", "bf16", "int8", "auto"))
ORT_PRECISIONS = ("fp32", "fp16", "int8")  # fp16: TensorRT's own engine; int8: the QDQ model on the CPU
TORCH_PRECISIONS = ("fp32", "fp16", "bf16")  # autocast; fp16 on a GPU only
_EP = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def gpu_present() -> bool:
    """True when the CUDA driver loads and reports at least one device (no torch import)."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    try:
        return cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    except AttributeError:
        return False


def provider_candidates(provider: str, precision: str = "fp32") -> list[str]:
    """Providers to try, best first, among those this ONNX Runtime build and machine can offer.

    ``auto`` -> TensorRT, CUDA, CPU (GPU ones only with a GPU and a GPU build); an explicit
    provider that cannot work here is refused with what to do.

    Raises
    ------
    RuntimeUnavailableError
        Unknown provider or precision, a GPU provider without GPU or GPU build, fp16 without TensorRT.
    """
    import onnxruntime as ort

    PROVIDERS.check(provider)
    PRECISIONS.check(precision)
    if precision == "int8":  # a statically quantized (QDQ) model: ONNX Runtime's CPU kernels
        if provider not in ("auto", "cpu"):
            raise RuntimeUnavailableError(f"--precision int8 runs on the CPU; --provider {provider} does not.")
        return ["cpu"]
    if precision not in ORT_PRECISIONS:
        raise RuntimeUnavailableError(
            f"precision {precision} runs on the torch runtime only (ONNX Runtime: {', '.join(ORT_PRECISIONS)})."
        )
    available = ort.get_available_providers()
    gpu = gpu_present()
    if provider in ("cuda", "tensorrt"):
        if not gpu:
            raise RuntimeUnavailableError(
                f"--provider {provider}: no NVIDIA GPU found on this machine. Use --provider cpu or auto."
            )
        if _EP[provider] not in available:
            raise RuntimeUnavailableError(
                f"--provider {provider}: this ONNX Runtime ({ort.__version__}) has no {_EP[provider]}. Install "
                "'pip install onnxruntime-gpu' (Linux x86_64; TensorRT also needs NVIDIA's TensorRT libraries), "
                "or use --provider cpu or auto, or --runtime torch."
            )
    if precision == "fp16" and provider not in ("auto", "tensorrt"):
        raise RuntimeUnavailableError(
            f"--precision fp16 runs on --provider tensorrt (or use --runtime torch); {provider} runs fp32."
        )
    if provider != "auto":
        return [provider]
    order = [p for p in ("tensorrt", "cuda") if gpu and _EP[p] in available]
    if precision == "fp16":
        order = [p for p in order if p == "tensorrt"]
        if not order:
            raise RuntimeUnavailableError(
                "--precision fp16 needs the TensorRT provider, which is not usable here; "
                "use fp32, or --runtime torch on a GPU."
            )
    return order + (["cpu"] if precision == "fp32" else [])


def resolve_provider(provider: str, precision: str = "fp32") -> str:
    """The first candidate provider (see :func:`provider_candidates`), without starting a session."""
    return provider_candidates(provider, precision)[0]


class OrtRuntime:
    """ONNX Runtime session over an exported backbone.

    Parameters
    ----------
    onnx_path : path
        The model; input ``input`` (N, 3, H, W) float32, output ``features`` (N, D).
    provider : {'auto', 'cpu', 'cuda', 'tensorrt'}
        ``auto`` tries TensorRT, then CUDA, then CPU, keeping the first whose session really starts.
    precision : {'fp32', 'fp16'}
        fp16 runs on TensorRT (its own fp16 engine); inputs and outputs stay float32.
    threads : int, optional
        Intra-op threads on CPU. Default: ONNX Runtime's, one per physical core, which measured
        best here (resnet18, batch 32, 2 cores: 20.3 img/s with 2 threads vs 11.4 with 1).
    cache_dir : path, optional
        TensorRT engine cache (engines are built once per model, shape range and precision).
    """

    def __init__(
        self,
        onnx_path: str | Path,
        provider: str = "auto",
        threads: int | None = None,
        precision: str = "fp32",
        cache_dir: str | Path | None = None,
    ):
        import onnxruntime as ort

        candidates = provider_candidates(provider, precision)
        opts = ort.SessionOptions()
        # Measured on 2 cores, batch 32 (img/s, basic / extended / all): resnet18 15.9 / 15.8 / 20.6,
        # googlenet 20.0 / 20.2 / 23.6; "all" adds the NCHWc layout transform.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = threads or omp_threads()
        if threads:
            opts.intra_op_num_threads = int(threads)
        if any(c != "cpu" for c in candidates) and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # finds the CUDA/cuDNN libraries torch's wheels bring
        self.session, self.provider = None, None
        for cand in candidates:
            providers = [(_EP[cand], self._options(cand, precision, cache_dir))] + (
                [] if cand == "cpu" else ["CPUExecutionProvider"]
            )
            try:
                session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=providers)
            except Exception as exc:  # a GPU provider that is listed but cannot start (missing libraries)
                log.info("%s could not start (%s); trying the next provider", _EP[cand], exc)
                continue
            if session.get_providers()[0] == _EP[cand]:
                self.session, self.provider = session, _EP[cand]
                break
            log.info("%s fell back to %s; trying the next provider", _EP[cand], session.get_providers()[0])
        if self.session is None:
            raise RuntimeUnavailableError(
                f"No ONNX Runtime provider could start for {onnx_path} (tried {', '.join(candidates)}). "
                "Use --provider cpu, or --runtime torch."
            )
        if provider == "auto" and self.provider != _EP[candidates[0]]:
            log.warning("%s is listed but could not start here; running on %s", _EP[candidates[0]], self.provider)
        self.precision = precision
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self._on_gpu = self.provider != "CPUExecutionProvider"

    @staticmethod
    def _options(cand: str, precision: str, cache_dir) -> dict:
        if cand != "tensorrt":
            return {}
        opts = {"trt_fp16_enable": precision == "fp16"}
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
        return opts

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Features of a float32 ``(N, 3, H, W)`` batch as float32 ``(N, D)``."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if not self._on_gpu:
            return self.session.run([self.output_name], {self.input_name: x})[0].astype(np.float32, copy=False)
        # GPU: I/O binding copies the input to the device once and keeps the output there until
        # the single copy back, instead of ONNX Runtime's extra staging copies.
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, x)
        binding.bind_output(self.output_name, "cuda")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0].astype(np.float32, copy=False)


class TorchRuntime:
    """Eager (optionally compiled) PyTorch over a feature module: the fallback and the benchmark baseline.

    Parameters
    ----------
    model : torch.nn.Module
        Feature extractor (eval mode).
    device : {'cpu', 'cuda'}
    precision : {'fp32', 'fp16', 'bf16'}
        fp16/bf16 run under autocast (CUDA only for fp16); outputs are returned as float32.
    channels_last : bool
        NHWC memory format (NDHWC for a 3D network), usually faster for convolutions on both CPU and GPU.
    compile : bool
        Wrap the model in ``torch.compile``. Smaller batches are zero-padded to the largest batch
        seen, so the compiled graph is not rebuilt for the last, partial batch.
    """

    def __init__(
        self, model, device: str = "cpu", precision: str = "fp32", channels_last: bool = True, compile: bool = False
    ):
        import torch

        PRECISIONS.check(precision)
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailableError("torch runtime on cuda: this torch build sees no GPU. Use device cpu.")
        if device == "cpu" and precision == "fp16":
            raise RuntimeUnavailableError("fp16 on CPU is not supported by featx's torch runtime; use fp32 or bf16.")
        self.torch = torch
        self.device = torch.device(device)
        if device == "cuda" and precision == "fp32":
            # PyTorch runs cuDNN convolutions in TF32 by default on Ampere/Hopper: measured on an H100,
            # that moved EfficientNet-Lite0 features by 0.04 at output scale 5.9. fp32 means fp32.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self.memory_format = torch.contiguous_format
        if channels_last:  # channels last for 2D (NHWC) and 3D (NDHWC) convolutions: a 3D network's first is 3D
            convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Conv3d)]
            three_d = bool(convs) and isinstance(convs[0], torch.nn.Conv3d)
            self.memory_format = torch.channels_last_3d if three_d else torch.channels_last
        self.model = model.eval().to(self.device, memory_format=self.memory_format)
        self.dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.compiled = compile
        self._batch = 0
        if compile:
            self.model = torch.compile(self.model)
        self.provider = f"torch-{device}-{precision}{'-compiled' if compile else ''}"

    def warm_up(self, batch_size: int, shape) -> None:
        """Run one zero batch: CUDA context, cuDNN autotuning and compilation happen here, not in the timed loop."""
        self.run_tensor(self.torch.zeros((batch_size, *shape), device=self.device))
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def run_tensor(self, x):
        """Features of a batch already on the device (no host round trip); returns a device tensor."""
        torch = self.torch
        n = x.shape[0]
        if self.compiled:
            self._batch = max(self._batch, n)
            if n < self._batch:
                x = torch.cat([x, x.new_zeros((self._batch - n, *x.shape[1:]))])
        with torch.inference_mode():
            x = x.contiguous(memory_format=self.memory_format)
            if self.dtype is None:
                return self.model(x).float()[:n]
            with torch.autocast(self.device.type, dtype=self.dtype):
                return self.model(x).float()[:n]

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Features of a float32 ``(N, 3, H, W)`` batch as float32 ``(N, D)``."""
        x = self.torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, non_blocking=True)
        return self.run_tensor(x).cpu().numpy()


def choose_runtime(runtime: str, provider: str, precision: str) -> str:
    """``auto``/``onnx``/``torch``/``openvino`` -> the runtime kind, refusing combinations that cannot run here.

    ``auto`` is ONNX Runtime, except: on a GPU machine whose ONNX Runtime has no GPU provider, torch
    runs on the GPU; bf16 and int8 on a CPU run on OpenVINO when it is installed. ``--precision auto``
    returns ``auto``: the fastest (runtime, precision) that passes the fidelity gate is measured later.
    """
    from featx.engines.openvino_runtime import OPENVINO_PRECISIONS, openvino_available

    RUNTIMES.check(runtime)
    PRECISIONS.check(precision)
    if precision == "auto":
        if runtime == "torch" or provider not in ("auto", "cpu") or gpu_present():
            raise ConfigError(
                "--precision auto chooses among ONNX Runtime and OpenVINO precisions on a CPU; on a GPU or with "
                "--runtime torch give the precision.",
                "precision",
            )
        return "auto"
    if runtime == "torch":
        if precision == "int8":
            raise ConfigError("int8 runs on ONNX Runtime or OpenVINO (a calibrated QDQ model), not torch.", "precision")
        return "torch"
    if runtime == "openvino":
        if not openvino_available():
            raise RuntimeUnavailableError("--runtime openvino needs OpenVINO: pip install openvino.")
        if precision not in OPENVINO_PRECISIONS or provider not in ("auto", "cpu"):
            raise ConfigError(
                f"OpenVINO runs {', '.join(OPENVINO_PRECISIONS)} on the CPU (got --precision {precision}, --provider "
                f"{provider}).",
                "runtime",
            )
        return "openvino"
    on_gpu = False
    if runtime == "auto" and provider == "auto" and gpu_present():
        try:
            on_gpu = provider_candidates("auto", "fp32")[0] != "cpu"
        except FeatxError:
            on_gpu = False
        if not on_gpu:
            log.warning(
                "this ONNX Runtime has no usable GPU provider; running torch on the GPU instead "
                "(pip install onnxruntime-gpu to use ONNX Runtime there)"
            )
            return "torch"
    if runtime == "auto" and precision in ("bf16", "int8") and not on_gpu and openvino_available():
        return "openvino"
    if precision == "bf16":
        raise ConfigError("bf16 runs on OpenVINO (pip install openvino) or torch; choose one of them.", "precision")
    provider_candidates(provider, precision)
    return "onnx"


class OrtFactory:
    """What a Ray actor needs to build its ONNX Runtime session (the model travels as bytes)."""

    def __init__(self, onnx_bytes: bytes, provider: str, precision: str, cache_dir: str):
        self.onnx_bytes, self.requested, self.precision, self.cache_dir = onnx_bytes, provider, precision, cache_dir
        self.provider = f"Ray actors ({provider})"
        self.calibration = None  # fp16: the fidelity gate's batch and fp32 features (featx.engines.calibration)

    def __call__(self, threads: int | None):
        fd, path = tempfile.mkstemp(suffix=".onnx")
        with os.fdopen(fd, "wb") as f:
            f.write(self.onnx_bytes)
        try:
            rt = OrtRuntime(
                path, provider=self.requested, precision=self.precision, threads=threads, cache_dir=self.cache_dir
            )
        finally:
            os.unlink(path)  # the session holds the model in memory
        if self.calibration is not None:  # the engine computes nothing before it passes the gate
            self.calibration.check(rt.run, f"{rt.provider} {self.precision}")
        return rt
