"""Accuracy on BreastMNIST's official split: which configuration featx selects by CV, and what it scores once on test.

Issue 21 item 6. On the demo's data (BreastMNIST, 546 train + 78 val images in the CV, 156 test images):

* features: EfficientNet-Lite0/1/2 (real ImageNet weights, offline), Lite0 with hflip TTA, pyradiomics
  (preset ``default``, 2D, whole-image masks: BreastMNIST has no lesion masks), early fusion of CNN and
  radiomics (``A+B``) and of the three Lites;
* heads: logreg, svm-rbf, rf (``--heads``);
* one ``featx bench`` on identical 10-fold folds of train+val, with ``--select nested`` and ``--ensemble 3``.

It reports every cell's CV AUC (DeLong CI and bootstrap CI), the nested estimate of "take the best cell", and the
held-out test AUC of the configuration chosen by CV (the top cell by CV AUC; the test split is never used to
choose anything), beside the published references: MedMNIST v2 ResNet-18 (28) 0.901 and Google AutoML Vision
0.919. Each cell's test AUC is listed too, for the record, and never used to choose.

    python benchmarks/accuracy.py                      # about 10-15 min on 2 cores
    python benchmarks/accuracy.py --heads logreg --quick   # a minute: Lite0, radiomics and their fusion

Writes ``benchmarks/results/accuracy_breastmnist.json`` (and the bench's report under ``--work``).
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

REFERENCES = {"MedMNIST v2 ResNet-18 (28), trained end to end": 0.901, "MedMNIST v2 Google AutoML Vision": 0.919}
GOAL = ("MedMNIST v2 Google AutoML Vision", 0.919)


def _auc(m) -> dict | None:
    if m is None or m.auc is None:
        return None
    return {
        "auc": round(m.auc, 4),
        "delong_ci": [round(v, 4) for v in m.auc_ci] if m.auc_ci else None,
        "bootstrap_ci": [round(v, 4) for v in m.ci["auc"]] if "auc" in m.ci else None,
    }


def main() -> None:
    from featx import api
    from featx.demo.demo import POSITIVE, write_demo_images

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=HERE / ".data" / "accuracy")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "accuracy_breastmnist.json")
    ap.add_argument("--heads", default="logreg,svm-rbf,rf")
    ap.add_argument("--cv", type=int, default=10)
    ap.add_argument("--ensemble", type=int, default=3)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="Lite0, radiomics and their fusion only")
    args = ap.parse_args()

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    write_demo_images(work)
    manifest_csv = work / "manifest.csv"
    store, models = work / "features.h5", work / "models_onnx"
    t0 = time.perf_counter()
    backbones = (
        ["efficientnet_lite0"] if args.quick else ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    )
    names, timing = {}, {}
    for b in backbones:
        s = api.extract(manifest_csv, b, store, models_dir=models)
        names[b], timing[b] = s.feature_set, s.wall_s
    if not args.quick:
        s = api.extract(
            manifest_csv, "efficientnet_lite0", store, models_dir=models, tta="hflip", name="efficientnet_lite0.hflip"
        )
        names["lite0_tta"], timing["lite0_tta"] = s.feature_set, s.wall_s
    r = api.radiomics(manifest_csv, store, auto_mask="whole", mode="2d")
    names["radiomics"], timing["radiomics"] = r.feature_set, r.wall_s
    lite0, rad = names["efficientnet_lite0"], names["radiomics"]
    sets = [names[k] for k in names] + [f"{lite0}+{rad}"]
    if not args.quick:
        sets += [f"{names['efficientnet_lite2']}+{rad}", "+".join(names[b] for b in backbones)]
    t_features = time.perf_counter() - t0

    t1 = time.perf_counter()
    res = api.bench(
        store,
        sets,
        heads=args.heads.split(","),
        cv=args.cv,
        seed=0,
        positive=POSITIVE,
        bootstrap=args.bootstrap,
        select="nested",
        ensemble=args.ensemble,
        out=work / "bench",
    )
    t_bench = time.perf_counter() - t1
    sel = res.selection
    cells = [
        {
            "rank": c.rank,
            "row": c.title,
            "kind": c.kind,
            "cv": _auc(c.cv.pooled),
            "cv_brier": round(c.cv.pooled.brier, 4) if c.cv.pooled.brier is not None else None,
            "test_for_the_record": _auc(c.test),
            "members": list(c.members) or None,
        }
        for c in res.cells
    ]
    top = res.cells[0]
    selected_test = sel.test.auc if sel.test is not None else None
    result = {
        "benchmark": "accuracy",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/accuracy.py " + " ".join(sys.argv[1:]),
        "data": "BreastMNIST (MedMNIST v2, 28 px), official split: CV on train+val, test scored once",
        "protocol": res.protocol.folds,
        "n_dev": res.n_dev,
        "n_test": res.n_test,
        "cells": cells,
        "nested": {
            "candidates": sel.candidates,
            "naive_best": sel.naive_best,
            "naive_cv_auc": round(sel.naive_auc, 4),
            "nested_cv": _auc(sel.nested.pooled),
            "gap": round(sel.gap, 4) if sel.gap is not None else None,
            "chosen_per_fold": sel.chosen_counts,
            "quote": sel.quote,
        },
        "selected_by_cv": {"config": sel.selected, "test": _auc(sel.test)},
        "top_row_by_cv_including_ensembles": {"row": top.title, "cv": _auc(top.cv.pooled), "test": _auc(top.test)},
        "references_test_auc": REFERENCES,
        "goal": {
            "what": f"test AUC of the CV-selected configuration >= {GOAL[1]} ({GOAL[0]})",
            "selected_test_auc": selected_test,
            "met": selected_test is not None and selected_test >= GOAL[1],
            "margin": round(selected_test - GOAL[1], 4) if selected_test is not None else None,
        },
        "seconds": {
            "features": round(t_features, 1),
            "bench": round(t_bench, 1),
            **{k: round(v, 1) for k, v in timing.items()},
        },
        "report": res.outputs["report"] if res.outputs else None,
        "cpu": cpu_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{'rank':>4}  {'row':60s} {'CV AUC (DeLong 95% CI)':28s} test AUC (record only)")
    for c in cells:
        cv, te = c["cv"], c["test_for_the_record"]
        ci = f"({cv['delong_ci'][0]:.3f}-{cv['delong_ci'][1]:.3f})" if cv and cv["delong_ci"] else ""
        print(f"{c['rank']:>4}  {c['row'][:60]:60s} {cv['auc']:.3f} {ci:20s}  {te['auc'] if te else '-'}")
    print(sel.quote)
    print(json.dumps({"selected_by_cv": result["selected_by_cv"], "goal": result["goal"]}, indent=1))
    print(f"ratio selected test AUC / AutoML Vision: {selected_test / GOAL[1]:.4f}" if selected_test else "")


if __name__ == "__main__":
    main()
