"""``featx gradcam``: overlays for new images, by a fine-tuned model (``model.pt``) or by a frozen
backbone with the linear head of a ``featx fit --save`` model (``.skops``), each exactly the
model that predicts them."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.backbones.resolve import resolve_backbone
from featx.dataset.inputs import input_manifest
from featx.errors import FeatxError
from featx.evaluate.models.saved import load_model
from featx.extract.config import ExtractConfig
from featx.finetune.blocks import block_map
from featx.finetune.data import ImageBank
from featx.finetune.gradcam import gradcam, linear_weights, overlay, safe_name, submodule
from featx.finetune.model import load_net


@dataclass
class Explainer:
    """What Grad-CAM needs: ``score(x) -> (N, C)`` (differentiable, linear in the class evidence), the model's
    own ``proba(x) -> (N, C)`` ndarray, the layer, the spec, classes and intensity window."""

    score: object
    proba: object
    layer: object
    spec: object
    classes: list
    window: str
    what: str


def explainer(model_path: str | Path, models_dir: str | Path = "models_onnx") -> Explainer:
    """Load a fine-tuned ``.pt`` or a fit ``.skops`` model for Grad-CAM."""
    path = Path(model_path)
    if path.suffix == ".pt":
        import torch

        ln = load_net(path)

        def proba(x):
            with torch.inference_mode():
                return torch.softmax(ln.net(x), 1).numpy()

        return Explainer(
            ln.net,
            proba,
            submodule(ln.net.features, ln.bmap.gradcam_layer),
            ln.spec,
            ln.classes,
            ln.meta.get("window", "auto"),
            f"fine-tuned {ln.spec.arch} ({path})",
        )
    if path.suffix != ".skops":
        raise FeatxError(
            f"{path}: give a fine-tuned model.pt ('featx finetune') or a .skops model ('featx fit --save')."
        )
    return _from_fit_model(path, models_dir)


def _from_fit_model(path: Path, models_dir) -> Explainer:
    import torch

    model = load_model(path)
    prov = model.meta["provenance"]
    if model.meta.get("kind") != "cnn":
        raise FeatxError(
            f"{path}: Grad-CAM needs a model fitted on CNN features ('featx extract'); this one is "
            f"{model.meta.get('kind')}."
        )
    cfg = ExtractConfig.from_provenance(prov, models_dir=models_dir)
    if len(model.models) != 1:
        raise FeatxError(
            f"{path} holds {len(model.models)} sequence models (--fuse); Grad-CAM explains one model. "
            "Fit one sequence without --fuse to explain it."
        )
    if cfg.backbone.startswith("onnx:") or cfg.tta != "none":
        raise FeatxError(
            f"{path}: Grad-CAM needs the torch backbone; features from a user ONNX model or with TTA "
            "cannot be traced back."
        )
    if cfg.layer:
        raise FeatxError(f"{path}: features from layer {cfg.layer!r}; Grad-CAM through a head needs the default layer.")
    resolved = resolve_backbone(cfg.backbone, cfg.weights, None, models_dir)
    spec, features = resolved.spec, resolved.model
    if spec.weights_sha256 != prov["spec"].get("weights_sha256"):
        raise FeatxError(
            f"{path}: the backbone weights found here (sha256 {str(spec.weights_sha256)[:12]}) are not "
            "the ones the model was trained on; put the training weights back."
        )
    classes = model.classes
    head = next(iter(model.models.values()))
    w = linear_weights(head, len(classes))
    dropped = set(model.meta.get("dropped_features") or [])
    keep = np.array([i for i in range(spec.feature_dim) if f"f{i:04d}" not in dropped])
    full = np.zeros((len(classes), spec.feature_dim))
    full[:, keep] = w
    weight = torch.tensor(full, dtype=torch.float32)
    layer_name = block_map(spec.arch, features).gradcam_layer

    def proba(x):
        with torch.inference_mode():
            return head.predict_proba(features(x).numpy()[:, keep])

    return Explainer(
        lambda x: features(x) @ weight.T,
        proba,
        submodule(features, layer_name),
        spec,
        classes,
        cfg.window,
        f"{spec.name} + {model.meta['head']['name']} head ({path})",
    )


def run_gradcam(
    model_path, source, out, *, target: str | None = None, models_dir="models_onnx", batch_size: int = 16
) -> list[tuple]:
    """Write ``out/<id>.png`` overlays and ``out/gradcam.csv``; returns (id, predicted, explained class, path)."""
    import torch

    ex = explainer(model_path, models_dir)
    if target is not None and target not in ex.classes:
        raise FeatxError(f"--target {target!r} is not a class of the model ({', '.join(ex.classes)}).")
    man = input_manifest(source)
    bank = ImageBank(list(man), ex.spec, ex.window, cache_gb=0)
    out = Path(out)
    rows = []
    for i in range(0, len(bank), batch_size):
        idx = np.arange(i, min(i + batch_size, len(bank)))
        x = torch.from_numpy(bank.batch(idx))
        proba = ex.proba(x)
        pred = proba.argmax(1).tolist()
        cls = [ex.classes.index(target)] * len(idx) if target is not None else pred
        maps, _ = gradcam(ex.score, ex.layer, x, cls)
        for j, k in enumerate(idx):
            s = man[int(k)]
            p = proba[j]
            title = f"{s.sample_id}: {ex.classes[pred[j]]} ({p[pred[j]]:.2f}); map of {ex.classes[cls[j]]}"
            path = overlay(bank.crops([int(k)])[0], maps[j], out / f"{safe_name(s.sample_id)}.png", title)
            rows.append((s.sample_id, ex.classes[pred[j]], ex.classes[cls[j]], str(path)))
    with open(out / "gradcam.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "predicted", "explained_class", "overlay"])
        w.writerows(rows)
    return rows


def fold_overlays(run, bank, ids, y, te, classes, bmap, k: int, out: Path, device: str, fold: int = 0) -> list:
    """Overlays for up to ``k`` held-out samples of this fold, by the fold's own model: the most confident
    wrong predictions and the most confident right ones, about half each (an odd ``k`` leans to wrong ones
    on odd folds, so one overlay per fold still shows both kinds over the run)."""
    import torch

    pred = run.proba.argmax(1)
    conf = run.proba.max(1)
    wrong = [i for i in np.argsort(-conf) if pred[i] != y[te[i]]]
    right = [i for i in np.argsort(-conf) if pred[i] == y[te[i]]]
    n_wrong = min(len(wrong), (k + fold % 2) // 2)
    chosen = wrong[:n_wrong] + right[: k - n_wrong]
    if not chosen:
        return []
    pos = te[np.array(chosen)]
    net = run.net.eval()
    x = torch.from_numpy(bank.batch(pos)).to(device)
    maps, _ = gradcam(net, submodule(net.features, bmap.gradcam_layer), x, pred[chosen].tolist())
    paths = []
    for j, (i, p) in enumerate(zip(pos, pred[chosen])):
        verdict = "right" if p == y[i] else "wrong"
        title = f"{ids[i]}: {classes[y[i]]} -> {classes[p]} ({run.proba[chosen[j], p]:.2f})"
        paths.append(
            overlay(bank.crops([i])[0], maps[j], out / "gradcam" / f"{verdict}_{safe_name(ids[i])}.png", title)
        )
    return paths
