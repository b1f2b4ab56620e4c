"""Grad-CAM (Selvaraju et al. 2017) on the exact model that made the prediction, and overlay PNGs.

The class score is differentiated with respect to the activations ``A`` of the
backbone's Grad-CAM layer (its last convolutional stage, per backbone in
:mod:`featx.finetune.blocks`); the map is ``ReLU(sum_k mean_ij(dS/dA_k) * A_k)``,
upsampled to the input and scaled to [0, 1] per image.

Two kinds of model:

- a fine-tuned network (``model.pt``): the score is its logit of the class;
- a frozen backbone with a linear head saved by ``featx fit --save`` (logreg, lda,
  svm-linear): standardisation, PCA and the linear classifier compose to one weight
  vector on the backbone's features, so the score is ``features(x) @ w`` and
  Grad-CAM reduces to CAM through the head's weights on the last stage.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from featx.errors import FeatxError

LINEAR_HEADS = ("logreg", "lda", "svm-linear")


def gradcam(score_fn, module, x, classes) -> tuple[np.ndarray, np.ndarray]:
    """Maps ``(N, H, W)`` in [0, 1] and the scores ``(N, C)``.

    Parameters
    ----------
    score_fn : callable
        ``x -> (N, C)`` class scores (logits); it must run through ``module``.
    module : torch.nn.Module
        The layer whose activations are explained.
    x : torch.Tensor
        Input batch ``(N, 3, H, W)``.
    classes : sequence of int
        Class explained for each image.
    """
    import torch
    import torch.nn.functional as F

    seen = {}
    handle = module.register_forward_hook(lambda m, i, out: seen.__setitem__("a", out))
    try:
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)  # gradients reach A even when every weight is frozen
            scores = score_fn(x)
            act = seen["a"]
            picked = scores[torch.arange(len(x)), torch.as_tensor(list(classes))]
            grads = torch.autograd.grad(picked.sum(), act)[0]
    finally:
        handle.remove()
    if act.dim() == 3:  # a transformer's tokens (N, L, D): the patch tokens on their square grid
        act, grads = token_grid(act), token_grid(grads)
    cam = F.relu((grads.mean(dim=(2, 3), keepdim=True) * act).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    cam = cam - cam.amin(dim=(1, 2), keepdim=True)
    cam = cam / cam.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return cam.detach().cpu().numpy(), scores.detach().cpu().numpy()


def token_grid(tokens):
    """(N, L, D) tokens -> (N, D, h, h): the last h*h tokens (the patches of a square input, h*h the largest
    square <= L), the prefix tokens (class, registers) before them left out."""
    side = int(math.isqrt(tokens.shape[1]))
    patches = tokens[:, tokens.shape[1] - side * side :]
    return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side)


def submodule(net, path: str):
    try:
        return net.get_submodule(path)
    except AttributeError:
        raise FeatxError(f"the model has no layer {path!r} for Grad-CAM") from None


def safe_name(sample_id) -> str:
    """A sample id as a file name: letters, digits, '-', '_' and '.' kept, anything else '_'; an image
    suffix in the id (ids of folder manifests are file names) is dropped, the overlay adds '.png'."""
    stem = re.sub(r"\.(png|jpe?g|tiff?|bmp|dcm|nii(\.gz)?|nrrd)$", "", str(sample_id), flags=re.IGNORECASE)
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)


def overlay(crop: np.ndarray, cam: np.ndarray, path: Path, title: str = "", alpha: float = 0.4) -> Path:
    """Write the 8-bit crop with the map blended on top (jet colour map) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    rgb = np.repeat(crop[..., None], 3, axis=2) if crop.ndim == 2 else crop
    heat = colormaps["jet"](cam)[..., :3] * 255
    blend = ((1 - alpha) * rgb + alpha * heat).clip(0, 255).astype(np.uint8)
    pair = Image.fromarray(np.concatenate([rgb.astype(np.uint8), blend], axis=1))
    scale = max(1, 224 // crop.shape[0])  # small inputs (MedMNIST-sized) are enlarged to be seen
    pair = pair.resize((pair.width * scale, pair.height * scale), Image.Resampling.NEAREST)
    im = Image.new("RGB", (pair.width, pair.height + 16))  # a band for the caption
    im.paste(pair, (0, 16))
    if title:
        ImageDraw.Draw(im).text((3, 2), title, fill=(255, 255, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def linear_weights(model, n_classes: int) -> np.ndarray:
    """``(C, D)`` weights on the backbone features of a saved scaler -> [PCA] -> linear classifier pipeline.

    Raises
    ------
    FeatxError
        When the head is not linear in the features.
    """
    pipe = getattr(model, "pipeline_", None)
    clf = pipe.named_steps["clf"] if pipe is not None else None
    coef = getattr(clf, "coef_", None) if clf is not None and getattr(clf, "kernel", "linear") == "linear" else None
    if coef is None or (clf.__class__.__name__ == "SVC" and n_classes > 2):
        raise FeatxError(
            "Grad-CAM through a fit model's head needs a linear head ("
            + ", ".join(LINEAR_HEADS)
            + ", binary for svm-linear); refit with one of them, or fine-tune ('featx finetune')."
        )
    w = np.asarray(coef.toarray() if hasattr(coef, "toarray") else coef, dtype=np.float64)
    if "pca" in pipe.named_steps:
        w = w @ pipe.named_steps["pca"].components_
    if "scale" in pipe.named_steps:
        w = w / pipe.named_steps["scale"].scale_
    if w.shape[0] == 1:  # binary: one score for the second class
        w = np.vstack([-w / 2, w / 2])
    return w
