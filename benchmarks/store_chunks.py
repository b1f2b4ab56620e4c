"""Store layout benchmark: chunk rows x compression for the feature matrix X.

Real features (EfficientNet-Lite0 on the demo images, 1280-d; ``--store`` any featx
store) are tiled to ``--rows`` rows and written the way extraction writes them
(batches of 32 rows, then one commit), then read the way ``fit`` reads them (the whole
matrix) and as a random subset of 256 rows (``predict``/inspection). Medians of
``--repeats`` interleaved runs; each figure with its ratio to the current default.

    python benchmarks/store_chunks.py --store featx-demo/features.h5
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

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_info  # noqa: E402

from featx.store.open import open_store  # noqa: E402

HERE = Path(__file__).resolve().parent
CHUNKS = (64, 256, 1024)
COMPRESSION = ("none", "lzf", "gzip1")


def _features(store: str, rows: int) -> np.ndarray:
    with open_store(store) as st:
        X = st.load(st.feature_names()[0]).X
    return np.resize(X, (rows, X.shape[1])).astype(np.float32)


def _one(X: np.ndarray, chunk: int, comp: str, folder: Path) -> dict:
    path = folder / f"s_{chunk}_{comp}.h5"
    kw = (
        {}
        if comp == "none"
        else {"compression": "lzf"}
        if comp == "lzf"
        else {"compression": "gzip", "compression_opts": 1}
    )
    t0 = time.perf_counter()
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("X", shape=X.shape, dtype=np.float32, chunks=(chunk, X.shape[1]), fillvalue=np.nan, **kw)
        for i in range(0, len(X), 32):
            ds[i : i + 32] = X[i : i + 32]
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with h5py.File(path) as h5:
        full = h5["X"][:]
    read_s = time.perf_counter() - t0
    idx = np.sort(np.random.default_rng(0).choice(len(X), 256, replace=False))
    t0 = time.perf_counter()
    with h5py.File(path) as h5:
        part = h5["X"][idx]
    sub_s = time.perf_counter() - t0
    assert np.array_equal(full, X) and np.array_equal(part, X[idx])
    size = path.stat().st_size
    path.unlink()
    return {"write_s": write_s, "read_s": read_s, "read256_s": sub_s, "mb": size / 1e6}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default="featx-demo/features.h5")
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    X = _features(a.store, a.rows)
    runs = {(c, z): [] for c in CHUNKS for z in COMPRESSION}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.repeats):
            for c, z in runs:
                runs[(c, z)].append(_one(X, c, z, Path(tmp)))
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in runs.items()}
    base = med[(64, "none")]
    print(f"{a.rows} x {X.shape[1]} float32 ({X.nbytes / 1e6:.0f} MB raw); medians of {a.repeats}")
    print(f"{'chunk':>6} {'compression':<11} {'write s':>8} {'read s':>8} {'256 rows s':>10} {'MB':>7}")
    for (c, z), m in med.items():
        print(
            f"{c:>6} {z:<11} {m['write_s']:8.3f} {m['read_s']:8.3f} {m['read256_s']:10.4f} {m['mb']:7.1f}"
            f"  ({m['write_s'] / base['write_s']:.2f}x / {m['read_s'] / base['read_s']:.2f}x / "
            f"{m['mb'] / base['mb']:.2f}x of 64/none)"
        )
    out = {
        "benchmark": "store",
        "rows": a.rows,
        "dim": int(X.shape[1]),
        "source": a.store,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "median": {f"{c}/{z}": m for (c, z), m in med.items()},
    }
    dest = HERE / "results" / "store_chunks_cpu.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(f"-> {dest}")


if __name__ == "__main__":
    main()
