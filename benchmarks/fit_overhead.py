"""featx fit's overhead over a bare ``sklearn.model_selection.cross_validate`` of the same estimator.

One store of 10,000 x 2,048 float32 features (2,500 subjects x 4 images, a weak signal
in 32 columns, seeded). Per round, interleaved, each in the same warmed process:

* ``bare``  : ``cross_validate(estimator, X, y, groups=subjects, cv=StratifiedGroupKFold(10,
              shuffle=True, random_state=0), scoring="roc_auc")`` on the array already in memory
              (the estimator is featx's logreg head: StandardScaler + LogisticRegression(C=1e-2)):
              what a script that only wants fold AUCs does; its folds are featx's (checked);
* ``featx`` : ``run_fit`` end to end with its defaults: read the store, build the grouped
              folds, cross-validate (out-of-fold probabilities), pooled + per-fold + subject-level
              metrics, DeLong CIs, 1,000 subject bootstrap resamples with the ROC band, and (with
              ``--out``) results.json, folds.json, the out-of-fold CSV, the plots and the HTML page;
* ``featx_noboot`` : the same with ``bootstrap=0`` (DeLong CIs only), to show where the time goes.

Ratios are of medians over ``--repeats`` rounds. featx runs with ``jobs=1`` here, like the bare
script: this measures its overhead, not its parallelism.

``--jobs-scaling`` measures that instead: ``featx bench`` of all 8 heads on one feature set
(``--n`` x ``--dim``, 10-fold CV), ``jobs=1`` against ``jobs=`` every usable core, interleaved, and
checks that every cell's numbers are identical.

    python benchmarks/fit_overhead.py                  # 10 folds, 3 rounds
    python benchmarks/fit_overhead.py --jobs-scaling --n 2000 --dim 256 --out-name bench_jobs
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_info  # noqa: E402

HERE = Path(__file__).resolve().parent


def make_store(path: Path, n: int, d: int, seed: int = 0) -> None:
    from featx.dataset.manifest import Manifest, Sample
    from featx.store.writer import store_writer

    rng = np.random.default_rng(seed)
    per = 4
    subj_label = rng.integers(0, 2, n // per)
    y = np.repeat(subj_label, per)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, :32] += 0.15 * y[:, None]
    man = Manifest(
        [
            Sample(sample_id=f"s{i:05d}", path=path.parent / f"{i}.png", label="ab"[y[i]], subject=f"p{i // per:05d}")
            for i in range(n)
        ]
    )
    with store_writer(path) as w, w.transaction() as st:
        rows = st.add_samples(man)
        st.create_feature_set("emb", d, {"kind": "cnn"}, "id", kind="cnn")
        st.write("emb", rows, X)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--cv", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out-name", default="fit_overhead")
    ap.add_argument("--jobs-scaling", action="store_true", help="bench of 8 heads: --jobs 1 vs every core")
    args = ap.parse_args()
    if args.jobs_scaling:
        return jobs_scaling(args)

    from sklearn.model_selection import StratifiedGroupKFold, cross_validate

    from featx.api import fit as run_fit
    from featx.evaluate.heads.registry import build_head
    from featx.store.store import FeatureStore

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "f.h5"
        make_store(store, args.n, args.dim)
        with FeatureStore(store) as st:
            fs = st.load("emb")
        first = run_fit(store, "emb", cv=args.cv, bootstrap=0, jobs=1)  # warm-up; gives the folds
        fold_of = np.array([first.folds["fold_of"][i][0] for i in fs.ids])
        splits = [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(args.cv)]
        y = (fs.labels == "b").astype(int)
        est, _ = build_head("logreg", 0)

        def bare():  # the same splitter, seed and groups: featx's folds are these
            cv = StratifiedGroupKFold(args.cv, shuffle=True, random_state=0)
            return cross_validate(est, fs.X, y, groups=fs.subjects, cv=cv, scoring="roc_auc")["test_score"].mean()

        got = [te for _, te in StratifiedGroupKFold(args.cv, shuffle=True, random_state=0).split(fs.X, y, fs.subjects)]
        assert all(np.array_equal(a, b) for (_, a), b in zip(splits, got)), "featx's folds differ from the splitter's"

        def featx(n_boot, out):
            return run_fit(store, "emb", cv=args.cv, bootstrap=n_boot, out=out, jobs=1).cv.per_fold["auc"].mean

        runs = {
            "bare": lambda: bare(),
            "featx_noboot": lambda: featx(0, None),
            "featx": lambda: featx(1000, None),
            "featx_with_report": lambda: featx(1000, Path(tmp) / "out"),
        }
        times = {k: [] for k in runs}
        scores = {}
        for r in range(args.repeats):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                scores[name] = float(fn())
                times[name].append(time.perf_counter() - t0)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: med[k] / med["bare"] for k in med if k != "bare"}
    result = {
        "benchmark": "fit_overhead",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "data": {"n": args.n, "dim": args.dim, "subjects": args.n // 4, "cv": args.cv, "head": "logreg"},
        "seconds": times,
        "median_s": med,
        "ratio_vs_bare": ratios,
        "goal": "featx / bare <= 1.2",
        "mean_fold_auc": scores,
        "command": f"python benchmarks/fit_overhead.py --n {args.n} --dim {args.dim} --cv {args.cv} --repeats {args.repeats}",
    }
    out = HERE / "results" / f"{args.out_name}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({"median_s": med, "ratio_vs_bare": ratios, "mean_fold_auc": scores}, indent=1))
    print(f"featx fit / bare cross_validate: {ratios['featx']:.2f}x (goal <= 1.2x); wrote {out}")


def jobs_scaling(args) -> None:
    from featx.api import bench
    from featx.evaluate.protocol.parallel import usable_cores

    cores = usable_cores()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "f.h5"
        make_store(store, args.n, args.dim)
        times, cells = {1: [], cores: []}, {}
        for r in range(args.repeats):
            for jobs in times:
                t0 = time.perf_counter()
                res = bench(store, "emb", cv=args.cv, bootstrap=200, jobs=jobs)
                times[jobs].append(time.perf_counter() - t0)
                cells[jobs] = [(c.head, c.cv.pooled.auc, c.fold_auc) for c in res.cells]
            print(f"round {r + 1}: " + ", ".join(f"jobs {j} {v[-1]:.1f}s" for j, v in times.items()), flush=True)
    identical = cells[1] == cells[cores]
    med = {j: statistics.median(v) for j, v in times.items()}
    result = {
        "benchmark": "bench_jobs",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "usable_cores": cores,
        "data": {"n": args.n, "dim": args.dim, "cv": args.cv, "heads": 8, "bootstrap": 200},
        "seconds": {str(j): v for j, v in times.items()},
        "median_s": {str(j): v for j, v in med.items()},
        "speedup": med[1] / med[cores],
        "identical_numbers": identical,
        "goal": ">= 1.7x on 2 cores, identical numbers",
        "cells": [{"head": h, "cv_auc": a} for h, a, _ in cells[1]],
        "command": f"python benchmarks/fit_overhead.py --jobs-scaling --n {args.n} --dim {args.dim} --repeats "
        f"{args.repeats} --out-name {args.out_name}",
    }
    out = HERE / "results" / f"{args.out_name}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"bench of 8 heads, jobs {cores} vs 1: {result['speedup']:.2f}x, identical numbers: {identical}; wrote {out}")


if __name__ == "__main__":
    main()
