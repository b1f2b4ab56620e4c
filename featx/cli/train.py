"""``featx finetune`` and ``featx gradcam`` (registered on the app in :mod:`featx.cli.app`)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from featx.cli.common import out_console
from featx.cli.evaluate import Boot, Cv, Folds, Positive, Repeats, Seed, Split, SplitBy, TestSize, print_results


def finetune(
    manifest: Annotated[Path, typer.Option("--manifest", "-m", help="Manifest CSV or image folder (as for extract).")],
    backbone: Annotated[str, typer.Option("--backbone", "-b", help="resnet18, resnet50, vgg11_bn, vgg16, googlenet, inception_v3, densenet121, efficientnet_lite0, efficientnet_b0, mobilenet_v3_large.")],
    out: Annotated[Path, typer.Option(help="Folder for results.json, curves, predictions, Grad-CAM overlays, model.pt.")],
    freeze: Annotated[str, typer.Option(help="Freeze the lowest N logical blocks (0 = train everything; 'all' = only the new head, the linear probe). The blocks per backbone: featx/finetune/blocks.py and the README.")] = "0",
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (per fold).")] = 10,
    cv: Cv = 10,
    repeats: Repeats = 1,
    split: Split = "cv",
    test_size: TestSize = None,
    folds: Folds = None,
    seed: Seed = 0,
    positive: Positive = None,
    bootstrap: Boot = 1000,
    weights: Annotated[str, typer.Option(help="imagenet (default weights), a .pth file, or random (tests only).")] = "imagenet",
    head: Annotated[str, typer.Option(help="New head: linear, or mlp (features -> hidden -> classes, ReLU, dropout).")] = "linear",
    hidden: Annotated[int, typer.Option(min=1, help="Hidden width of the mlp head (GoogLeNet glioma study: 128).")] = 128,
    dropout: Annotated[float, typer.Option(help="Dropout before each head layer (e.g. 0.5).")] = 0.0,
    batch_size: Annotated[int, typer.Option(min=2, help="Training batch size.")] = 32,
    lr: Annotated[float, typer.Option(help="Learning rate of the new head.")] = 1e-3,
    lr_backbone: Annotated[float, typer.Option(help="Learning rate of the unfrozen backbone blocks.")] = 1e-4,
    optimizer: Annotated[str, typer.Option(help="adamw or sgd (momentum 0.9); cosine schedule either way.")] = "adamw",
    weight_decay: Annotated[float, typer.Option(help="Weight decay.")] = 1e-4,
    val_fraction: Annotated[float, typer.Option(help="Subjects of each training fold held out for early stopping (0: none, keep the last epoch).")] = 0.15,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without a lower validation loss (0: never).")] = 10,
    class_weight: Annotated[bool, typer.Option(help="Weight the loss by inverse class frequency.")] = True,
    hflip: Annotated[bool, typer.Option(help="Random horizontal flips.")] = True,
    vflip: Annotated[bool, typer.Option(help="Random vertical flips.")] = False,
    rotate: Annotated[float, typer.Option(help="Random rotation, +-degrees.")] = 12.0,
    shift: Annotated[float, typer.Option(help="Random shift, +- fraction of the side.")] = 0.0,
    shear: Annotated[float, typer.Option(help="Random shear, +-degrees.")] = 0.0,
    jitter: Annotated[float, typer.Option(help="Random contrast (1 +- j) and brightness (+- j std) jitter.")] = 0.0,
    input_size: Annotated[Optional[int], typer.Option(help="Network input side (default the backbone's, e.g. 224); smaller is faster on a CPU.")] = None,
    converged_from: Annotated[float, typer.Option(help="'After convergence' in the summaries: this fraction of the epochs run onwards.")] = 0.5,
    amp: Annotated[bool, typer.Option(help="Mixed precision (float16) on a GPU.")] = True,
    device: Annotated[str, typer.Option(help="auto (the GPU when torch sees one), cpu or cuda.")] = "auto",
    gradcam: Annotated[int, typer.Option(min=0, help="Grad-CAM overlays of held-out images (right and wrong), by their fold's model.")] = 8,
    export: Annotated[Optional[str], typer.Option(help="Export the final model's backbone as <arch>.ft-EXPORT for 'featx extract'.")] = None,
    models_dir: Annotated[Path, typer.Option(help="Where --export writes (and extract finds) backbones.")] = Path("models_onnx"),
    window: Annotated[str, typer.Option(help="Intensity window for volumes/DICOM (as for extract).")] = "auto",
    sequence: Annotated[Optional[str], typer.Option(help="Train on one sequence's rows (e.g. T2), or 'each': one model per sequence in OUT/<sequence>/, on folds shared by all sequences.")] = None,
    fuse: Annotated[Optional[str], typer.Option(help="vote or mean: one model per sequence, fused per subject (as 'featx fit --fuse').")] = None,
    split_by: SplitBy = "subject",
) -> None:
    """Fine-tune a backbone on the same folds as 'featx fit', with curves, summaries and Grad-CAM.

    Example: [bold]featx finetune -m featx-demo/manifest.csv -b efficientnet_lite0 --freeze 3 --epochs 10 --cv 5 --out ft/[/]
    """
    from featx.finetune.data import Augment
    from featx.finetune.model import HeadConfig
    from featx.finetune.run import run_finetune
    from featx.finetune.train import TrainConfig
    from featx.dataset.manifest import Manifest

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, lr_backbone=lr_backbone, optimizer=optimizer,
                      weight_decay=weight_decay, val_fraction=val_fraction, patience=patience or None,
                      class_weight=class_weight, augment=Augment(hflip, vflip, rotate, shift, shear, jitter), amp=amp,
                      converged_from=converged_from)
    results = run_finetune(Manifest.load(manifest), backbone, out, weights=weights, freeze=freeze,
                           head=HeadConfig(head, hidden, dropout), train=cfg, cv=cv, repeats=repeats, split=split,
                           test_size=test_size, folds=folds, seed=seed, positive=positive, input_size=input_size,
                           window=window, device=device, gradcam=gradcam, export=export, models_dir=models_dir,
                           n_boot=bootstrap, sequence=sequence, fuse=fuse, split_by=split_by)
    if results["type"] == "finetune-sequences":
        for q, run in results["sequences"].items():
            out_console.print(f"sequence {q}: {run}", highlight=False)
        return
    print_results(results)
    ft = results["finetune"]
    for q in sorted({r.get("sequence") for r in ft["runs"]}, key=str):
        runs = [r for r in ft["runs"] if r["repeat"] != "final" and r.get("sequence") == q]
        if not runs:
            continue
        s = [r["summary"] for r in runs]
        out_console.print((f"{q}: " if q else "") + f"{s[0]['curve']} per fold: best {_mean(s, 'best_acc')}, mean after convergence "
                          f"{_mean(s, 'mean_acc_after_convergence')}, first epoch reaching it "
                          f"{_mean(s, 'first_epoch_reaching_mean', '.1f')}; {_mean(s, 'seconds_per_epoch', '.1f')} s/epoch; "
                          f"{sum(r['seconds'] for r in runs):.0f} s", highlight=False)
    out_console.print(f"{ft['seconds']:.0f} s in all", highlight=False)
    if ft.get("exported"):
        out_console.print(f"exported backbone: {ft['exported']['name']} (use: featx extract --backbone "
                          f"{ft['exported']['name']} --models-dir {models_dir})", highlight=False)


def _mean(summaries: list, key: str, f: str = ".3f") -> str:
    import numpy as np

    return format(float(np.mean([s[key] for s in summaries])), f)


def gradcam(
    source: Annotated[Path, typer.Argument(help="An image, a folder of images, or a manifest CSV.")],
    model: Annotated[Path, typer.Option("--model", help="A fine-tuned model.pt ('featx finetune') or a .skops model with a linear head ('featx fit --save').")],
    out: Annotated[Path, typer.Option(help="Folder for the overlay PNGs and gradcam.csv.")] = Path("gradcam"),
    target: Annotated[Optional[str], typer.Option(help="Explain this class (default: each image's predicted class).")] = None,
    models_dir: Annotated[Path, typer.Option(help="Folder of exported backbones (for fine-tuned feature sets).")] = Path("models_onnx"),
) -> None:
    """Grad-CAM overlays by the exact model that predicts the images.

    Example: [bold]featx gradcam --model ft/model.pt new_images/ --out cams/[/]
    """
    from featx.finetune.explain import run_gradcam

    rows = run_gradcam(model, source, out, target=target, models_dir=models_dir)
    out_console.print(f"{len(rows)} overlay(s) -> {out} (index: {out / 'gradcam.csv'})")
