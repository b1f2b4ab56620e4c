"""Survival end to end on the stand-in: EfficientNet-Lite0 and radiomics features of real images, a planted hazard,
censoring, two images per patient; every survival head, nested selection, and a label-efficiency curve.

Issue 30 item 2. ``featx.demo.standins.survival`` (BreastMNIST images, CC BY 4.0; 80 patients x 2 images; the
event hazard 6x higher for one class; uniform censoring over 6-60 months). Both feature sets x coxnet, coxph, rsf,
gbs (``--pca 16`` for the three that are not penalised by their own inner CV, as on any 1,280-d embedding of 128
training rows), in 5-fold CV grouped by patient and stratified by event; ``--select nested``; ``--train-sizes
8,16,all``. The planted signal is a class, so a perfect model reaches only the C-index that class gives: the
figure printed as ``oracle`` (Harrell's C of the true class as the risk score).

    python benchmarks/survival_standin.py           # about 5 minutes on 2 cores

Writes ``benchmarks/results/survival_standin.json``. The stand-in is not medical data: none of these numbers is a
finding; they show what the pipeline recovers of a known effect.
"""

from __future__ import annotations

import argparse
import csv
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
    import numpy as np
    from sksurv.metrics import concordance_index_censored

    from featx import api
    from featx.demo.standins import survival

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=HERE / ".data" / "survival_standin")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "survival_standin.json")
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    manifest = survival(work / "data")
    store = work / "features.h5"
    t0 = time.perf_counter()
    deep = api.extract(manifest, "efficientnet_lite0", store, models_dir=work / "models_onnx").feature_set
    rad = api.radiomics(manifest, store, auto_mask="whole", mode="2d").feature_set
    t1 = time.perf_counter()
    target = dict(target="survival", time="os_months", event="death", cv=5, seed=0, bootstrap=args.bootstrap)
    cells = {}
    for heads, pca in ((["coxnet"], None), (["coxph", "rsf", "gbs"], 16)):
        res = api.bench(store, [deep, rad], heads=heads, pca=pca, out=work / f"bench_{heads[0]}", **target)
        for c in res.cells:
            m = c.cv.pooled
            cells[c.title + (f" (pca {pca})" if pca else "")] = {
                "harrell_c": m.harrell_c,
                "harrell_c_ci": m.ci.get("harrell_c"),
                "uno_c": m.uno_c,
                "td_auc": dict(m.td_auc),
                "ibs": m.ibs,
                "logrank_p": (m.risk_groups.get("logrank") or {}).get("p"),
                "seconds": round(c.seconds, 1),
            }
    nested = api.bench(
        store, [deep, rad], heads=["coxnet"], select="nested", train_sizes="8,16,all", draws=3, out=work / "nested",
        **target,
    )  # fmt: skip
    t2 = time.perf_counter()
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    per_patient = {r["subject"]: r for r in rows}
    event = np.array([int(r["death"]) == 1 for r in per_patient.values()])
    months = np.array([float(r["os_months"]) for r in per_patient.values()])
    high = np.array([int(s[1:]) % 2 == 0 for s in per_patient])  # the stand-in's high-hazard class: even patients
    oracle = float(concordance_index_censored(event, months, high.astype(float))[0])
    result = {
        "benchmark": "survival_standin",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/survival_standin.py " + " ".join(sys.argv[1:]),
        "data": "featx.demo.standins.survival: 80 patients x 2 BreastMNIST images, hazard ratio 6 by class, "
        "uniform censoring 6-60 months (a stand-in, not medical data)",
        "events": int(event.sum()),
        "oracle_harrell_c": round(oracle, 4),
        "protocol": nested.protocol.folds,
        "cells": cells,
        "nested": {"quote": nested.selection.quote, "chosen": list(nested.selection.chosen)},
        "learning": nested.learning,
        "comparisons": [
            {
                "why": c.why,
                "a": c.a,
                "b": c.b,
                "delta_c": c.bootstrap.diff if c.bootstrap else None,
                "ci": [c.bootstrap.lo, c.bootstrap.hi] if c.bootstrap else None,
                "p": c.bootstrap.p if c.bootstrap else None,
            }
            for c in nested.comparisons
        ],  # fmt: skip
        "seconds": {"features": round(t1 - t0, 1), "benches": round(t2 - t1, 1)},
        "cpu": cpu_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float))
    print(f"oracle (the true class as risk): Harrell's C {oracle:.3f}; {int(event.sum())} events of 80")
    for title, c in cells.items():
        ci = c["harrell_c_ci"] or (float("nan"), float("nan"))
        print(
            f"{title:45s} C {c['harrell_c']:.3f} [{ci[0]:.3f}-{ci[1]:.3f}]  IBS {c['ibs']:.3f}  log-rank p {c['logrank_p']:.2g}"
        )
    print(nested.selection.quote)
    for t in nested.learning["tests"]:
        print(
            f"size {t['size']:>4}: {t['deep']} - {t['radiomics']} = {t['harrell_c_difference']:+.3f} {t['ci']} p={t['p']}"
        )


if __name__ == "__main__":
    main()
