"""Near-copy threshold of ``featx audit``, chosen from measurements, and the speed of one pass (issue 28).

Real images: every distinct BreastMNIST image (779 of 780: it holds one exact duplicate of its own), the first 300
of them upsampled to 112 px (copies made at a size where a JPEG block is not an eighth of the image), and the slices
of the real MR volumes in ``../shared/data`` (pyradiomics' brain1 and breast1, MONAI's anatomical.nii; every 3rd
slice along each axis, so neighbouring slices, alike but distinct images, are among the negatives). Made copies of
a random third of each set (at most 100) per kind: a re-encoded JPEG (quality 75, then 95), resized x1.5, cropped
by 4% a side and resized back, mirrored, brightness x1.15 + 8. Features: EfficientNet-Lite0 with its real ImageNet
weights (ONNX Runtime, fp32), through ``featx extract``.

BreastMNIST's own "negatives" are not all distinct: its source (BUSI) holds near-duplicate images, and the pairs
with the highest cosines are visibly one image (``docs/near_copies_breastmnist.png``), so its false-positive counts
are an upper bound. The volumes' slices are distinct by construction.

For each threshold t on the cosine (raw, and centred on the data set's mean as featx audit uses it):

* false negatives: made copies whose cosine to their original is below t, per kind;
* false positives: pairs of distinct images (originals, every pair) at or above t, as a rate over pairs and as
  flagged pairs per 1,000 images.

Speed: one pass of :func:`featx.audit.near.near_pairs` over ``--speed-rows`` random 1,280-d rows (default
100,000), with the CPU recorded.

    python benchmarks/near_copies.py                       # about 5 minutes on 2 cores
    python benchmarks/near_copies.py --speed-rows 20000    # quicker speed figure

Writes ``benchmarks/results/near_copies.json``.
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
from PIL import Image  # noqa: E402

from featx import api  # noqa: E402
from featx.audit.near import near_pairs, normalised  # noqa: E402
from featx.dataset.manifest import Manifest, Sample  # noqa: E402
from featx.demo.planted import COPY_KINDS, breastmnist  # noqa: E402
from featx.engines.cpu import cpu_info  # noqa: E402
from featx.images.signature import MIRROR, pixel_signature  # noqa: E402

KINDS = [k for k in COPY_KINDS if k not in ("exact", "resaved")]  # exact copies are found by content, not cosine
THRESHOLDS = [0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99]
SHARED = HERE.parent.parent / "shared" / "data"


def _volume_slices() -> dict[str, list[np.ndarray]]:
    import SimpleITK as sitk

    out = {}
    for name, path in (
        ("brain1", SHARED / "pyradiomics_brain" / "brain1_image.nrrd"),
        ("breast1", SHARED / "pyradiomics_brain" / "breast1_image.nrrd"),
        ("anatomical", SHARED / "monai_testing" / "anatomical.nii"),
    ):
        if not path.is_file():
            continue
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float32)
        lo, hi = np.percentile(arr, [0.5, 99.5])
        arr = np.clip((arr - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
        planes = []
        for axis in range(3):  # every 3rd slice along each axis: neighbours, alike but distinct, among the negatives
            for z in range(0, arr.shape[axis], 3):
                plane = np.take(arr, z, axis=axis)
                if min(plane.shape) >= 16 and plane.std() > 10 and (plane > 20).mean() > 0.2:
                    planes.append(plane)
        out[name] = planes
    return out


def _write(work: Path, groups: dict, per_kind: dict, seed: int) -> tuple[Path, list]:
    """Originals and made copies as PNG/JPEG files; returns the manifest and (copy id, original id, kind, set)."""
    rng = np.random.default_rng(seed)
    samples, made = [], []
    for gname, images in groups.items():
        folder = work / gname
        folder.mkdir(parents=True, exist_ok=True)
        ids = []
        for i, im in enumerate(images):
            sid = f"{gname}_{i:04d}"
            path = folder / f"{sid}.png"
            if not path.is_file():
                Image.fromarray(im).save(path)
            samples.append(Sample(sample_id=sid, path=path, label="x", subject=gname))
            ids.append(sid)
        for kind in KINDS:
            for i in rng.choice(len(images), size=min(per_kind[gname], len(images)), replace=False):
                sid = f"{gname}_{kind}_{i:04d}"
                path = folder / f"{sid}.{'jpg' if kind == 'jpeg' else 'png'}"
                if not path.is_file():
                    COPY_KINDS[kind](Image.fromarray(images[i])).save(
                        path, **({"quality": 95} if kind == "jpeg" else {})
                    )
                samples.append(Sample(sample_id=sid, path=path, label="x", subject=gname))
                made.append((sid, ids[i], kind, gname))
    return Manifest(samples).to_csv(work / "manifest.csv"), made


def _scores(fs, groups: dict, made: list, work: Path) -> dict:
    """Per set: each made copy's score to its original, and every pair of distinct originals' score, by embedding
    (centred, as featx audit uses it, and raw) and by pixel signature (mirror-aware)."""
    index = {sid: i for i, sid in enumerate(fs.ids.tolist())}
    copies = {c for c, *_ in made}
    E = normalised(fs.X)
    R = normalised(fs.X, center=np.zeros(fs.X.shape[1], np.float32))
    paths = {s.sample_id: s.path for s in Manifest.from_csv(work / "manifest.csv")}
    S = np.stack([pixel_signature(Image.open(paths[sid])) for sid in fs.ids.tolist()])
    sig = lambda a, b: np.maximum(S[a] @ S[b].T, S[a] @ (S[b] * MIRROR).T)  # noqa: E731
    out = {}
    for g in groups:
        orig = [index[s] for s in fs.ids.tolist() if s.startswith(g + "_") and s not in copies]
        iu = np.triu_indices(len(orig), k=1)
        pos = {k: [(index[c], index[o]) for c, o, kind, gg in made if gg == g and kind == k] for k in KINDS}
        out[g] = {
            "neg": {
                "embedding": (E[orig] @ E[orig].T)[iu],
                "raw": (R[orig] @ R[orig].T)[iu],
                "signature": sig(orig, orig)[iu],
            },
            "pos": {
                k: {
                    "embedding": np.array([E[a] @ E[b] for a, b in v]),
                    "raw": np.array([R[a] @ R[b] for a, b in v]),
                    "signature": np.array([max(S[a] @ S[b], S[a] @ (S[b] * MIRROR)) for a, b in v]),
                }
                for k, v in pos.items()
            },
        }
    return out


def _table(scores: dict, rule) -> list:
    """False negatives per kind and false-positive pairs per set, for each threshold, of ``rule(scores, t)``."""
    rows = []
    for t in THRESHOLDS:
        row = {"threshold": t}
        for k in KINDS:
            hits = np.concatenate([rule(g["pos"][k], t) for g in scores.values()])
            row[f"fn_{k}"] = round(float(1 - hits.mean()), 4)
        row["fn_all"] = round(float(np.mean([row[f"fn_{k}"] for k in KINDS])), 4)
        for name, g in scores.items():
            flagged = int(rule(g["neg"], t).sum())
            row[f"fp_pairs_{name}"] = flagged
            row[f"fp_rate_{name}"] = round(flagged / len(g["neg"]["embedding"]), 6)
        rows.append(row)
    return rows


RULES = {
    "embedding (centred cosine)": lambda d, t: d["embedding"] >= t,
    "embedding (raw cosine)": lambda d, t: d["raw"] >= t,
    "pixel signature": lambda d, t: d["signature"] >= t,
    "featx audit: signature or embedding, both at t": lambda d, t: (d["signature"] >= t) | (d["embedding"] >= t),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=HERE / ".data" / "near_copies")
    ap.add_argument("--speed-rows", type=int, default=100_000)
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "near_copies.json")
    args = ap.parse_args()

    images, _, _ = breastmnist()
    seen, distinct = set(), []
    for im in images:
        if im.tobytes() not in seen:
            seen.add(im.tobytes())
            distinct.append(im)
    upsampled = [np.asarray(Image.fromarray(im).resize((112, 112), Image.BICUBIC)) for im in distinct[:300]]
    groups = {"breastmnist": distinct, "breastmnist112": upsampled, **_volume_slices()}
    per_kind = {g: min(100, len(v) // 3) for g, v in groups.items()}
    manifest, made = _write(args.work, groups, per_kind, seed=0)
    store = args.work / "features.h5"
    t0 = time.perf_counter()
    settings = {} if args.models_dir is None else {"models_dir": args.models_dir}
    api.extract(manifest, "efficientnet_lite0", store, **settings)
    extract_s = time.perf_counter() - t0
    fs = api.load_features(store, "efficientnet_lite0")
    scores = _scores(fs, groups, made, args.work)
    result = {
        "what": "near-copy thresholds of featx audit: made copies vs distinct real images",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "backbone": "efficientnet_lite0 (ImageNet weights, ONNX Runtime fp32)",
        "sets": {g: {"images": len(v), "pairs": len(scores[g]["neg"]["embedding"])} for g, v in groups.items()},
        "copies_per_kind": per_kind,
        "extract_s": round(extract_s, 1),
        "rules": {name: _table(scores, rule) for name, rule in RULES.items()},
    }
    rng = np.random.default_rng(1)
    X = normalised(rng.normal(size=(args.speed_rows, 1280)).astype(np.float32))
    t0 = time.perf_counter()
    pairs = near_pairs(X, 0.95)
    result["speed"] = {"rows": args.speed_rows, "dim": 1280, "seconds": round(time.perf_counter() - t0, 1)}
    result["speed"]["pairs_found"] = len(pairs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for name, table in result["rules"].items():
        print(name)
        for row in table:
            fp = ", ".join(f"{g} {row[f'fp_pairs_{g}']}" for g in groups)
            fn = " ".join(f"{k} {row[f'fn_{k}']:.2f}" for k in KINDS)
            print(f"  t={row['threshold']:.2f}: FN {fn}; FP pairs: {fp}")
    print(f"speed: {result['speed']} on {result['cpu'].get('model', '?')}")


if __name__ == "__main__":
    main()
