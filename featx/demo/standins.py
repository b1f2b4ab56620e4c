"""Small stand-in data sets with the structure of the published study designs and a planted class signal.

They let every recipe in ``docs/recipes/`` run end to end without the real (non-public)
data: same columns, subjects, sequences, volumes and masks, class counts scaled down.
The class signal is planted so that a correct pipeline scores clearly above chance and a
broken one (shuffled labels, a leak, wrong folds) shows; each subject also gets its own
look (gain, texture, lesion position), so a slice-level split that leaks subjects scores
visibly higher than the honest grouped one.

    python -m featx.demo.standins liver_fibrosis OUT      # or glioma_sequences, xray, glioma_grade
    python -m featx.demo.standins --run liver_fibrosis OUT   # build it and run the recipe on it, small

None of this is medical data: never report a number measured on it as a finding.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

STAGES = ("S0", "S1", "S2", "S3", "S4")
LIVER_SEQUENCES = {"T1": 0.5, "T2": 1.0, "T1rho-FA": 0.8, "T1rho-HS": 0.7}  # contrast of the fibrosis signal
GLIOMA_SEQUENCES = ("T1", "T2", "FLAIR")


def _smooth(rng, shape, scale: int) -> np.ndarray:
    """Smooth random field in [-1, 1]: coarse noise upsampled (a subject's own texture)."""
    coarse = rng.standard_normal(tuple(max(2, s // scale) for s in shape))
    from scipy.ndimage import zoom

    field = zoom(coarse, [s / c for s, c in zip(shape, coarse.shape)], order=1)[tuple(slice(0, s) for s in shape)]
    return field / (np.abs(field).max() + 1e-9)


def _png(a: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def _write_csv(path: Path, header: list, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def liver_fibrosis(out: str | Path, animals_per_stage: int = 3, slices: int = 2, size: int = 48, seed: int = 0) -> Path:
    """Rat liver MRI stand-in: stages S0-S4, four sequences per animal, ``slices`` slices each (PNG).

    Fibrosis is planted as bright septa whose number grows with the stage, and a parenchyma
    intensity shift, both scaled by the sequence's contrast. Returns the manifest CSV
    (path, label, subject, sequence).
    """
    out, rng = Path(out), np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    rows = []
    for stage_i, stage in enumerate(STAGES):
        for a in range(animals_per_stage):
            animal = f"rat{stage_i}{a:02d}"
            gain, cy, cx = rng.normal(1, 0.05), rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
            texture = _smooth(rng, (size, size), 8)
            liver = ((yy - cy) / 0.32) ** 2 + ((xx - cx) / 0.4) ** 2 < 1
            for q, contrast in LIVER_SEQUENCES.items():
                for s in range(slices):
                    img = 0.12 + 0.05 * texture + rng.normal(0, 0.03, (size, size))
                    img[liver] += 0.25 + 0.1 * contrast * stage_i
                    for _ in range(2 * stage_i):  # septa: thin bright lines inside the liver
                        y0, angle = rng.uniform(0.25, 0.75), rng.uniform(0, np.pi)
                        line = np.abs((yy - y0) * np.cos(angle) - (xx - 0.5) * np.sin(angle)) < 0.02
                        img[line & liver] += 0.2 * contrast
                    path = _png(gain * img, out / "images" / animal / f"{animal}_{q}_{s}.png")
                    rows.append([str(path.relative_to(out)), stage, animal, q])
    return _write_csv(out / "manifest.csv", ["path", "label", "subject", "sequence"], rows)


def _tumour_volume(rng, shape, grade: float, centre, radii) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ellipsoid mask, rim, core) of a lesion; ``grade`` in [0, 1] makes the core necrotic and the rim thick."""
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(float)
    r = np.sqrt(
        ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2
    )
    mask = r < 1
    core = r < 0.35 + 0.35 * grade
    return mask, mask & ~core, mask & core


def _save_volume(a: np.ndarray, path: Path, spacing=(1.0, 1.0, 2.0)) -> Path:
    import SimpleITK as sitk

    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(a)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))
    return path


def glioma_sequences(
    out: str | Path, patients_per_grade: int = 6, depth: int = 24, size: int = 40, seed: int = 0
) -> Path:
    """BraTS-like stand-in: LGG/HGG patients with T1, T2 and FLAIR NIfTI volumes and one tumour mask each.

    HGG tumours have a necrotic core inside an enhancing rim; LGG ones are homogeneous.
    Each patient has a strong look of their own (gain, texture) shared by all their slices.
    Returns the volume-level CSV (path, mask, label, subject, sequence) for
    ``featx manifest build --volumes``.
    """
    out, rng = Path(out), np.random.default_rng(seed)
    shape = (depth, size, size)
    rows = []
    for grade in ("LGG", "HGG"):
        for p in range(patients_per_grade):
            pid = f"{grade.lower()}{p:02d}"
            centre = (rng.uniform(0.4, 0.6) * depth, rng.uniform(0.35, 0.65) * size, rng.uniform(0.35, 0.65) * size)
            radii = (rng.uniform(0.25, 0.35) * depth, rng.uniform(0.15, 0.22) * size, rng.uniform(0.15, 0.22) * size)
            mask, rim, core = _tumour_volume(rng, shape, 0.8 if grade == "HGG" else 0.0, centre, radii)
            look, gain = _smooth(rng, shape, 6), rng.normal(1, 0.15)
            mask_path = _save_volume(mask.astype(np.uint8), out / pid / f"{pid}_seg.nii.gz")
            for q, (tissue, lesion, necrosis) in zip(
                GLIOMA_SEQUENCES, ((0.45, 0.3, 0.15), (0.35, 0.75, 0.95), (0.4, 0.8, 0.45))
            ):
                vol = tissue + 0.15 * look + rng.normal(0, 0.03, shape)
                vol[rim] = lesion + rng.normal(0, 0.05, int(rim.sum()))
                if grade == "HGG":
                    vol[core] = necrosis + rng.normal(0, 0.05, int(core.sum()))
                else:
                    vol[core] = lesion + rng.normal(0, 0.05, int(core.sum()))
                path = _save_volume((gain * vol * 1000).astype(np.int16), out / pid / f"{pid}_{q}.nii.gz")
                rows.append([str(path.relative_to(out)), str(mask_path.relative_to(out)), grade, pid, q])
    return _write_csv(out / "volumes.csv", ["path", "mask", "label", "subject", "sequence"], rows)


def glioma_grade(out: str | Path, patients_per_grade: int = 4, depth: int = 20, size: int = 48, seed: int = 0) -> Path:
    """Glioma-grade stand-in: grades II/III/IV, one NRRD image and one NRRD segmentation per patient.

    Higher grades have larger, more heterogeneous lesions with a necrotic core. Returns the
    volume-level CSV (path, mask, label, subject).
    """
    out, rng = Path(out), np.random.default_rng(seed)
    shape = (depth, size, size)
    rows = []
    for g, grade in enumerate(("II", "III", "IV")):
        for p in range(patients_per_grade):
            pid = f"g{grade}_{p:02d}"
            centre = (rng.uniform(0.4, 0.6) * depth, rng.uniform(0.4, 0.6) * size, rng.uniform(0.4, 0.6) * size)
            scale = 0.12 + 0.04 * g + rng.uniform(0, 0.03)
            radii = (rng.uniform(0.25, 0.35) * depth, scale * size, scale * size * rng.uniform(0.8, 1.2))
            mask, rim, core = _tumour_volume(rng, shape, g / 2, centre, radii)
            vol = 0.4 + 0.12 * _smooth(rng, shape, 6) + rng.normal(0, 0.03, shape)
            vol[mask] = 0.75 + rng.normal(0, 0.03 + 0.08 * g, int(mask.sum()))
            if g:
                vol[core] = 0.3 + rng.normal(0, 0.05, int(core.sum()))
            img = _save_volume((rng.normal(1, 0.1) * vol * 1000).astype(np.int16), out / "nrrd" / f"{pid}.nrrd")
            seg = _save_volume(mask.astype(np.uint8), out / "nrrd" / f"{pid}.seg.nrrd")
            rows.append([str(img.relative_to(out)), str(seg.relative_to(out)), grade, pid])
    return _write_csv(out / "volumes.csv", ["path", "mask", "label", "subject"], rows)


def xray(out: str | Path, per_class: int = 30, seed: int = 0) -> Path:
    """Chest X-ray stand-in: real greyscale BreastMNIST images (28 px, CC BY 4.0) in class folders
    ``effusion/`` (BreastMNIST 'malignant') and ``normal/`` (benign + normal). Returns the folder
    (for ``featx manifest build --folder``)."""
    out, rng = Path(out), np.random.default_rng(seed)
    with resources.files("featx.demo").joinpath("data", "breastmnist.npz").open("rb") as fh:
        data = dict(np.load(fh))
    images, labels = data["train_images"], data["train_labels"][:, 0]
    for value, name in ((0, "effusion"), (1, "normal")):
        for i in sorted(rng.choice(np.flatnonzero(labels == value), per_class, replace=False)):
            _png(images[i] / 255.0, out / "xrays" / name / f"cxr_{i:04d}.png")
    return out / "xrays"


def survival(out: str | Path, subjects: int = 80, images: int = 2, hazard_ratio: float = 6.0, seed: int = 0) -> Path:
    """Time-to-event stand-in: ``subjects`` patients with ``images`` real BreastMNIST images each (28 px, CC BY
    4.0; all of one patient from one class), an exponential event time whose hazard is ``hazard_ratio`` times higher
    for the 'malignant' class (median 24 months otherwise), and uniform administrative censoring over 6 to 60 months.
    Returns ``manifest.csv`` (``path, subject, os_months, death``: 1 for an event, 0 for censored)."""
    out, rng = Path(out), np.random.default_rng(seed)
    with resources.files("featx.demo").joinpath("data", "breastmnist.npz").open("rb") as fh:
        data = dict(np.load(fh))
    pool, labels = data["train_images"], data["train_labels"][:, 0]
    by_class = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in (0, 1)}  # 0: malignant
    rows = []
    for j in range(subjects):
        malignant = j % 2 == 0
        rate = np.log(2) / 24.0 * (hazard_ratio if malignant else 1.0)
        t_event, t_censor = rng.exponential(1 / rate), rng.uniform(6, 60)
        months, death = round(float(min(t_event, t_censor)), 2), int(t_event <= t_censor)
        for k in range(images):
            i = by_class[0 if malignant else 1].pop()
            path = _png(pool[i] / 255.0, out / "images" / f"p{j:03d}_{k}.png")
            rows.append([path.relative_to(out).as_posix(), f"p{j:03d}", months, death])
    return _write_csv(out / "manifest.csv", ["path", "subject", "os_months", "death"], rows)


BUILDERS = {
    "survival": survival,
    "liver_fibrosis": liver_fibrosis,
    "glioma_sequences": glioma_sequences,
    "xray": xray,
    "glioma_grade": glioma_grade,
}

#: Each recipe's stand-in (builder, its arguments, the recipe's input variable) and the small settings the
#: CI test and the docs' example outputs run it with (random weights: no download; a few epochs; small inputs).
RECIPES = {
    "liver_fibrosis": (liver_fibrosis, {}, "MANIFEST", dict(ARCHS="resnet18", LOCKS="0 5", EPOCHS=4, INPUT_SIZE=32)),
    "glioma_sequences": (
        glioma_sequences,
        {},
        "VOLUMES",
        dict(SLICES=3, CV=3, HEADS="logreg", EPOCHS=2, INPUT_SIZE=32, RUNTIME="torch"),
    ),
    "pleural_effusion": (xray, {"per_class": 20}, "XRAYS", dict(CV=10, EPOCHS=1, INPUT_SIZE=32)),
    "finetune_vs_features": (
        xray,
        {"per_class": 8},
        "MANIFEST",
        dict(
            BACKBONES="vgg11_bn resnet18 densenet121 inception_v3",
            HEADS="logreg",
            CV=2,
            EPOCHS=1,
            INPUT_SIZE=75,
            RUNTIME="torch",
        ),
    ),
    "glioma_grade": (
        glioma_grade,
        {},
        "VOLUMES",
        dict(
            MIN_AREA="80%",
            REPEATS=10,
            HEADS="logreg,svm-rbf",
            RUNTIME="torch",
            ENCODER3D="medicalnet:resnet10",
            BACKBONE2D="resnet18",
        ),
    ),
}


def recipe_dir() -> Path:
    """``docs/recipes`` of the featx checkout this module runs from."""
    d = Path(__file__).resolve().parents[2] / "docs" / "recipes"
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: the recipes ship with the featx source tree; run this from a checkout.")
    return d


def run_recipe(name: str, out: str | Path, models_dir: str | Path = "models_onnx", **overrides):
    """Build ``name``'s stand-in under ``out/data`` and run ``docs/recipes/<name>.sh`` on it with the small
    settings of :data:`RECIPES` (plus ``overrides``) into ``out/study``; returns the finished process."""
    builder, kwargs, var, settings = RECIPES[name]
    out = Path(out)
    data = builder(out / "data", **kwargs)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "COLUMNS": "200",
        var: str(data),
        "OUT": str(out / "study"),
        "WEIGHTS": "random",
        "BOOTSTRAP": "0",
        "MODELS": str(models_dir),
        **{k: str(v) for k, v in {**settings, **overrides}.items()},
    }
    return subprocess.run(
        ["bash", str(recipe_dir() / f"{name}.sh")], env=env, capture_output=True, text=True, timeout=1800
    )


def main(argv: list | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "--run" and argv[1] in RECIPES:
        proc = run_recipe(argv[1], argv[2])
        print(proc.stdout[-3000:], proc.stderr[-3000:] if proc.returncode else "", sep="\n")
        return proc.returncode
    if len(argv) != 2 or argv[0] not in BUILDERS:
        print(
            f"usage: python -m featx.demo.standins {{{','.join(BUILDERS)}}} OUT\n"
            f"       python -m featx.demo.standins --run {{{','.join(RECIPES)}}} OUT",
            file=sys.stderr,
        )
        return 2
    print(BUILDERS[argv[0]](argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
