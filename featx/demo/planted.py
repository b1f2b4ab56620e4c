"""A data set with planted copies: real BreastMNIST images and copies of some of them made as public data sets make
them (the same file twice, a lossless re-save, a re-encoded JPEG, a resize, a slight crop, a mirror image, a
brightness change), each copy under a name and subject of its own. Used by the tests of exact-copy grouping and
of ``featx audit``, and by ``benchmarks/near_copies.py`` to choose the audit's threshold from measurements.
"""

from __future__ import annotations

import io
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from featx.dataset.manifest import Manifest, Sample

LABELS = ("malignant", "benign")  # BreastMNIST 0 / 1 (normal or benign)


def _jpeg(im: Image.Image, quality: int = 75) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert(im.mode)


def _crop(im: Image.Image, fraction: float) -> Image.Image:
    """``fraction`` of each side cut off (at least a pixel), resized back to the image's size."""
    dx, dy = max(1, round(im.width * fraction)), max(1, round(im.height * fraction))
    return im.crop((dx, dy, im.width - dx, im.height - dy)).resize(im.size, Image.BICUBIC)


#: how a copy is made from an image: ``exact`` copies the file's bytes, the others write new pixels or a new file
COPY_KINDS = {
    "exact": None,
    "resaved": lambda im: im,  # the same pixels, another PNG file (another compression level and name)
    "jpeg": _jpeg,
    "resized": lambda im: im.resize((round(im.width * 1.5), round(im.height * 1.5)), Image.BICUBIC),
    "cropped": lambda im: _crop(im, 0.04),
    "flipped": ImageOps.mirror,
    "brighter": lambda im: Image.fromarray(np.clip(np.asarray(im, np.float32) * 1.15 + 8, 0, 255).astype(np.uint8)),
}
#: the kinds that are exact copies (same file or same decoded pixels): featx finds them without the audit
EXACT_KINDS = ("exact", "resaved")


def breastmnist() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every BreastMNIST image (780, 28x28 uint8), its label and its official split."""
    with resources.files("featx.demo").joinpath("data", "breastmnist.npz").open("rb") as fh:
        data = dict(np.load(fh))
    images = np.concatenate([data[f"{s}_images"] for s in ("train", "val", "test")])
    labels = np.concatenate([data[f"{s}_labels"][:, 0] for s in ("train", "val", "test")])
    splits = [s for s in ("train", "val", "test") for _ in range(len(data[f"{s}_images"]))]
    return images, labels, splits


def write_planted(out: Path, n_originals: int = 80, copies: dict | None = None, seed: int = 0) -> tuple[Path, dict]:
    """``n_originals`` distinct BreastMNIST images and planted copies of some, as PNG/JPEG files with a manifest.

    Parameters
    ----------
    out : Path
    n_originals : int
        Distinct images (the first ones without an exact duplicate in BreastMNIST itself), every one its own subject.
    copies : dict, optional
        Kind (:data:`COPY_KINDS`) -> how many originals get a copy of that kind (default: 4 of each).
    seed : int

    Returns
    -------
    (manifest path, {copy sample id: (original sample id, kind)})
    """
    out = Path(out)
    copies = copies if copies is not None else {k: 4 for k in COPY_KINDS}
    images, labels, _ = breastmnist()
    seen, keep = set(), []
    for i, im in enumerate(images):  # BreastMNIST has one exact duplicate of its own: keep one of each
        key = im.tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(i)
        if len(keep) == n_originals:
            break
    (out / "images").mkdir(parents=True, exist_ok=True)
    samples, truth = [], {}
    for j, i in enumerate(keep):
        path = out / "images" / f"orig {j:04d}.png"  # a space in the name, as real exports have
        Image.fromarray(images[i]).save(path)
        samples.append(Sample(sample_id=f"orig{j:04d}", path=path.resolve(), label=LABELS[labels[i]], subject=f"p{j}"))
    rng = np.random.default_rng(seed)
    for kind, n in copies.items():
        for j in rng.choice(len(keep), size=n, replace=False):
            src = samples[j]
            sid = f"{kind}{j:04d}"
            path = out / "images" / f"{sid}.{'jpg' if kind == 'jpeg' else 'png'}"
            if kind == "exact":
                shutil.copyfile(src.path, path)
            else:
                im = COPY_KINDS[kind](Image.open(src.path))
                im.save(path, **({"quality": 95} if kind == "jpeg" else {"compress_level": 1}))
            samples.append(Sample(sample_id=sid, path=path.resolve(), label=src.label, subject=f"c-{sid}"))
            truth[sid] = (src.sample_id, kind)
    return Manifest(samples).to_csv(out / "manifest.csv"), truth
