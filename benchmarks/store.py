"""Does a run's cost depend on what the store already holds? (issue 31)

The same 64-image ``featx extract`` (EfficientNet-Lite0, real weights, BreastMNIST PNGs; a subprocess, as a user
runs it) goes into an empty store and into stores already holding ``--sizes`` GB of other feature sets (1,024-d
float32 over ``--samples`` samples each, written through the store's own writer). Runs are interleaved over
``--repeats`` rounds; each gets a new feature-set name, so each computes all 64 rows and commits. Reported: the
median wall time, its ratio to the empty store's (the issue asks <= 1.3x at >= 4 GB), the disk the run added, and
the free disk the writer requires (the index copy and the journal; the shard is the run's own rows).

    python benchmarks/store.py                  # about 6 minutes on 2 cores, 9 GB of scratch disk

Writes ``benchmarks/results/store_scaling.json`` with the CPU model and flags.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
from featx.dataset.manifest import Manifest, Sample  # noqa: E402
from featx.demo.demo import write_demo_images  # noqa: E402
from featx.engines.cpu import cpu_info  # noqa: E402
from featx.store.open import open_store, store_writer  # noqa: E402

DIM = 1024
BLOCK = 8192  # rows per write while filling


def _fill(store: Path, gb: float, samples: int) -> int:
    """Feature sets of ``samples`` x 1,024 float32 until ``gb`` GB; returns their bytes."""
    n_sets = round(gb * 1e9 / (samples * DIM * 4))
    rng = np.random.default_rng(0)
    man = [Sample(sample_id=f"other{i:07d}", path=f"/cohort/img{i:07d}.png", label="a") for i in range(samples)]
    with store_writer(store) as w:
        for k in range(n_sets):
            with w.transaction() as st:
                rows = st.add_samples(man)
                st.create_feature_set(f"other{k}", DIM, {"kind": "cnn"}, f"id{k}", kind="cnn")
                for lo in range(0, samples, BLOCK):
                    st.write(
                        f"other{k}", rows[lo : lo + BLOCK], rng.random((min(BLOCK, samples - lo), DIM), np.float32)
                    )
    return n_sets * samples * DIM * 4


def _bytes(store: Path) -> int:
    folder = store.with_name(store.name + ".d")
    return store.stat().st_size + sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _run(manifest: Path, store: Path, name: str, models_dir: str) -> tuple[float, int, int]:
    """(seconds, bytes the run added, index bytes) of one 64-image extract."""
    before = _bytes(store) if store.exists() else 0
    cmd = ["featx", "extract", "-m", manifest, "-b", "efficientnet_lite0", "-s", store, "--name", name]
    t0 = time.perf_counter()
    proc = subprocess.run([*map(str, cmd), "--models-dir", models_dir], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(proc.stderr)
    return wall, _bytes(store) - before, store.stat().st_size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="0,1,4.3", help="GB of other feature sets in each store")
    p.add_argument("--samples", type=int, default=65536, help="samples of each other feature set")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models-dir", default="models_onnx")
    p.add_argument("--scratch", default=None, help="folder for the stores (default: a temporary one)")
    a = p.parse_args()
    sizes = [float(s) for s in a.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=a.scratch) as tmp:
        tmp = Path(tmp)
        images = write_demo_images(tmp / "images", limit_per_split=None)
        manifest = tmp / "m64.csv"
        Manifest(list(images)[:64]).to_csv(manifest)
        stores, held = {}, {}
        for gb in sizes:
            stores[gb] = tmp / f"s{gb:g}.h5"
            t0 = time.perf_counter()
            held[gb] = _fill(stores[gb], gb, a.samples) if gb else 0
            print(f"store with {held[gb] / 1e9:.2f} GB of other sets filled in {time.perf_counter() - t0:.0f} s")
        _run(manifest, tmp / "warm.h5", "warm", a.models_dir)  # exports or checks the model once
        runs = {gb: [] for gb in sizes}
        for r in range(a.repeats):
            for gb in sizes:
                runs[gb].append(_run(manifest, stores[gb], f"run{r}", a.models_dir))
        for gb in sizes:
            with open_store(stores[gb]) as st:
                assert all(len(st.load(f"run{r}")) == 64 for r in range(a.repeats))
        base = statistics.median(w for w, _, _ in runs[sizes[0]])
        rows = []
        print(f"{'store before':>13} {'median s':>9} {'ratio':>6} {'added MB':>9} {'index MB':>9}")
        for gb in sizes:
            wall = statistics.median(w for w, _, _ in runs[gb])
            added = statistics.median(b for _, b, _ in runs[gb])
            index = runs[gb][-1][2]
            rows.append(
                {
                    "store_gb": round(held[gb] / 1e9, 3),
                    "walls_s": [round(w, 2) for w, _, _ in runs[gb]],
                    "median_s": round(wall, 2),
                    "ratio_to_empty": round(wall / base, 3),
                    "disk_added_mb": round(added / 1e6, 2),
                    "index_mb": round(index / 1e6, 2),
                    # the writer's own check: a copy of the index and the journal's rows (as a shard) must fit
                    "free_disk_needed_mb": round((index + added + (1 << 20)) / 1e6, 2),
                }
            )
            print(f"{held[gb] / 1e9:10.2f} GB {wall:9.2f} {wall / base:6.2f} {added / 1e6:9.2f} {index / 1e6:9.2f}")
        shutil.rmtree(tmp / "images", ignore_errors=True)
    out = {
        "benchmark": "store_scaling",
        "run": "featx extract, 64 BreastMNIST PNGs, efficientnet_lite0 (real weights), onnxruntime fp32",
        "other_sets": f"{a.samples} samples x {DIM} float32 each",
        "repeats": a.repeats,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "stores": rows,
    }
    dest = HERE / "results" / "store_scaling.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(f"-> {dest}")


if __name__ == "__main__":
    main()
