"""OpenVINO on the CPU: featx's ONNX export compiled at f32 or bf16, or its int8 (QDQ) model, behind ``run(batch)``.

OpenVINO reads the ONNX file directly. ``INFERENCE_PRECISION_HINT`` bf16 runs the network in bf16 where
the CPU has native bf16 (AVX512-BF16, AMX); elsewhere OpenVINO would quietly run f32, so featx asks the
CPU plugin first and refuses bf16 there instead of labelling f32 numbers bf16. Compiled models are
cached (``CACHE_DIR``): a second run skips compilation.

Given the input's ``pixels`` normalisation (mean, std), the model is compiled to take the 8-bit pixels
themselves, ``(N, H, W, 3)`` uint8: OpenVINO's ``PrePostProcessor`` puts the float conversion, the
normalisation and the NHWC->NCHW transpose into the compiled graph. The decode workers then hand over
a quarter of the bytes and skip numpy's normalisation (``benchmarks/datapath.py``: the same features,
cosine 1.0, and less time in the model too). Resizing in the graph was measured and not kept: its
bilinear resize is not the antialiased resize the weights expect (cosine 0.89 to featx's path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from featx.engines.cpu import omp_threads
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
    pixels : (mean, std), optional
        The input's normalisation on the 0..1 scale: compile for uint8 NHWC pixels (:meth:`run_pixels`).
    """

    def __init__(self, onnx_path, precision: str = "fp32", threads: int | None = None, cache_dir=None, pixels=None):
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
        model = core.read_model(str(onnx_path))
        if pixels is not None:
            model = _pixel_input(model, *pixels)
        self.pixels = pixels
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)
        self.precision = precision
        self.provider = f"openvino-cpu-{precision}"
        self.version = f"openvino {ov.__version__}"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Features of a float32 ``(N, 3, H, W)`` batch as float32 ``(N, D)`` (a copy: the request reuses its output).

        A model compiled for ``pixels`` takes the batch back to its 8-bit pixels first (exact for featx's
        preprocessed images); a batch that is not normalised 8-bit pixels is refused, never rounded silently.
        """
        if self.pixels is not None:
            return self.run_pixels(to_pixels(batch, *self.pixels))
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self._infer(x)

    def run_pixels(self, batch: np.ndarray) -> np.ndarray:
        """Features of a uint8 ``(N, H, W, 3)`` batch of pixels (compiled with ``pixels`` only)."""
        return self._infer(np.ascontiguousarray(batch, dtype=np.uint8))

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return np.array(self.request.infer({0: x})[self.output], dtype=np.float32, copy=True)


def to_pixels(batch: np.ndarray, mean, std) -> np.ndarray:
    """A featx-preprocessed float32 ``(N, 3, H, W)`` batch back to its uint8 ``(N, H, W, 3)`` pixels (exact).

    Raises
    ------
    ValueError
        When the batch is not normalised 8-bit pixels (it is refused, never rounded silently).
    """
    mean, std = (np.asarray(v, np.float32).reshape(1, 3, 1, 1) for v in (mean, std))
    v = (np.asarray(batch, np.float32) * std + mean) * np.float32(255.0)
    u = np.rint(v)
    if u.min() < 0 or u.max() > 255 or np.abs(v - u).max() > 0.01:
        raise ValueError("this OpenVINO model takes 8-bit pixels: the batch is not normalised 8-bit pixels")
    return u.astype(np.uint8).transpose(0, 2, 3, 1)


def _pixel_input(model, mean, std):
    """``model`` behind a uint8 NHWC input: to f32, minus 255*mean, over 255*std, to NCHW, inside the graph."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    steps = ppp.input().preprocess().convert_element_type(ov.Type.f32)
    steps.mean([255.0 * float(m) for m in mean]).scale([255.0 * float(s) for s in std])
    return ppp.build()
