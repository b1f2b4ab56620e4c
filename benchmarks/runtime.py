"""Runtime benchmark: img/s of each backbone under each runtime, as medians of interleaved runs.

Pure inference on a pre-made batch (no decoding). Every figure is shown with its ratio to
torch eager fp32 measured in the same run, so machine noise cancels out.

    python benchmarks/runtime.py --device cpu --backbones resnet18,googlenet,inception_v3,densenet121
    python benchmarks/runtime.py --device cuda --backbones resnet50 --batch 256
    python benchmarks/runtime.py --device cpu --input-size 224 --out-name runtime_cpu_vit \
        --backbones resnet50,timm:vit_small_patch14_dinov2,timm:vit_base_patch16_224
    python benchmarks/runtime.py --device cpu --reduced --input-size 224 --out-name runtime_cpu_reduced \
        --backbones resnet18,resnet50,efficientnet_lite0,inception_v3,densenet121,timm:vit_small_patch14_dinov2

Any backbone name featx resolves works (``timm:NAME`` included; ``--input-size`` builds a ViT at
that side). ``--reduced`` adds OpenVINO f32/bf16 and int8 (ONNX Runtime and OpenVINO), each with its
fidelity (cosine per row against ONNX Runtime fp32 on the benchmark batch) and its ratio to ONNX
Runtime fp32. Each figure also gets its ratio to the first backbone's same runtime in the same run
(``ratio_vs_first``), e.g. a ViT against resnet50. The CPU model and its speed flags are recorded.

On CPU the torch baseline is tuned first: glibc's malloc trims and unmaps large blocks
after every batch unless MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ are raised, which
costs eager torch up to 2x in page faults. The script re-executes itself with both set
(recorded in the JSON), so the baseline is the best eager torch this machine gives.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_info  # noqa: E402

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def _reexec_with_malloc_tuning() -> None:
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})


def _time_runtime(run, batch, min_seconds: float) -> float:
    """img/s of ``run(batch)`` over at least ``min_seconds`` (after the caller's warm-up)."""
    n, t0 = 0, time.perf_counter()
    while True:
        run(batch)
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_seconds and n >= 2:
            return n * len(batch) / dt


def _reduced(spec, onnx_path, models_dir) -> dict:
    """OpenVINO f32/bf16 and int8 (ONNX Runtime and OpenVINO on featx's QDQ model, calibrated on 32 seeded
    random-normal inputs), as featx builds them."""
    import numpy as np

    from featx.backbones.weights import sha256_file
    from featx.engines.openvino_runtime import OpenVinoRuntime, cpu_capabilities
    from featx.engines.quantize import quantize_int8
    from featx.engines.runtime import OrtRuntime

    out = {"openvino fp32": OpenVinoRuntime(onnx_path, "fp32").run}
    if "BF16" in cpu_capabilities():
        out["openvino bf16"] = OpenVinoRuntime(onnx_path, "bf16").run
    cal = np.random.default_rng(1).standard_normal((32, *spec.input_shape)).astype(np.float32)
    q, _ = quantize_int8(onnx_path, sha256_file(onnx_path), cal, [f"random-{i}" for i in range(32)], models_dir)
    out["onnxruntime int8"] = OrtRuntime(q, provider="cpu", precision="int8").run
    out["openvino int8"] = OpenVinoRuntime(q, "int8").run
    return out


def _runtimes(spec, model, onnx_path, device: str, compile_: bool, reduced: bool = False, models_dir=None):
    """Name -> (callable, input) for every runtime to measure on this device."""
    import numpy as np
    import torch

    from featx.engines.runtime import OrtRuntime, TorchRuntime, resolve_provider

    x = np.random.default_rng(0).standard_normal((1, *spec.input_shape)).astype(np.float32)
    out = {}
    if device == "cpu":
        eager = TorchRuntime(model, "cpu", "fp32", channels_last=False)
        out["torch eager fp32"] = eager.run
        out["torch eager fp32 channels_last"] = TorchRuntime(model, "cpu", "fp32", channels_last=True).run
        out["onnxruntime cpu"] = OrtRuntime(onnx_path, provider="cpu").run
        if reduced:
            out.update(_reduced(spec, onnx_path, models_dir))
        return out, x
    eager = TorchRuntime(model, "cuda", "fp32", channels_last=False)
    on_device = lambda rt: lambda b: rt.run_tensor(b)  # noqa: E731  (pure inference: input already on GPU)
    out["torch eager fp32"] = on_device(eager)
    out["torch fp16 channels_last"] = on_device(TorchRuntime(model, "cuda", "fp16", channels_last=True))
    out["torch bf16 channels_last"] = on_device(TorchRuntime(model, "cuda", "bf16", channels_last=True))
    if compile_:
        out["torch fp16 channels_last compiled"] = on_device(
            TorchRuntime(model, "cuda", "fp16", channels_last=True, compile=True)
        )
    try:
        if resolve_provider("cuda") == "cuda":
            out["onnxruntime cuda fp32"] = OrtRuntime(onnx_path, provider="cuda").run
    except Exception as exc:  # recorded, not fatal: the device may lack onnxruntime-gpu
        print(f"  onnxruntime cuda: unavailable ({exc})")
    return out, torch.from_numpy(x).cuda()


def bench_backbone(
    name: str,
    device: str,
    batch: int,
    repeats: int,
    min_seconds: float,
    compile_: bool,
    models_dir: Path,
    input_size: int | None = None,
    reduced: bool = False,
) -> dict:
    import torch

    from featx.backbones.export import export_onnx
    from featx.backbones.resolve import resolve_backbone

    # speed does not depend on the weights' values; a registered CNN has a fixed input
    r = resolve_backbone(name, "random", input_size=input_size if name.startswith("timm:") else None)
    spec, model = r.spec, r.model
    exported = export_onnx(spec, model, models_dir)
    runtimes, x1 = _runtimes(spec, model, exported.onnx_path, device, compile_, reduced, models_dir)
    xb = x1.repeat(batch, 1, 1, 1) if isinstance(x1, torch.Tensor) else x1.repeat(batch, axis=0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed(run):
        def once(b):
            run(b)
            sync()

        return once

    for run in runtimes.values():  # warm-up (compilation, autotuning, allocator)
        for _ in range(3):
            timed(run)(xb)
    samples = {k: [] for k in runtimes}
    for _ in range(repeats):  # interleaved: every runtime once per round
        for k, run in runtimes.items():
            samples[k].append(_time_runtime(timed(run), xb, min_seconds))
    base = statistics.median(samples["torch eager fp32"])
    fidelity = {}
    if reduced:  # every runtime's features on the benchmark batch against ONNX Runtime fp32
        import numpy as np

        from featx.engines.fidelity import row_cosines

        ref = np.asarray(runtimes["onnxruntime cpu"](xb))
        for k, run in runtimes.items():
            cos = row_cosines(np.asarray(run(xb)), ref)
            fidelity[k] = {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}
    rows = {
        k: {
            "img_per_s": statistics.median(v),
            "runs": v,
            "ratio_vs_torch_eager": statistics.median(v) / base,
            "ratio_vs_onnxruntime": statistics.median(v) / statistics.median(samples["onnxruntime cpu"])
            if "onnxruntime cpu" in samples
            else None,
            **({"fidelity": fidelity[k]} if k in fidelity else {}),
        }
        for k, v in samples.items()
    }
    return {"backbone": name, "spec": spec.name, "input": list(spec.input_shape), "batch": batch, "runtimes": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--backbones", default="resnet18,googlenet,inception_v3,densenet121")
    ap.add_argument("--batch", type=int, nargs="+", default=[32])
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds; the median is reported")
    ap.add_argument("--min-seconds", type=float, default=2.0, help="length of one timed run")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (CUDA)")
    ap.add_argument("--input-size", type=int, default=None, help="build timm: ViTs at this side (e.g. 224)")
    ap.add_argument("--out-name", default=None, help="results/<name>.json (default runtime_<device>)")
    ap.add_argument(
        "--reduced", action="store_true", help="CPU: also OpenVINO f32/bf16 and int8 (ONNX Runtime, OpenVINO)"
    )
    ap.add_argument("--out", type=Path, default=None, help="JSON file (overrides --out-name)")
    args = ap.parse_args()
    if args.device == "cpu":
        _reexec_with_malloc_tuning()
    import onnxruntime
    import torch

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backbones.split(","):
            for batch in args.batch:
                print(f"{name} batch {batch} ...", flush=True)
                r = bench_backbone(
                    name,
                    args.device,
                    batch,
                    args.repeats,
                    args.min_seconds,
                    args.compile,
                    Path(tmp),
                    args.input_size,
                    args.reduced,
                )
                results.append(r)
                for k, v in r["runtimes"].items():
                    fid = f"  cos mean {v['fidelity']['mean_cosine']:.5f}" if "fidelity" in v else ""
                    ort = f"  x{v['ratio_vs_onnxruntime']:.2f} vs ORT" if v.get("ratio_vs_onnxruntime") else ""
                    print(
                        f"  {k:38s} {v['img_per_s']:10.1f} img/s  x{v['ratio_vs_torch_eager']:.2f}{ort}{fid}",
                        flush=True,
                    )
    first = {(r["batch"], k): v["img_per_s"] for r in results[:1] for k, v in r["runtimes"].items()}
    for r in results:
        for k, v in r["runtimes"].items():
            base = first.get((r["batch"], k))
            v["ratio_vs_first"] = v["img_per_s"] / base if base else None
    print(f"ratio to {results[0]['backbone']} (same runtime, same run):")
    for r in results[1:]:
        ratios = ", ".join(f"{k} x{v['ratio_vs_first']:.2f}" for k, v in r["runtimes"].items() if v["ratio_vs_first"])
        print(f"  {r['backbone']} batch {r['batch']}: {ratios}")
    env = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": args.device,
        "cpu": cpu_info(),
        "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "torch_threads": torch.get_num_threads(),
        "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV},
        "repeats": args.repeats,
        "min_seconds": args.min_seconds,
        "note": "pure inference on a pre-made batch; median of interleaved runs; ratio vs torch eager fp32 (NCHW)",
    }
    out = args.out or Path(__file__).parent / "results" / f"{args.out_name or 'runtime_' + args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
