"""Fine-tuning vs frozen features on the demo data, on identical folds: accuracy and wall time.

Runs ``featx finetune`` at each ``--freeze`` level (skipping a level whose output folder
already holds a finished run with the same settings), times the frozen-feature pipeline
(``featx extract`` into a fresh store + ``featx fit --head logreg``) on the same machine,
then ``featx bench --finetuned ...`` puts every row on the same folds. Writes
``benchmarks/results/finetune_demo.json`` and prints each row with its cost as a ratio to
the frozen pipeline's wall time.

    featx demo --out featx-demo
    python benchmarks/finetune.py --demo featx-demo --out ft-bench --freeze all,3,0 --epochs 8 --cv 5 --input-size 112
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_info  # noqa: E402

FEATX = str(Path(sys.executable).with_name("featx"))
ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "1000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000"}


def sh(*args) -> float:
    t = time.perf_counter()
    proc = subprocess.run([FEATX, *map(str, args)], capture_output=True, text=True, env=ENV)
    if proc.returncode:
        sys.exit(f"{' '.join(map(str, args))} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", default="featx-demo", help="folder written by 'featx demo'")
    ap.add_argument("--out", default="ft-bench")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--freeze", default="all,3,0")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--cv", type=int, default=5)
    ap.add_argument("--input-size", type=int, default=112)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "finetune_demo.json"))
    a = ap.parse_args()
    demo, out = Path(a.demo), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    common = ["--epochs", a.epochs, "--cv", a.cv, "--input-size", a.input_size, "--positive", "malignant"]
    runs = {}
    for level in a.freeze.split(","):
        run = out / f"{a.backbone}-f{level}"
        done = run / "results.json"
        ok = done.is_file() and (
            lambda r: (
                r["finetune"]["train"]["epochs"] == a.epochs
                and r["protocol"]["cv"] == a.cv
                and r["finetune"]["input_size"] == a.input_size
            )
        )(json.loads(done.read_text()))
        if not ok:
            shutil.rmtree(run, ignore_errors=True)
            sh("finetune", "-m", demo / "manifest.csv", "-b", a.backbone, "--freeze", level, "--out", run, *common)
        runs[level] = run
    # the frozen-feature pipeline, timed from scratch: extraction (ONNX export cached) + fit
    store = out / "frozen.h5"
    store.unlink(missing_ok=True)
    t_extract = sh(
        "extract", "-m", demo / "manifest.csv", "-b", a.backbone, "-s", store, "--models-dir", out / "models"
    )
    t_fit = sh("fit", "-s", store, "-f", a.backbone, "--head", "logreg", "--cv", a.cv, "--positive", "malignant")
    frozen_s = t_extract + t_fit
    sh(
        "bench",
        "-s",
        store,
        "-f",
        a.backbone,
        "--heads",
        "logreg,svm-rbf,xgb",
        "--cv",
        a.cv,
        "--positive",
        "malignant",
        "--out",
        out / "bench",
        *[x for r in runs.values() for x in ("--finetuned", r)],
    )
    bench = json.loads((out / "bench" / "results.json").read_text())
    rows = []
    for c in bench["cells"]:
        row = {
            "rank": c["rank"],
            "row": f"{c['feature_set']} + {c['head']}",
            "cv_auc": c["cv"]["pooled"]["auc"],
            "cv_auc_ci": c["cv"]["pooled"]["auc_ci"],
            "cv_accuracy": c["cv"]["pooled"]["accuracy"],
            "test_auc": (c["test"] or {}).get("auc"),
            "test_accuracy": (c["test"] or {}).get("accuracy"),
        }
        if c["kind"] == "finetune":
            ft = json.loads((Path(c["run"]) / "results.json").read_text())["finetune"]
            folds = [r["summary"] for r in ft["runs"] if r["repeat"] != "final"]
            row.update(
                wall_s=ft["seconds"],
                ratio_to_frozen=ft["seconds"] / frozen_s,
                s_per_epoch=sum(s["seconds_per_epoch"] for s in folds) / len(folds),
                best_acc=sum(s["best_acc"] for s in folds) / len(folds),
                mean_acc_after_convergence=sum(s["mean_acc_after_convergence"] for s in folds) / len(folds),
                var_acc_after_convergence=sum(s["var_acc_after_convergence"] for s in folds) / len(folds),
                first_epoch_reaching_mean=sum(s["first_epoch_reaching_mean"] for s in folds) / len(folds),
                trainable_parameters=ft["trainable_parameters"],
            )
        elif c["head"] == "logreg":
            row.update(wall_s=frozen_s, ratio_to_frozen=1.0)
        rows.append(row)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "cpu": cpu_info(),
        "backbone": a.backbone,
        "epochs": a.epochs,
        "cv": a.cv,
        "input_size_finetune": a.input_size,
        "frozen_extract_s": t_extract,
        "frozen_fit_s": t_fit,
        "folds": bench["protocol"]["folds"],
        "rows": rows,
        "comparisons": bench["comparisons"],
    }
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=2))
    print(f"frozen features + logreg: extract {t_extract:.0f} s + fit {t_fit:.0f} s = {frozen_s:.0f} s")
    for r in rows:
        cost = f"{r['wall_s']:.0f} s = {r['ratio_to_frozen']:.1f}x frozen" if "wall_s" in r else "(same features)"
        test = f"{r['test_auc']:.3f}" if r["test_auc"] is not None else "-"
        print(f"{r['rank']:>2} {r['row']:<42} CV AUC {r['cv_auc']:.3f}  test AUC {test}  {cost}")
    for c in bench["comparisons"]:
        d = c.get("delong") or {}
        print(f"{c['why']}: {c['a']} vs {c['b']}: DeLong p {d.get('p', float('nan')):.3g}")
    print(f"-> {a.json}")


if __name__ == "__main__":
    main()
