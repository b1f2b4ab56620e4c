"""Fidelity against downstream accuracy: what the fidelity gate's default threshold rests on.

For each backbone and each reduced precision this CPU runs (OpenVINO bf16, ONNX Runtime and OpenVINO
int8 calibrated on 128 of the images), featx extracts all 780 BreastMNIST images (the demo's data)
and compares every row with the fp32 features (ONNX Runtime): mean, 1st-percentile and minimum cosine,
and the same statistics on the 32 calibration images the gate itself would see. Beside them: the
demo's head (scaled logistic regression, C=0.01) in 10-fold CV on train+val for 3 seeds (mean CV
AUC) and the test AUC, for fp32 and each precision on identical folds.

    python benchmarks/fidelity.py                                   # Lite0/1/2 (real weights)
    python benchmarks/fidelity.py --backbones resnet50,timm:vit_small_patch14_dinov2 --weights random \
        --out-name fidelity_random --input-size 224

With ``--weights random`` the AUCs measure random features (still a downstream signal, but not one a
study would use); the cosines are what the gate sees either way. The gate never blocks here
(``min_fidelity`` is set to its lowest), so every precision is measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_info  # noqa: E402

PRECISIONS = (("onnx", "fp32"), ("openvino", "bf16"), ("onnx", "int8"), ("openvino", "int8"))


def cosines(a, b):
    import numpy as np

    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2")
    ap.add_argument("--weights", default="imagenet")
    ap.add_argument("--input-size", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out-name", default="fidelity_cpu")
    args = ap.parse_args()
    import numpy as np

    import featx.api as fx
    from featx.demo.demo import write_demo_images
    from featx.engines.openvino_runtime import cpu_capabilities

    caps = cpu_capabilities()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = write_demo_images(tmp / "demo")
        path = tmp / "demo" / "manifest.csv"
        ids = [s.sample_id for s in manifest]
        gate_rows = np.unique(np.linspace(0, len(ids) - 1, 32).astype(int))
        for backbone in args.backbones.split(","):
            store = tmp / f"{backbone.replace(':', '-')}.h5"
            extra = {"input_size": args.input_size} if args.input_size and backbone.startswith("timm:") else {}
            feats, rows_fp32 = {}, None
            for runtime, precision in PRECISIONS:
                if precision == "bf16" and "BF16" not in caps:
                    rows.append(
                        {"backbone": backbone, "runtime": runtime, "precision": precision, "skipped": "no bf16"}
                    )
                    continue
                name = f"{runtime}-{precision}"
                t0 = time.perf_counter()
                s = fx.extract(
                    path,
                    backbone,
                    store,
                    name=name,
                    weights=args.weights,
                    runtime=runtime,
                    precision=precision,
                    min_fidelity=1e-6,
                    models_dir=tmp / "models",
                    **extra,
                )
                feats[name] = fx.load_features(store, name).X
                aucs, tests = [], []
                for seed in range(args.seeds):
                    res = fx.fit(store, name, head="logreg", cv=10, seed=seed, positive="malignant", out=tmp / "r")
                    aucs.append(res.cv.pooled.auc)
                    tests.append(res.test.auc)
                row = {
                    "backbone": backbone,
                    "runtime": runtime,
                    "precision": precision,
                    "extract_s": time.perf_counter() - t0,
                    "img_per_s": s.images_per_s,
                    "cv_auc_mean": statistics.mean(aucs),
                    "cv_auc_by_seed": aucs,
                    "test_auc": tests[0],
                }
                if name != "onnx-fp32":
                    cos = cosines(feats[name], feats["onnx-fp32"])
                    g = cos[gate_rows]
                    row.update(
                        mean_cosine=float(cos.mean()),
                        p01_cosine=float(np.percentile(cos, 1)),
                        min_cosine=float(cos.min()),
                        gate_mean_cosine=float(g.mean()),
                        gate_min_cosine=float(g.min()),
                        delta_cv_auc=row["cv_auc_mean"] - rows_fp32["cv_auc_mean"],
                    )
                else:
                    rows_fp32 = row
                rows.append(row)
                print(
                    f"{backbone:28s} {runtime:8s} {precision:5s} cv AUC {row['cv_auc_mean']:.4f} test {row['test_auc']:.4f}"
                    + (
                        f"  cos mean {row['mean_cosine']:.4f} p01 {row['p01_cosine']:.4f} min {row['min_cosine']:.4f}"
                        if "mean_cosine" in row
                        else ""
                    )
                    + f"  {row['img_per_s']:.0f} img/s",
                    flush=True,
                )
    env = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "openvino_capabilities": caps,
        "weights": args.weights,
        "data": "BreastMNIST (MedMNIST v2), all 780 images, 28x28 upsampled",
        "head": "featx fit --head logreg (scaled, C=0.01), 10-fold CV on train+val, test split once",
        "seeds": args.seeds,
        "note": "cosines against ONNX Runtime fp32 features of the same images; gate_*: the 32 images the gate sees",
    }
    out = Path(__file__).parent / "results" / f"{args.out_name}.json"
    out.write_text(json.dumps({"environment": env, "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
