"""int8: post-training static quantization of featx's ONNX export, calibrated on the user's own images.

ONNX Runtime's ``quantize_static`` writes a QDQ model (activations uint8, weights int8 per channel,
MinMax calibration), which both ONNX Runtime's CPU kernels and OpenVINO run in int8. The model is
cached by content: the same export and the same calibration images (by sha256) reuse the file, so a
rerun, ``featx predict`` and ``--precision auto`` never quantize twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from featx.errors import FeatxError

log = logging.getLogger(__name__)

METHOD = "ort-qdq-u8s8-per-channel-minmax"


def int8_path(onnx_path: Path, onnx_sha256: str, calibration_shas: Sequence[str], models_dir) -> Path:
    """Where the int8 model of this export and these calibration images lives."""
    key = hashlib.sha256(f"{onnx_sha256}|{METHOD}|{','.join(calibration_shas)}".encode()).hexdigest()[:16]
    return Path(models_dir) / "int8" / f"{Path(onnx_path).stem}.int8-{key}.onnx"


def quantize_int8(
    onnx_path: Path, onnx_sha256: str, batch: np.ndarray, calibration_shas: Sequence[str], models_dir
) -> tuple[Path, bool]:
    """``(int8 model, made now)``: the cached QDQ model for ``batch``'s calibration, quantized when missing."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = int8_path(onnx_path, onnx_sha256, calibration_shas, models_dir)
    if out.is_file():
        return out, False
    out.parent.mkdir(parents=True, exist_ok=True)

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self.chunks = iter([{"input": batch[i : i + 16]} for i in range(0, len(batch), 16)])

        def get_next(self):
            return next(self.chunks, None)

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        pre, q = Path(tmp) / "pre.onnx", Path(tmp) / "q.onnx"
        try:
            quant_pre_process(str(onnx_path), str(pre))
            quantize_static(
                str(pre),
                str(q),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
            )
        except Exception as exc:  # an operator the quantizer cannot handle: said, with the way out
            first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)[:200]
            raise FeatxError(
                f"int8 quantization of {Path(onnx_path).name} failed ({type(exc).__name__}: {first}); use "
                "--precision fp32 or bf16 for this backbone."
            ) from None
        os.replace(q, out)
    log.info("int8 model calibrated on %d images: %s", len(batch), out)
    return out, True
