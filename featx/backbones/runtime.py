"""Inference runtimes behind one interface: ``run(batch) -> (N, D) float32``.

ONNX Runtime is the default. The CUDA provider is only requested when a GPU is
really present (asking for it on a CPU machine prints alarming errors).
"""
from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import numpy as np

from featx.errors import RuntimeUnavailableError

log = logging.getLogger(__name__)

PROVIDERS = ("auto", "cpu", "cuda")


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


def resolve_provider(provider: str) -> str:
    """``auto``/``cpu``/``cuda`` -> ``cpu`` or ``cuda``, refusing what cannot work here.

    ``auto`` takes CUDA only when a GPU is present *and* ONNX Runtime has the CUDA provider.

    Raises
    ------
    RuntimeUnavailableError
        Unknown provider, or ``cuda`` without a GPU or without a CUDA-enabled ONNX Runtime.
    """
    import onnxruntime as ort

    if provider not in PROVIDERS:
        raise RuntimeUnavailableError(f"Unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}.")
    if provider == "cpu":
        return "cpu"
    has_cuda_ep = "CUDAExecutionProvider" in ort.get_available_providers()
    gpu = gpu_present()
    if provider == "cuda" and not gpu:
        raise RuntimeUnavailableError("--provider cuda: no NVIDIA GPU found on this machine. Use --provider cpu or auto.")
    if provider == "cuda" and not has_cuda_ep:
        raise RuntimeUnavailableError(
            f"--provider cuda: this ONNX Runtime ({ort.__version__}) has no CUDA provider. Install it with "
            "'pip install onnxruntime-gpu' (Linux x86_64), or use --provider cpu or auto."
        )
    return "cuda" if gpu and has_cuda_ep else "cpu"


class OrtRuntime:
    """ONNX Runtime session over an exported backbone.

    Parameters
    ----------
    onnx_path : path
        The model; input ``input`` (N, 3, H, W) float32, output ``features`` (N, D).
    provider : {'auto', 'cpu', 'cuda'}
        ``auto`` takes CUDA when a GPU and the CUDA provider are present, else CPU.
    threads : int, optional
        Intra-op threads on CPU (default: ONNX Runtime's, one per physical core).
    """

    def __init__(self, onnx_path: str | Path, provider: str = "auto", threads: int | None = None):
        import onnxruntime as ort

        want_cuda = resolve_provider(provider) == "cuda"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
        providers = ["CPUExecutionProvider"]
        if want_cuda:
            if hasattr(ort, "preload_dlls"):  # finds the CUDA/cuDNN libraries torch's wheels bring
                ort.preload_dlls()
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=providers)
        self.provider = self.session.get_providers()[0]
        if want_cuda and self.provider != "CUDAExecutionProvider":
            log.warning("CUDA provider could not start; running on %s", self.provider)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Features of a float32 ``(N, 3, H, W)`` batch as float32 ``(N, D)``."""
        out = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return out.astype(np.float32, copy=False)


TORCH_PRECISIONS = ("fp32", "fp16", "bf16")


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
        NHWC memory format, usually faster for convolutions on both CPU and GPU.
    compile : bool
        Wrap the model in ``torch.compile``.
    """

    def __init__(self, model, device: str = "cpu", precision: str = "fp32", channels_last: bool = True,
                 compile: bool = False):
        import torch

        if precision not in TORCH_PRECISIONS:
            raise RuntimeUnavailableError(f"Unknown precision {precision!r}; choose one of {', '.join(TORCH_PRECISIONS)}.")
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailableError("torch runtime on cuda: this torch build sees no GPU. Use device cpu.")
        if device == "cpu" and precision == "fp16":
            raise RuntimeUnavailableError("fp16 on CPU is not supported by featx's torch runtime; use fp32 or bf16.")
        self.torch = torch
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=self.memory_format)
        self.dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        if compile:
            self.model = torch.compile(self.model)
        self.provider = f"torch-{device}-{precision}{'-compiled' if compile else ''}"

    def run_tensor(self, x):
        """Features of a batch already on the device (no host round trip); returns a device tensor."""
        torch = self.torch
        with torch.inference_mode():
            x = x.contiguous(memory_format=self.memory_format)
            if self.dtype is None:
                return self.model(x).float()
            with torch.autocast(self.device.type, dtype=self.dtype):
                return self.model(x).float()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Features of a float32 ``(N, 3, H, W)`` batch as float32 ``(N, D)``."""
        x = self.torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, non_blocking=True)
        return self.run_tensor(x).cpu().numpy()
