"""OpenVINO on the CPU: featx's ONNX export compiled at f32 or bf16, or its int8 (QDQ) model, behind ``run(batch)``.

OpenVINO reads the ONNX file directly. ``INFERENCE_PRECISION_HINT`` bf16 runs the network in bf16 where
the CPU has native bf16 (AVX512-BF16, AMX); elsewhere OpenVINO would quietly run f32, so featx asks the
CPU plugin first and refuses bf16 there instead of labelling f32 numbers bf16. Compiled models are
cached (``CACHE_DIR``): a second run skips compilation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from featx.backbones.cpu import omp_threads
from featx.errors import RuntimeUnavailableError

OPENVINO_PRECISIONS = ("fp32", "bf16", "int8")


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def cpu_capabilities() -> list[str]:
    """What OpenVINO's CPU plugin reports it can run natively (``BF16``, ``INT8``, ``FP32`` ...)."""
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class OpenVinoRuntime:
    """An OpenVINO CPU compiled model over an ONNX file.

    Parameters
    ----------
    onnx_path : path
        featx's export (fp32, bf16), or its int8 QDQ model (``precision='int8'``).
    precision : {'fp32', 'bf16', 'int8'}
    threads : int, optional
        ``INFERENCE_NUM_THREADS`` (default ``OMP_NUM_THREADS`` when set, else OpenVINO's: every core).
    cache_dir : path, optional
        Compiled-model cache.
    """

    def __init__(self, onnx_path, precision: str = "fp32", threads: int | None = None, cache_dir=None):
        try:
            import openvino as ov
        except ImportError:
            raise RuntimeUnavailableError("--runtime openvino needs OpenVINO: pip install openvino.") from None
        if precision not in OPENVINO_PRECISIONS:
            raise RuntimeUnavailableError(
                f"precision {precision} does not run on OpenVINO ({', '.join(OPENVINO_PRECISIONS)})."
            )
        core = ov.Core()
        caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if precision == "bf16" and "BF16" not in caps:
            raise RuntimeUnavailableError(
                f"this CPU has no native bf16 (OpenVINO reports {', '.join(caps)}): use --precision fp32 or int8."
            )
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache_dir)})
        config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "PERFORMANCE_HINT": "LATENCY"}
        threads = threads or omp_threads()
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(str(onnx_path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)
        self.precision = precision
        self.provider = f"openvino-cpu-{precision}"
        self.version = f"openvino {ov.__version__}"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Features of a float32 ``(N, 3, H, W)`` batch as float32 ``(N, D)`` (a copy: the request reuses its output)."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return np.array(self.request.infer({0: x})[self.output], dtype=np.float32, copy=True)
