"""Radiomics throughput: ``featx radiomics`` with 1 and 2 jobs vs the sequential ``pyradiomics`` batch CLI.

The same cases (copies of pyradiomics' own brain1 and breast1 MR volumes with their
lesion masks, alternating, so cases differ in cost as in a real cohort), the same
settings (a featx preset; the CLI gets it as a parameter file with featx's effective
settings: pyradiomics' per-case diagnostics off, ``shape2D`` off in 3D), each command
a fresh process timed from start to exit, rounds interleaved, medians reported. Rates
are cases per second; the goal is featx >= 0.8 x jobs x the CLI's rate. The first
round also checks that featx stored exactly the values the CLI wrote.

    python benchmarks/radiomics.py --cases 16 64 --params ct-3d --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import h5py

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_info  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BRAIN = ROOT / "tests" / "data" / "pyradiomics_brain"
BIN = Path(sys.executable).parent


def make_cases(folder: Path, n: int) -> tuple[Path, Path]:
    """``n`` cases (file copies, alternating brain1/breast1) as a featx manifest and a pyradiomics batch CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        case = ("brain1", "breast1")[i % 2]
        image, mask = folder / f"c{i:03d}_image.nrrd", folder / f"c{i:03d}_label.nrrd"
        if not image.exists():
            shutil.copyfile(BRAIN / f"{case}_image.nrrd", image)
            shutil.copyfile(BRAIN / f"{case}_label.nrrd", mask)
        rows.append((f"c{i:03d}", image, mask))
    manifest, batch = folder / "manifest.csv", folder / "batch.csv"
    with open(manifest, "w", newline="") as fh:
        csv.writer(fh).writerows([("id", "path", "mask", "label"), *[(i, p, m, "x") for i, p, m in rows]])
    with open(batch, "w", newline="") as fh:
        csv.writer(fh).writerows([("ID", "Image", "Mask"), *rows])
    return manifest, batch


def cli_params(preset: str, out: Path) -> Path:
    """featx's effective settings for ``preset`` as a pyradiomics parameter file."""
    from featx.radiomics.params import preset_path

    lines = [ln for ln in preset_path(preset).read_text().splitlines() if ln.strip() != "shape2D:"]
    text = "\n".join(lines).replace("setting:\n", "setting:\n  additionalInfo: false\n")
    out.write_text(text + "\n")
    return out


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr[-2000:]}")
    return wall


def same_values(store: Path, cli_csv: Path) -> tuple[int, int]:
    """(features compared, differing) between featx's store and the CLI's CSV output."""
    with h5py.File(store) as h:
        name = sorted(h["features"])[0]
        names = json.loads(h["features"][name].attrs["feature_names"])
        ids = list(h["samples/id"].asstr()[:])
        X = h["features"][name]["X"][:]
    compared = differing = 0
    with open(cli_csv) as fh:
        for row in csv.DictReader(fh):
            x = X[ids.index(row["ID"])]
            for j, n in enumerate(names):
                compared += 1
                differing += int(float(row[n]) != x[j])
    return compared, differing


def measure(n: int, args, env: dict) -> dict:
    """Interleaved rounds of the CLI and featx --jobs J on ``n`` cases."""
    work = args.work / f"n{n}"
    manifest, batch = make_cases(work, n)
    params = cli_params(args.params, work / f"{args.params}.cli.yaml")
    times: dict[str, list[float]] = {"pyradiomics CLI": []} | {f"featx --jobs {j}": [] for j in args.jobs}
    check = None
    for r in range(args.rounds):
        for label in times:  # interleaved: every configuration once per round
            if label == "pyradiomics CLI":
                out = work / "cli.csv"
                out.unlink(missing_ok=True)
                cmd = [str(BIN / "pyradiomics"), str(batch), "-p", str(params), "-o", str(out), "-f", "csv"]
            else:
                store = work / f"store_{label.split()[-1]}.h5"
                store.unlink(missing_ok=True)
                cmd = [
                    str(BIN / "featx"),
                    "radiomics",
                    "-m",
                    str(manifest),
                    "-s",
                    str(store),
                    "--params",
                    args.params,
                    "--jobs",
                    label.split()[-1],
                    "--mode",
                    "3d",
                ]
            times[label].append(timed(cmd, env))
            print(f"{n} cases, round {r + 1}: {label}: {times[label][-1]:.1f} s", flush=True)
        if check is None:
            check = same_values(work / f"store_{args.jobs[0]}.h5", work / "cli.csv")
    base = statistics.median(times["pyradiomics CLI"])
    results = {}
    for label, ts in times.items():
        med = statistics.median(ts)
        results[label] = {"wall_s": ts, "median_s": med, "cases_per_s": n / med, "vs_cli": base / med}
    for j in args.jobs:
        r = results[f"featx --jobs {j}"]
        r["goal"] = 0.8 * j
        r["goal_met"] = r["vs_cli"] >= 0.8 * j
    return {"cases": n, "results": results, "values_equal_to_cli": {"compared": check[0], "differing": check[1]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, nargs="+", default=[16])
    ap.add_argument("--params", default="ct-3d")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--work", type=Path, default=HERE / ".data" / "radiomics")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "radiomics_cpu.json")
    args = ap.parse_args()

    runs = [measure(n, args, dict(os.environ)) for n in args.cases]
    report = {
        "benchmark": "radiomics",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "case_files": "copies of pyradiomics' brain1 (256x256x25) and breast1 (45x120x21), alternating",
        "params": args.params,
        "rounds": args.rounds,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for run in runs:
        print(f"\n{run['cases']} cases, params {args.params}, medians of {args.rounds} interleaved rounds:")
        for label, r in run["results"].items():
            goal = f"  goal >= {r['goal']:.1f}x: {'met' if r['goal_met'] else 'NOT met'}" if "goal" in r else ""
            print(
                f"  {label:18s} {r['median_s']:6.1f} s  {r['cases_per_s']:5.2f} cases/s  {r['vs_cli']:.2f}x the CLI{goal}"
            )
        check = run["values_equal_to_cli"]
        print(f"  values: {check['differing']} of {check['compared']} differ from the CLI's")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
