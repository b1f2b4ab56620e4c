"""How many rows per second can one ``featx extract --ray`` driver take? (issue 31)

A local Ray (``--cpus`` logical CPUs) runs the real Ray path of ``featx extract`` (:func:`featx.extract.ray.run_on_ray`:
Ray Data decode tasks, an actor pool, the driver's loop, the journal, the commit). The images and the model are
stand-ins, so the workers produce rows as fast as Ray moves them: a loader returns a tiny tensor, and the model
returns ``--dim`` random float32 features. So the driver is the bottleneck, and what it takes is measured:
- its CPU seconds per row (``time.process_time`` of this process, the loop and the final commit);
- the ceiling this gives, rows per driver CPU second;
- the wall rate.

Two ways are compared in the same run, interleaved over ``--repeats``:
- *worker shards* (featx's way): actors write sealed shards, and the driver journals their names and commits the
  index;
- *through the driver* (featx before): the features travel to the driver, which journals them and writes them in
  the commit.

    python benchmarks/ray_driver.py               # about 3 minutes on 2 cores

Writes ``benchmarks/results/ray_driver.json`` with the CPU model and flags.
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

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
from featx.dataset.manifest import Sample  # noqa: E402
from featx.engines.cpu import cpu_info  # noqa: E402
from featx.extract.ray import ShardTarget, run_on_ray  # noqa: E402
from featx.store.open import open_store, store_writer  # noqa: E402


def _load(sample):
    """A stand-in image: a tiny tensor, no file read."""
    return np.zeros((3, 4, 4), np.float32), "0" * 64, "", ("", "")


class _Model:
    def __init__(self, dim: int):
        self.dim = dim

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.random.default_rng(len(x)).random((len(x), self.dim), dtype=np.float32)


def _factory(dim):
    return lambda threads: _Model(dim)


def _one(mode: str, rows: int, dim: int, folder: Path, k: int) -> dict:
    store = folder / f"{mode}{k}.h5"
    samples = [Sample(sample_id=f"s{i:07d}", path=f"/none/{i}.png", label="a") for i in range(rows)]
    with store_writer(store) as w:
        reg = w.register(samples, "synth", dim, {"kind": "cnn"}, "id", "cnn")
        journal = w.start_journal("synth", "id", dim)
        cpu0, t0 = time.process_time(), time.perf_counter()
        target = ShardTarget(str(w.incoming), "synth", "id") if mode == "worker shards" else None
        stats = run_on_ray(
            "local", reg.todo, _load, _factory(dim), journal.append, dim=dim, batch_size=64, limit=rows,
            label="synth", progress=False, tta="none", where=str(store), target=target, adopt=journal.adopt,
        )  # fmt: skip
        loop_cpu, loop_wall = time.process_time() - cpu0, time.perf_counter() - t0
        w.commit()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    with open_store(store) as st:
        assert len(st.load("synth")) == rows == stats.done
        parts = len(st.parts("synth"))
    return {
        "driver_cpu_s": cpu,
        "driver_cpu_loop_s": loop_cpu,
        "wall_s": wall,
        "loop_wall_s": loop_wall,
        "driver_ceiling_rows_per_s": rows / cpu,
        "wall_rows_per_s": rows / wall,
        "parts": parts,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--cpus", type=int, default=4, help="logical CPUs of the local Ray (workers)")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    import ray

    ray.init(num_cpus=a.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    modes = ("worker shards", "through the driver")
    runs = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        _one(modes[0], 512, a.dim, Path(tmp), -1)  # Ray's workers start
        for k in range(a.repeats):
            for m in modes:
                runs[m].append(_one(m, a.rows, a.dim, Path(tmp), k))
    ray.shutdown()
    med = {m: {key: statistics.median(r[key] for r in v) for key in v[0]} for m, v in runs.items()}
    base = med["through the driver"]
    print(f"{a.rows} rows x {a.dim} float32, local Ray with {a.cpus} CPUs; medians of {a.repeats}")
    print(f"{'mode':<20} {'driver CPU s':>12} {'ceiling rows/s':>15} {'wall rows/s':>12} {'shards':>7}")
    for m, r in med.items():
        print(
            f"{m:<20} {r['driver_cpu_s']:12.2f} {r['driver_ceiling_rows_per_s']:15.0f} {r['wall_rows_per_s']:12.0f}"
            f" {r['parts']:7.0f}  ({base['driver_cpu_s'] / r['driver_cpu_s']:.2f}x less driver CPU)"
        )
    out = {
        "benchmark": "ray_driver",
        "rows": a.rows,
        "dim": a.dim,
        "ray_cpus": a.cpus,
        "repeats": a.repeats,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "median": med,
        "runs": runs,
    }
    dest = HERE / "results" / "ray_driver.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(f"-> {dest}")


if __name__ == "__main__":
    main()
