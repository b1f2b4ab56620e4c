"""Peak memory of ``featx fit`` on a feature set larger than 1 GB, against the size of the feature matrix.

Issue 31 item 5. A synthetic store (``--rows`` x 1,024 float32, labelled, two rows per subject: 262,144 rows is
1.07 GB) is fitted by ``featx fit`` in a subprocess with each of ``--heads`` and ``--jobs``; the peak is the largest
proportional set size (PSS, from ``/proc/PID/smaps_rollup``) summed over the process and its worker processes,
sampled every 50 ms, so pages the workers share (joblib memory-maps a large X) count once. Loading alone
(``open_store(...).load``) is measured the same way. Linux only.

    python benchmarks/fit_memory.py              # about 3 minutes on 2 cores

Writes ``benchmarks/results/fit_memory.json``; each peak with its ratio to the matrix's size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
from featx.engines.cpu import cpu_info  # noqa: E402

GIB = 2**30


def _children() -> dict[int, int]:
    """pid -> parent pid of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
                out[int(d)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                pass
    return out


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_pss(cmd: list[str]) -> tuple[int, float, int]:
    """(peak PSS in bytes of the command's process tree, seconds, exit code)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        parents = _children()
        tree, grew = {proc.pid}, True
        while grew:
            new = {p for p, pp in parents.items() if pp in tree} - tree
            tree |= new
            grew = bool(new)
        peak = max(peak, sum(_pss(p) for p in tree))
        time.sleep(0.05)
    err = proc.stderr.read()
    if proc.returncode:
        print(err[-2000:], file=sys.stderr)
    return peak, time.perf_counter() - t, proc.returncode


def make_store(path: Path, rows: int, dim: int = 1024) -> int:
    import numpy as np

    from featx.dataset.sample import Sample
    from featx.store.writer import store_writer

    rng = np.random.default_rng(0)
    samples = [
        Sample(f"s{i:07d}", Path(f"/x/{i}.png"), label="ab"[i % 2], subject=f"p{i // 2:07d}") for i in range(rows)
    ]
    with store_writer(path) as w, w.transaction() as st:
        index = st.add_samples(samples)
        st.create_feature_set("big", dim, {"kind": "cnn"}, "id", kind="cnn")
        for a in range(0, rows, 65536):
            b = min(rows, a + 65536)
            X = rng.normal(size=(b - a, dim)).astype(np.float32)
            X[:, 0] += np.arange(a, b) % 2  # a class signal in one column
            st.write("big", index[a:b], X)
    return rows * dim * 4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=262_144)
    ap.add_argument("--heads", default="logreg,simpleshot")
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--work", type=Path, default=HERE / ".data" / "fit_memory")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "fit_memory.json")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    store = args.work / "big.h5"
    store.unlink(missing_ok=True)
    matrix = make_store(store, args.rows)
    featx = str(Path(sys.executable).parent / "featx")
    load = [
        sys.executable,
        "-c",
        f"from featx.store.open import open_store\nwith open_store({str(store)!r}) as s: s.load('big')",
    ]
    base = [sys.executable, "-c", "import featx.store.store"]
    runs = {"python + featx.store imported": peak_pss(base), "store.load": peak_pss(load)}
    for head in args.heads.split(","):
        for jobs in args.jobs.split(","):
            cmd = [featx, "fit", "-s", str(store), "-f", "big", "--head", head, "--cv", "5", "--bootstrap", "0"]
            runs[f"featx fit --head {head} --cv 5 --jobs {jobs}"] = peak_pss(cmd + ["--jobs", jobs])
    result = {
        "benchmark": "fit_memory",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/fit_memory.py " + " ".join(sys.argv[1:]),
        "matrix": {"rows": args.rows, "columns": 1024, "dtype": "float32", "bytes": matrix},
        "peak_pss": {
            what: {
                "bytes": peak,
                "GiB": round(peak / GIB, 2),
                "x_matrix": round(peak / matrix, 2),
                "seconds": round(s, 1),
                "exit": rc,
            }
            for what, (peak, s, rc) in runs.items()
        },  # fmt: skip
        "cpu": cpu_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"matrix: {args.rows:,} x 1,024 float32 = {matrix / GIB:.2f} GiB")
    for what, r in result["peak_pss"].items():
        print(f"{what:45s} peak {r['GiB']:5.2f} GiB = {r['x_matrix']:4.2f} x the matrix ({r['seconds']} s)")


if __name__ == "__main__":
    main()
