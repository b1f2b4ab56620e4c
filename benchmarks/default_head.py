"""Which head, and which regularisation, should ``featx fit`` default to? Measured on several real data sets (issue 28).

Data sets of different sizes and feature dimensions, CV on the development rows only (official train+val where a
split exists; no test row is used):

* BreastMNIST (624 ultrasound images): EfficientNet-Lite0 (1,280-d, real ImageNet weights) and pyradiomics
  ``default`` (2D, whole-image masks, ~100-d);
* VesselMNIST3D (1,526 vessel segments, 11% aneurysms): Lite0 on 2.5D images (the three maximum-intensity
  projections of each 28^3 volume as the three channels), 1,280-d;
* Wisconsin diagnostic breast cancer (scikit-learn's copy of the UCI set: 569 tumours, 30 hand-crafted nuclear
  features), the radiomics-like case;
* each of the above subsampled to 100 rows (stratified, 5 draws), the small-study regime.

Heads: ``logreg`` as it was (C = 0.01, chosen on BreastMNIST alone), ``logreg`` with C chosen by an inner grouped
CV of each training fold (``--tune``: C in 1e-4 .. 1), and the other registered heads at their defaults. 10-fold CV
(5-fold on the subsamples), pooled out-of-fold AUC.

    python benchmarks/default_head.py          # about 10 minutes on 2 cores

Writes ``benchmarks/results/default_head.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import numpy as np  # noqa: E402

from featx import api  # noqa: E402
from featx.dataset.manifest import Manifest, Sample  # noqa: E402
from featx.engines.cpu import cpu_info  # noqa: E402
from featx.store.writer import store_writer  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "data"
HEADS = ["logreg", "svm-rbf", "rf", "lda", "knn", "xgb"]


def _store(path: Path, X: np.ndarray, y: np.ndarray, kind: str) -> Path:
    samples = [Sample(sample_id=f"r{i:05d}", path=path.parent / f"r{i}.png", label=str(v)) for i, v in enumerate(y)]
    names = [f"f{i}" for i in range(X.shape[1])] if kind == "radiomics" else None
    with store_writer(path) as w, w.transaction() as st:
        rows = st.add_samples(Manifest(samples))
        st.create_feature_set("x", X.shape[1], {"kind": kind}, "x", kind=kind, dtype="float64", feature_names=names)
        st.write("x", rows, X)
    return path


def _breastmnist(work: Path, models_dir) -> dict:
    from featx.demo.demo import write_demo_images

    manifest = write_demo_images(work / "bm")
    dev = Manifest([s for s in manifest if s.split != "test"])
    dev.to_csv(work / "bm" / "dev.csv")
    store = work / "bm" / "f.h5"
    kw = {} if models_dir is None else {"models_dir": models_dir}
    api.extract(work / "bm" / "dev.csv", "efficientnet_lite0", store, **kw)
    api.radiomics(work / "bm" / "dev.csv", store, auto_mask="whole", mode="2d")
    out = {}
    for name, kind in (("efficientnet_lite0", "cnn"), ("radiomics.default", "radiomics")):
        fs = api.load_features(store, name)
        fs, _ = fs.without_nonfinite_columns()
        out[f"breastmnist {name}"] = (fs.X.astype(np.float64), fs.labels, kind)
    return out


def _vessel(work: Path, models_dir) -> dict:
    from PIL import Image

    data = np.load(SHARED / "medmnist3d" / "vesselmnist3d.npz")
    folder = work / "vessel"
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for split in ("train", "val"):
        for i, (vol, lab) in enumerate(zip(data[f"{split}_images"], data[f"{split}_labels"][:, 0])):
            path = folder / f"{split}_{i:04d}.png"
            if not path.is_file():  # 2.5D: the three maximum-intensity projections as the three channels
                Image.fromarray(np.stack([vol.max(axis=a) for a in range(3)], axis=-1).astype(np.uint8)).save(path)
            samples.append(Sample(sample_id=f"{split}_{i:04d}", path=path, label=str(int(lab))))
    Manifest(samples).to_csv(folder / "m.csv")
    kw = {} if models_dir is None else {"models_dir": models_dir}
    api.extract(folder / "m.csv", "efficientnet_lite0", folder / "f.h5", **kw)
    fs = api.load_features(folder / "f.h5", "efficientnet_lite0")
    return {"vesselmnist3d 2.5D MIP efficientnet_lite0": (fs.X.astype(np.float64), fs.labels, "cnn")}


def _wdbc() -> dict:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return {"wisconsin breast cancer (30 nuclear features)": (d.data, d.target.astype(str), "radiomics")}


def _run(store: Path, cv: int, seed: int) -> dict:
    res = api.bench(store, ["x"], HEADS, cv=cv, bootstrap=0, seed=seed)
    out = {c.head: c.cv.pooled.auc for c in res.cells}
    tuned = api.fit(store, "x", head="logreg", cv=cv, bootstrap=0, seed=seed, tune=True)
    out["logreg (C by inner CV)"] = tuned.cv.pooled.auc
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=HERE / ".data" / "default_head")
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "default_head.json")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sets = {**_breastmnist(args.work, args.models_dir), **_vessel(args.work, args.models_dir), **_wdbc()}
    results = {}
    t0 = time.perf_counter()
    for name, (X, y, kind) in sets.items():
        store = _store(args.work / f"{abs(hash(name))}.h5", X, y, kind)
        results[name] = {"n": len(y), "dim": X.shape[1], "auc": _run(store, 10, 0)}
        print(name, results[name], flush=True)
        rng = np.random.default_rng(0)
        draws = []
        for d in range(args.draws):  # 100 rows, stratified
            pick = np.concatenate(
                [rng.choice(np.flatnonzero(y == c), round(100 * (y == c).mean()), replace=False) for c in np.unique(y)]
            )
            small = _store(args.work / f"{abs(hash(name))}_{d}.h5", X[pick], y[pick], kind)
            draws.append(_run(small, 5, d))
        heads = draws[0].keys()
        results[f"{name} (100 rows)"] = {
            "n": 100,
            "dim": X.shape[1],
            "auc": {h: float(np.mean([dr[h] for dr in draws])) for h in heads},
            "auc_sd": {h: float(np.std([dr[h] for dr in draws])) for h in heads},
        }
        print(name, "(100 rows)", results[f"{name} (100 rows)"]["auc"], flush=True)
    heads = next(iter(results.values()))["auc"].keys()
    ranks = {h: [] for h in heads}
    for r in results.values():
        order = sorted(r["auc"], key=lambda h: -r["auc"][h])
        for h in heads:
            ranks[h].append(order.index(h) + 1)
    summary = {
        h: {
            "mean_rank": float(np.mean(ranks[h])),
            "mean_auc": float(np.mean([r["auc"][h] for r in results.values()])),
            "worst_gap_to_best": float(max(max(r["auc"].values()) - r["auc"][h] for r in results.values())),
        }
        for h in heads
    }
    out = {
        "what": "CV AUC of fit's candidate default heads on several real data sets (development rows only)",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "seconds": round(time.perf_counter() - t0, 1),
        "results": results,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    for h, s in sorted(summary.items(), key=lambda kv: kv[1]["mean_rank"]):
        print(
            f"{h:24s} mean rank {s['mean_rank']:.2f}  mean AUC {s['mean_auc']:.3f}  worst gap {s['worst_gap_to_best']:.3f}"
        )


if __name__ == "__main__":
    main()
