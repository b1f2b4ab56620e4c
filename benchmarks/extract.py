"""End-to-end extraction benchmark: featx vs bare ONNX Runtime vs a plain torch + DataLoader script.

All from one run, on the same PNG files (512x512 8-bit grey, generated once, seeded):

* ``bare``   : ONNX Runtime alone on pre-decoded, preprocessed tensors (the ceiling);
* ``featx``  : ``featx.api.extract`` end to end: decode, preprocess, infer, journal, commit
               (the loop time; model set-up is reported apart as ``setup_s``);
* ``plain``  : ``benchmarks/plain_torch.py``, the script a user writes today: a Dataset that opens
               each file with PIL, torchvision transforms, ``DataLoader(num_workers=CPUs)``,
               eager torch under ``inference_mode``, features saved with numpy. Its malloc is
               tuned (MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_) so the baseline is the best
               eager torch this machine gives.

Each measurement runs in its own process (so peak RSS is its own), interleaved over
``--repeats`` rounds; ratios are of medians. ``--rss`` adds featx's peak RSS at 1k and 10k
images (10k = the generated files listed several times under distinct ids), ``--sweep``
threads vs processes and the look-ahead depth.

    python benchmarks/extract.py                       # lite0 (real weights), 2,000 PNGs, 3 rounds
    python benchmarks/extract.py --backbone resnet50 --weights random --n 500 --out-name extract_cpu_resnet50
    python benchmarks/extract.py --precision auto --n 1000 --out-name extract_cpu_auto   # + auto, its engine bare

With ``--precision auto`` (or bf16, int8) the rounds are: bare ONNX Runtime fp32, featx fp32, the bare
rate of the engine featx chose (run on pre-decoded tensors like ``bare``), and featx at that precision.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_info  # noqa: E402

HERE = Path(__file__).resolve().parent
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def make_pngs(folder: Path, n: int, size: int = 512) -> Path:
    """``n`` seeded grey PNGs with smooth anatomy-like structure and noise; returns their manifest."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / f"manifest_{n}.csv"
    if manifest.exists():
        return manifest
    yy, xx = np.mgrid[0:size, 0:size] / size
    lines = ["id,path,label"]
    for i in range(n):
        path = folder / f"img_{i:05d}.png"
        if not path.exists():
            rng = np.random.default_rng(i)
            img = np.zeros((size, size))
            for _ in range(6):
                cx, cy, r, v = (
                    rng.uniform(0.2, 0.8),
                    rng.uniform(0.2, 0.8),
                    rng.uniform(0.05, 0.3),
                    rng.uniform(40, 200),
                )
                img += v * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
            img += rng.normal(0, 8, img.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        lines.append(f"s{i:05d},{path},{'ab'[i % 2]}")
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def repeated_manifest(manifest: Path, n: int) -> Path:
    """A manifest of ``n`` rows cycling through the files of ``manifest`` under distinct ids."""
    rows = manifest.read_text().splitlines()[1:]
    out = manifest.with_name(f"manifest_x{n}.csv")
    lines = ["id,path,label"] + [f"r{i:06d},{rows[i % len(rows)].split(',', 1)[1]}" for i in range(n)]
    out.write_text("\n".join(lines) + "\n")
    return out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ children
def child_bare(a) -> dict:
    import numpy as np

    from featx.backbones.export import export_onnx
    from featx.backbones.weights import load_backbone
    from featx.dataset.manifest import Manifest
    from featx.engines.runtime import OrtRuntime
    from featx.images.loader import SampleReader
    from featx.images.preprocess import Preprocessor

    spec, model = load_backbone(a.backbone, a.weights)
    exported = export_onnx(spec, model, a.models_dir)
    samples = list(Manifest.load(a.manifest))
    pre, read = Preprocessor.from_spec(spec), SampleReader(keep_grey=True)
    t0 = time.perf_counter()
    x = np.stack([pre(read(s)) for s in samples[: a.batch_size * 4]])  # cycled: memory stays small
    decode_ms = (time.perf_counter() - t0) * 1000 / len(x)  # one thread: what each image costs before the model
    ort = OrtRuntime(exported.onnx_path, provider="cpu")
    if getattr(a, "engine", None):  # the engine --precision auto chose: (runtime, precision, model file)
        runtime, precision, path = a.engine
        if runtime == "openvino":
            from featx.engines.openvino_runtime import OpenVinoRuntime

            ort = OpenVinoRuntime(path, precision)
        else:
            ort = OrtRuntime(path, provider="cpu", precision=precision)
    ort.run(x[: a.batch_size])  # warm-up, as featx's first batch is not excluded either way
    t0 = time.perf_counter()
    done = 0
    while done < len(samples):
        j = (done // a.batch_size) % 4
        n = min(a.batch_size, len(samples) - done)
        ort.run(x[j * a.batch_size : j * a.batch_size + n])
        done += n
    dt = time.perf_counter() - t0
    return {"images": done, "seconds": dt, "img_s": done / dt, "decode_ms": decode_ms, "peak_rss_mb": _peak_rss_mb()}


def child_featx(a) -> dict:
    from featx.api import extract
    from featx.dataset.manifest import Manifest

    store = Path(a.tmp) / f"featx_{os.getpid()}.h5"
    m = Manifest.load(a.manifest)
    s = extract(
        m,
        a.backbone,
        store,
        weights=a.weights,
        batch_size=a.batch_size,
        workers=a.workers,
        decode=a.decode,
        lookahead=a.lookahead,
        models_dir=a.models_dir,
        precision=getattr(a, "precision", "fp32"),
    )
    engine = None
    if getattr(a, "keep", False):  # the warm-up of --precision: which engine was chosen, and its model file
        from featx.store.store import FeatureStore

        with FeatureStore(store) as st:
            prov = st.provenance(s.feature_set)
        e = prov["engine"]
        model = Path(a.models_dir) / ("int8/" + prov["int8"]["model"] if "int8" in prov else prov["onnx_file"])
        engine = [e["runtime"], e["precision"], str(model)]
    for p in store.parent.glob(store.name + "*"):
        p.unlink()
    return {
        "images": s.n_extracted,
        "seconds": s.loop_s,
        "img_s": s.n_extracted / s.loop_s,
        "setup_s": s.wall_s - s.loop_s,
        "compute_s": s.compute_s,
        "wait_s": s.wait_s,
        "failures": len(s.failures),
        "peak_rss_mb": _peak_rss_mb(),
        "provider": s.provider,
        "engine": engine,
    }


def child_plain(a) -> dict:
    sys.path.insert(0, str(HERE))
    from plain_torch import run

    n, dt = run(a.manifest, a.backbone, a.weights, a.batch_size, os.cpu_count() or 1, Path(a.tmp) / "plain.npy")
    return {"images": n, "seconds": dt, "img_s": n / dt, "peak_rss_mb": _peak_rss_mb()}


CHILDREN = {"bare": child_bare, "featx": child_featx, "plain": child_plain}


def spawn(kind: str, a, manifest: Path, **over) -> dict:
    args = {
        "backbone": a.backbone,
        "weights": a.weights,
        "batch_size": a.batch_size,
        "models_dir": a.models_dir,
        "tmp": a.tmp,
        "manifest": str(manifest),
        "workers": a.workers,
        "decode": "thread",
        "lookahead": a.lookahead,
        **over,
    }
    env = {**os.environ, **(MALLOC_ENV if kind == "plain" else {})}
    cmd = [sys.executable, __file__, "--child", kind, "--child-args", json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"  {kind:<6} {' '.join(f'{k}={v}' for k, v in over.items()):<28} {res['img_s']:7.1f} img/s  "
        f"peak RSS {res['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--lookahead", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rss", action="store_true", help="featx peak RSS at 1k vs 10k images")
    p.add_argument("--sweep", action="store_true", help="threads vs processes, look-ahead 1/3/6")
    p.add_argument("--data", default=str(HERE / ".data"))
    p.add_argument("--models-dir", default="models_onnx")
    p.add_argument("--out-name", default="extract_cpu")
    p.add_argument(
        "--precision", default="fp32", help="also featx at this precision (e.g. auto) and its chosen engine bare"
    )
    p.add_argument("--child")
    p.add_argument("--child-args")
    a = p.parse_args()
    if a.child:
        print(json.dumps(CHILDREN[a.child](argparse.Namespace(**json.loads(a.child_args)))))
        return
    from featx.extract.pipeline import DEFAULT_LOOKAHEAD

    a.lookahead = a.lookahead or DEFAULT_LOOKAHEAD
    a.tmp = str(Path(a.data) / "tmp")
    Path(a.tmp).mkdir(parents=True, exist_ok=True)
    manifest = make_pngs(Path(a.data) / "png512", a.n)
    spawn("bare", a, manifest)  # exports (or finds) the ONNX model once, outside the timed rounds
    kinds = {k: (k, {}) for k in ("bare", "featx", "plain")}
    chosen = None
    if a.precision != "fp32":  # featx at --precision P, and the bare rate of the engine it chose
        chosen = spawn("featx", a, manifest, precision=a.precision, keep=True)["engine"]  # measures, calibrates
        print(f"  --precision {a.precision} chose {chosen[0]} {chosen[1]}", flush=True)
        kinds = {
            "bare": ("bare", {}),
            "featx": ("featx", {}),
            f"bare_{a.precision}": ("bare", {"engine": chosen}),
            f"featx_{a.precision}": ("featx", {"precision": a.precision}),
        }
    rounds = {k: [] for k in kinds}
    for r in range(a.repeats):
        print(f"round {r + 1}/{a.repeats}", flush=True)
        for name, (kind, over) in kinds.items():
            rounds[name].append(spawn(kind, a, manifest, **over))
    med = {k: statistics.median(x["img_s"] for x in v) for k, v in rounds.items()}
    out = {
        "benchmark": "extract",
        "backbone": a.backbone,
        "weights": a.weights,
        "images": a.n,
        "image": "512x512 grey PNG",
        "batch_size": a.batch_size,
        "lookahead": a.lookahead,
        "cpus": os.cpu_count(),
        "cpu": cpu_info(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "median_img_s": med,
        "featx_vs_bare": med["featx"] / med["bare"],
        **({"featx_vs_plain": med["featx"] / med["plain"]} if "plain" in med else {}),
        **(
            {
                "precision": a.precision,
                "chosen_engine": chosen[:2],
                f"featx_{a.precision}_vs_featx_fp32": med[f"featx_{a.precision}"] / med["featx"],
                f"featx_{a.precision}_vs_its_bare_engine": med[f"featx_{a.precision}"] / med[f"bare_{a.precision}"],
            }
            if chosen
            else {}
        ),
        "featx_model_wait_share": statistics.median(x["wait_s"] / x["seconds"] for x in rounds["featx"]),
        # profile: decode+preprocess costs decode_ms of one core per image; the model costs cpus/bare
        # core-seconds per image. With both on the same cores the best possible rate is:
        "decode_ms_per_image": statistics.median(x["decode_ms"] for x in rounds["bare"]),
        "runs": rounds,
    }
    cpus = os.cpu_count() or 1
    out["cpu_bound_ceiling_img_s"] = cpus * 1000 / (out["decode_ms_per_image"] + cpus * 1000 / med["bare"])
    out["featx_vs_ceiling"] = med["featx"] / out["cpu_bound_ceiling_img_s"]
    if a.sweep:
        print("sweep", flush=True)
        out["sweep"] = [
            {"decode": d, "lookahead": la, **spawn("featx", a, manifest, decode=d, lookahead=la)}
            for d in ("thread", "process")
            for la in (1, 3, 6)
        ]
    if a.rss:
        print("peak RSS", flush=True)
        out["rss_mb"] = {
            str(n): spawn("featx", a, repeated_manifest(manifest, n))["peak_rss_mb"] for n in (1000, 10000)
        }
        out["rss_10k_vs_1k"] = out["rss_mb"]["10000"] / out["rss_mb"]["1000"]
    import onnxruntime
    import torch

    out["versions"] = {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__}
    dest = HERE / "results" / f"{a.out_name}.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nmedian img/s: {', '.join(f'{k} {v:.1f}' for k, v in med.items())}")
    print(
        f"featx / bare = {out['featx_vs_bare']:.2f}x"
        + (f"; featx / plain = {out['featx_vs_plain']:.2f}x" if "plain" in med else "")
        + (
            f"; featx {a.precision} ({chosen[0]} {chosen[1]}) / featx fp32 = "
            f"{out[f'featx_{a.precision}_vs_featx_fp32']:.2f}x, / its bare engine = "
            f"{out[f'featx_{a.precision}_vs_its_bare_engine']:.2f}x"
            if chosen
            else ""
        )
    )
    print(
        f"profile: decode+preprocess {out['decode_ms_per_image']:.1f} ms of one core per image; sharing {cpus} "
        f"cores with the model caps end-to-end at {out['cpu_bound_ceiling_img_s']:.1f} img/s; featx reaches "
        f"{out['featx_vs_ceiling']:.2f}x of that, the model waited for images {out['featx_model_wait_share']:.0%} "
        "of the time"
    )
    if a.rss:
        print(
            f"peak RSS 1k {out['rss_mb']['1000']:.0f} MB, 10k {out['rss_mb']['10000']:.0f} MB: "
            f"{out['rss_10k_vs_1k']:.2f}x (goal within 1.15x)"
        )
    print(f"-> {dest}")


if __name__ == "__main__":
    main()
