"""``featx finetune`` and ``featx gradcam``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer

from featx.cli.common import ConfigOption, opt, out_console, settings
from featx.cli.evaluate import print_results
from featx.finetune.config import FinetuneConfig

if TYPE_CHECKING:
    from featx.results.runs import FitResult

T = FinetuneConfig


def finetune(
    ctx: typer.Context,
    manifest: Path | None = opt(T, "manifest", "--manifest", "-m"),
    backbone: str | None = opt(T, "backbone", "--backbone", "-b"),
    out: Path | None = opt(T, "out"),
    freeze: str = opt(T, "freeze"),
    epochs: int = opt(T, "epochs"),
    cv: int = opt(T, "cv"),
    repeats: int = opt(T, "repeats"),
    split: str = opt(T, "split"),
    test_size: float | None = opt(T, "test_size"),
    folds: Path | None = opt(T, "folds"),
    seed: int = opt(T, "seed"),
    positive: str | None = opt(T, "positive"),
    bootstrap: int = opt(T, "bootstrap"),
    weights: str = opt(T, "weights"),
    head: str = opt(T, "head"),
    hidden: int = opt(T, "hidden"),
    dropout: float = opt(T, "dropout"),
    batch_size: int = opt(T, "batch_size"),
    lr: float = opt(T, "lr"),
    lr_backbone: float = opt(T, "lr_backbone"),
    optimizer: str = opt(T, "optimizer"),
    weight_decay: float = opt(T, "weight_decay"),
    val_fraction: float = opt(T, "val_fraction"),
    patience: int = opt(T, "patience"),
    class_weight: bool = opt(T, "class_weight"),
    hflip: bool = opt(T, "hflip"),
    vflip: bool = opt(T, "vflip"),
    rotate: float = opt(T, "rotate"),
    shift: float = opt(T, "shift"),
    shear: float = opt(T, "shear"),
    jitter: float = opt(T, "jitter"),
    input_size: int | None = opt(T, "input_size"),
    converged_from: float = opt(T, "converged_from"),
    amp: bool = opt(T, "amp"),
    device: str = opt(T, "device"),
    gradcam: int = opt(T, "gradcam"),
    export: str | None = opt(T, "export"),
    models_dir: Path = opt(T, "models_dir"),
    window: str = opt(T, "window"),
    sequence: str | None = opt(T, "sequence"),
    fuse: str | None = opt(T, "fuse"),
    split_by: str = opt(T, "split_by"),
    copies: str = opt(T, "copies"),
    drop_test_copies: bool = opt(T, "drop_test_copies"),
    config: Path | None = ConfigOption,
) -> None:
    """Fine-tune a backbone on the same folds as 'featx fit', with curves, summaries and Grad-CAM.

    Example: [bold]featx finetune -m featx-demo/manifest.csv -b efficientnet_lite0 --freeze 3 --epochs 10 --cv 5 --out ft/[/]
    """
    cfg = settings(ctx, FinetuneConfig, config)
    from featx.finetune.run import run_finetune
    from featx.finetune.sequences import SequenceRuns

    result = run_finetune(cfg)
    if isinstance(result, SequenceRuns):
        for q, run in result.sequences.items():
            out_console.print(f"sequence {q}: {run}", highlight=False)
        return
    print_results(result)
    _print_summaries(result)
    if result.finetune.exported:
        name = result.finetune.exported["name"]
        out_console.print(
            f"exported backbone: {name} (use: featx extract --backbone {name} --models-dir {cfg.models_dir})",
            highlight=False,
        )


def _print_summaries(result: FitResult) -> None:
    """Per sequence: the mean over the folds of each run's accuracy-curve summary, and the time spent."""
    ft = result.finetune
    for q in sorted({r.sequence for r in ft.runs}, key=str):
        runs = [r for r in ft.runs if not r.is_final and r.sequence == q and r.summary]
        if not runs:
            continue
        s = [r.summary for r in runs]
        out_console.print(
            (f"{q}: " if q else "") + f"{s[0].curve} per fold: best {_mean(s, 'best_acc')}, mean after "
            f"convergence {_mean(s, 'mean_acc_after_convergence')}, first epoch reaching it "
            f"{_mean(s, 'first_epoch_reaching_mean', '.1f')}; {_mean(s, 'seconds_per_epoch', '.1f')} s/epoch; "
            f"{sum(r.seconds for r in runs):.0f} s",
            highlight=False,
        )
    out_console.print(f"{ft.seconds:.0f} s in all", highlight=False)


def _mean(summaries: list, key: str, f: str = ".3f") -> str:
    return format(float(np.mean([getattr(x, key) for x in summaries])), f)


def gradcam(
    source: Path = typer.Argument(..., help="An image, a folder of images, or a manifest CSV."),
    model: Path = typer.Option(
        ...,
        "--model",
        help="A fine-tuned model.pt ('featx finetune') or a .skops model with a linear head ('featx fit --save').",
    ),
    out: Path = typer.Option(Path("gradcam"), help="Folder for the overlay PNGs and gradcam.csv."),
    target: str | None = typer.Option(None, help="Explain this class (default: each image's predicted class)."),
    models_dir: Path = opt(T, "models_dir"),
) -> None:
    """Grad-CAM overlays by the exact model that predicts the images.

    Example: [bold]featx gradcam --model ft/model.pt new_images/ --out cams/[/]
    """
    from featx.finetune.explain import run_gradcam

    rows = run_gradcam(model, source, out, target=target, models_dir=models_dir)
    out_console.print(f"{len(rows)} overlay(s) -> {out} (index: {out / 'gradcam.csv'})")
