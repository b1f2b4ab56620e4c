"""The baseline: what a user writes today to get CNN features (PIL + torchvision transforms +
DataLoader + eager torch), with the backbone's own preprocessing constants.

    python benchmarks/plain_torch.py MANIFEST.csv efficientnet_lite0 imagenet out.npy
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path


def run(manifest, backbone: str, weights: str, batch_size: int, workers: int, out: Path) -> tuple[int, float]:
    """Extract features of every image in ``manifest``; returns (images, seconds of the loop)."""
    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from featx.backbones.weights import load_backbone

    spec, model = load_backbone(backbone, weights)  # the same torch module featx exports
    model.eval()
    interp = {"bilinear": transforms.InterpolationMode.BILINEAR, "bicubic": transforms.InterpolationMode.BICUBIC}
    tf = transforms.Compose(
        [
            transforms.Resize(spec.resize_size, interpolation=interp[spec.interpolation]),
            transforms.CenterCrop(spec.crop_size),
            transforms.ToTensor(),
            transforms.Normalize(spec.mean, spec.std),
        ]
    )
    with open(manifest, newline="") as f:
        paths = [row["path"] for row in csv.DictReader(f)]

    class Images(Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            return tf(Image.open(paths[i]).convert("RGB"))

    loader = DataLoader(Images(), batch_size=batch_size, num_workers=workers, shuffle=False)
    feats = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for x in loader:
            feats.append(model(x).numpy())
    np.save(out, np.concatenate(feats))
    return len(paths), time.perf_counter() - t0


if __name__ == "__main__":
    n, dt = run(sys.argv[1], sys.argv[2], sys.argv[3], 32, 2, Path(sys.argv[4]))
    print(f"{n} images in {dt:.1f} s: {n / dt:.1f} img/s")
