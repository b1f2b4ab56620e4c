"""What machine a benchmark ran on: CPU model and the instruction-set flags that decide its speed.

Machines differ in CPU generation (AVX2 only, or AVX-512 with VNNI and AMX), and bf16 or
int8 gain several times on one and nothing on another: every result records this, never assumes it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: the flags that change which precision and runtime is fastest
SPEED_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
)


def cpu_info() -> dict:
    """``{"model", "cores", "speed_flags", "flags"}`` from /proc/cpuinfo (what lscpu shows)."""
    model, flags = platform.processor() or "?", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("?", "", platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.split()
    except OSError:
        pass
    return {
        "model": model,
        "cores": os.cpu_count(),
        "speed_flags": [f for f in SPEED_FLAGS if f in flags],
        "flags": " ".join(flags),
    }


def cpu_signature() -> str:
    """CPU model and speed flags in one line: what a speed measurement on this machine is valid for."""
    info = cpu_info()
    return f"{info['model']} | {info['cores']} cores | {' '.join(info['speed_flags'])}"


def omp_threads() -> int | None:
    """``OMP_NUM_THREADS`` when set (torch honours it too): the thread budget of shared machines and of
    parallel test workers; None lets ONNX Runtime use every core."""
    try:
        return int(os.environ.get("OMP_NUM_THREADS", "")) or None
    except ValueError:
        return None
