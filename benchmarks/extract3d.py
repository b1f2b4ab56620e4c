"""3D extraction speed: lesions/s per engine and precision on this CPU, fidelity against torch fp32, and the share of
the time spent reading, resampling and cropping against inference.

Issue 29. The lesions are real: ``--n`` copies (distinct files, so nothing is served from a cache) of pyradiomics'
brain MR volume (256 x 256 x 25, 0.94 x 0.94 x 6.5 mm) with its lesion mask, one lesion row each, so each crop
resamples an anisotropic volume to the encoder's 1 mm grid. For each 3D source (random weights: speed and numerical
agreement do not depend on the weights' values) and each engine:

* ``lesions_per_s``: ``featx extract``'s loop (read, resample, crop, normalise, infer, write), model set-up apart;
* ``cosine_vs_torch_fp32``: each lesion's features against torch fp32's (min and median over the lesions); for a
  reduced precision also the fidelity gate's own figures (calibration rows), which decide whether it may run;
* ``crop_ms``: one lesion's read + resample + crop + intensity, timed alone on one thread (``LesionLoader``);
  ``infer_ms``: the engine's time in the model per lesion (``compute_s / n``); ``crop_share`` = crop / (crop + infer).

Rounds are interleaved (``--rounds``); figures are medians over rounds; ratios are against ONNX Runtime fp32 measured
in the same run.

    python benchmarks/extract3d.py                             # medicalnet:resnet10 and fmcib, 24 lesions, 3 rounds
    python benchmarks/extract3d.py --sources medicalnet:resnet10 --n 8 --rounds 1   # a minute

Writes ``benchmarks/results/extract3d_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
from featx.engines.cpu import cpu_info  # noqa: E402  (benchmarks/machine.py's record)

BRAIN = HERE.parent.parent / "shared" / "data" / "pyradiomics_brain"
ENGINES = [("torch", "fp32"), ("onnx", "fp32"), ("openvino", "fp32"), ("torch", "bf16"), ("openvino", "bf16"),
           ("openvino", "int8"), ("onnx", "int8")]  # fmt: skip


def lesion_rows(work: Path, n: int) -> Path:
    """``n`` distinct copies of the brain MR volume and its lesion mask, one lesion row each."""
    from featx.dataset.manifest import Manifest, Sample

    vols = work / "volumes"
    vols.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img, mask = vols / f"brain{i:03d}.nrrd", vols / f"brain{i:03d}_label.nrrd"
        if not mask.is_file():
            shutil.copyfile(BRAIN / "brain1_image.nrrd", img)
            shutil.copyfile(BRAIN / "brain1_label.nrrd", mask)
        rows.append(Sample(sample_id=f"lesion{i:03d}", path=img, mask=mask, label="ab"[i % 2], subject=f"p{i:03d}"))
    return Manifest(rows).to_csv(work / "lesions.csv")


def crop_ms(manifest_csv: Path, source: str) -> float:
    """Median ms of one lesion's read + resample + crop + intensity, alone on one thread, no cache hits."""
    from featx.backbones.resolve import resolve_backbone
    from featx.dataset.manifest import Manifest
    from featx.images.lesion import LesionLoader

    spec = resolve_backbone(source, weights="random").spec
    times = []
    for s in Manifest.from_csv(manifest_csv):
        loader = LesionLoader(spec.volume, cache_volumes=1)  # a fresh cache: every row is read and resampled
        t = time.perf_counter()
        loader(s)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    import numpy as np

    from featx import api
    from featx.engines.fidelity import row_cosines

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=HERE / ".data" / "extract3d")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "extract3d_cpu.json")
    ap.add_argument("--sources", default="medicalnet:resnet10,fmcib")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    man = lesion_rows(work, args.n)
    models = work / "models_onnx"
    runs: dict = {}
    for rnd in range(args.rounds):
        for source in args.sources.split(","):
            for runtime, precision in ENGINES:
                store = work / f"r{rnd}.h5"
                key = f"{source}|{runtime}|{precision}"
                t = time.perf_counter()
                try:
                    s = api.extract(
                        man, source, store, weights="random", runtime=runtime, precision=precision,
                        models_dir=models, batch_size=args.batch_size, name=key.replace("|", ".").replace(":", "_"),
                    )  # fmt: skip
                except Exception as e:  # a precision this CPU or engine refuses: recorded, never hidden
                    runs.setdefault(key, []).append({"refused": f"{type(e).__name__}: {str(e)[:300]}"})
                    print(f"{key:40s} refused: {str(e)[:120]}", flush=True)
                    continue
                X = api.load_features(store, s.feature_set).X
                runs.setdefault(key, []).append(
                    {
                        "lesions_per_s": s.images_per_s,
                        "loop_s": s.loop_s,
                        "compute_s": s.compute_s,
                        "wall_s": time.perf_counter() - t,
                        "provider": s.provider,
                        "fidelity_gate": s.fidelity,
                        "X": X,
                    }
                )
                print(f"{key:40s} round {rnd}: {s.images_per_s:6.2f} lesions/s ({s.provider})", flush=True)
            if rnd == 0:
                runs[f"{source}|crop"] = crop_ms(man, source)
        for f in work.glob(f"r{rnd}.h5*"):
            f.unlink()

    results = []
    for source in args.sources.split(","):
        ref = runs[f"{source}|torch|fp32"][0]["X"]
        base = statistics.median(r["lesions_per_s"] for r in runs[f"{source}|onnx|fp32"] if "X" in r)
        crop = runs[f"{source}|crop"]
        for runtime, precision in ENGINES:
            done = [r for r in runs[f"{source}|{runtime}|{precision}"] if "X" in r]
            if not done:
                results.append(
                    {"source": source, "runtime": runtime, "precision": precision,
                     "refused": runs[f"{source}|{runtime}|{precision}"][0]["refused"]}
                )  # fmt: skip
                continue
            cos = row_cosines(done[0]["X"], ref)
            rate = statistics.median(r["lesions_per_s"] for r in done)
            infer = statistics.median(1000 * r["compute_s"] / args.n for r in done)
            results.append(
                {
                    "source": source,
                    "runtime": runtime,
                    "precision": precision,
                    "provider": done[0]["provider"],
                    "lesions_per_s": round(rate, 3),
                    "ratio_vs_onnx_fp32": round(rate / base, 3),
                    "rounds": [round(r["lesions_per_s"], 3) for r in done],
                    "cosine_vs_torch_fp32": {
                        "min": round(float(cos.min()), 6),
                        "median": round(float(np.median(cos)), 6),
                    },
                    "fidelity_gate": done[0]["fidelity_gate"],
                    "crop_ms": round(crop, 1),
                    "infer_ms": round(infer, 1),
                    "crop_share": round(crop / (crop + infer), 3),
                }
            )
    out = {
        "benchmark": "extract3d",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/extract3d.py " + " ".join(sys.argv[1:]),
        "data": f"{args.n} copies of pyradiomics brain1 MR (256x256x25, 0.94x0.94x6.5 mm) with its lesion mask",
        "weights": "random (speed and agreement only)",
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "results": results,
        "cpu": cpu_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    print(f"\n{'source':22s} {'engine':18s} {'lesions/s':>9s} {'x onnx32':>8s} {'min cos':>9s} {'crop ms':>8s} "
          f"{'infer ms':>8s} {'crop share':>10s}")  # fmt: skip
    for r in results:
        engine = f"{r['runtime']} {r['precision']}"
        if "refused" in r:
            print(f"{r['source']:22s} {engine:18s} refused: {r['refused'][:80]}")
            continue
        print(
            f"{r['source']:22s} {engine:18s} {r['lesions_per_s']:9.2f} {r['ratio_vs_onnx_fp32']:8.2f} "
            f"{r['cosine_vs_torch_fp32']['min']:9.5f} {r['crop_ms']:8.1f} {r['infer_ms']:8.1f} {r['crop_share']:10.2f}"
        )


if __name__ == "__main__":
    main()
