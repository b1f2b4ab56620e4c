"""Label efficiency on the demo's data: how many labelled images it takes, and at which size frozen EfficientNet-Lite0
features beat radiomics; the few-shot heads (knn, simpleshot) beside logistic regression at every size.

Issue 30 items 4 and 5. BreastMNIST (MedMNIST v2, 28 px; the official train+val, 624 images, in 10-fold CV; no
patient ids, so each image is its own subject): EfficientNet-Lite0 (real ImageNet weights, offline) and pyradiomics
(`default`, 2D, whole-image masks), x logreg, knn (cosine, DINOv2's k-NN), simpleshot; one ``featx bench
--train-sizes 4,8,16,32,64,all --draws 5``: at each size each training fold keeps that many images per class (5
random draws), and every model predicts the same outer folds. At each size the best Lite0 cell is tested against the
best radiomics cell (paired bootstrap over images of the draw-mean AUC difference).

    python benchmarks/label_efficiency.py            # about 3 minutes on 2 cores

Writes ``benchmarks/results/label_efficiency_breastmnist.json`` (and the bench's report, ``learning.png`` and
``learning.csv`` under ``--work``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the script's folder leaves sys.path (worker processes inherit it): benchmarks/radiomics.py would shadow pyradiomics
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
from featx.engines.cpu import cpu_info  # noqa: E402  (benchmarks/machine.py's record)


def main() -> None:
    from featx import api
    from featx.demo.demo import POSITIVE, write_demo_images

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=HERE / ".data" / "label_efficiency")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "label_efficiency_breastmnist.json")
    ap.add_argument("--heads", default="logreg,knn,simpleshot")
    ap.add_argument("--sizes", default="4,8,16,32,64,all")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    write_demo_images(work)
    manifest, store = work / "manifest.csv", work / "features.h5"
    t0 = time.perf_counter()
    deep = api.extract(manifest, "efficientnet_lite0", store, models_dir=work / "models_onnx").feature_set
    rad = api.radiomics(manifest, store, auto_mask="whole", mode="2d").feature_set
    t1 = time.perf_counter()
    res = api.bench(
        store,
        [deep, rad],
        heads=args.heads.split(","),
        cv=10,
        seed=0,
        positive=POSITIVE,
        bootstrap=args.bootstrap,
        train_sizes=args.sizes,
        draws=args.draws,
        out=work / "bench",
    )
    t2 = time.perf_counter()
    lc = res.learning
    result = {
        "benchmark": "label_efficiency",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/label_efficiency.py " + " ".join(sys.argv[1:]),
        "data": "BreastMNIST (MedMNIST v2, 28 px), official train+val (624 images) in 10-fold CV; images per class",
        "protocol": res.protocol.folds,
        "sizes": lc["sizes"],
        "draws": lc["draws"],
        "points": lc["points"],
        "paired_tests_best_deep_vs_best_radiomics": lc["tests"],
        "seconds": {"features": round(t1 - t0, 1), "bench": round(t2 - t1, 1)},
        "outputs": res.outputs,
        "cpu": cpu_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    heads = args.heads.split(",")
    print(f"{'size':>5} " + " ".join(f"{s[:5]}+{h:>10s}" for s in ("lite0", "rad") for h in heads))
    pts = {(p["features"], p["head"], p["size"]): p for p in lc["points"]}
    for size in lc["sizes"]:
        row = [pts[(f, h, size)]["auc"] for f in (deep, rad) for h in heads]
        print(f"{size:>5} " + " ".join(f"{v:16.3f}" for v in row))
    for t in lc["tests"]:
        print(f"size {t['size']:>4}: {t['deep']} - {t['radiomics']} = {t['auc_difference']:+.3f} {t['ci']} p={t['p']}")


if __name__ == "__main__":
    main()
