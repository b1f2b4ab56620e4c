"""featx command line: each command resolves options -> one library call -> renders the result.

Only the CLI (:func:`featx.cli_common.handle_errors`) turns :class:`featx.errors.FeatxError`
into an exit code and a one-line message. ``manifest`` and ``store`` commands live in
:mod:`featx.cli.data`.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from featx import __version__
from featx.cli import evaluate
from featx.cli import train
from featx.cli.common import handle_errors, out_console, setup_logging
from featx.cli.data import manifest_app, store_app

app = typer.Typer(
    name="featx",
    help="Feature-based transfer learning for medical images: frozen ImageNet backbones (ONNX Runtime) -> "
    "HDF5 feature store -> cross-validated scikit-learn heads with honest metrics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
app.add_typer(manifest_app, name="manifest")
app.add_typer(store_app, name="store")


def _version(value: bool) -> None:
    if value:
        out_console.print(f"featx {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show progress messages (INFO logging).")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = None,
) -> None:
    """featx: frozen CNN features and radiomics for medical image classification."""
    setup_logging(verbose)


@app.command()
@handle_errors
def extract(
    manifest: Annotated[Path, typer.Option("--manifest", "-m", help="Manifest CSV (columns path,label[,subject,split,id]) or a folder of class sub-folders.")],
    backbone: Annotated[str, typer.Option("--backbone", "-b", help="Registered backbone; see 'featx backbones'.")],
    store: Annotated[Path, typer.Option("--store", "-s", help="HDF5 feature store (created if missing).")],
    weights: Annotated[str, typer.Option(help="'imagenet' (default weights, cached under $TORCH_HOME), 'random' (tests only), or a .pth file.")] = "imagenet",
    name: Annotated[Optional[str], typer.Option(help="Feature-set name in the store (default: the backbone name).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per inference batch.")] = 32,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Image decoding workers (default: CPU count, max 8).")] = None,
    decode: Annotated[str, typer.Option(help="Decoding workers: thread (measured faster) or process.")] = "thread",
    provider: Annotated[str, typer.Option(help="ONNX Runtime provider: auto (TensorRT, CUDA, CPU: the first that works), cpu, cuda, tensorrt.")] = "auto",
    runtime: Annotated[str, typer.Option(help="auto (ONNX Runtime; torch on a GPU whose ONNX Runtime lacks GPU providers), onnx or torch.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, fp16 (TensorRT, or torch on GPU) or bf16 (torch).")] = "fp32",
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model (torch runtime; large GPU jobs).")] = False,
    models_dir: Annotated[Path, typer.Option(help="Folder of cached ONNX exports.")] = Path("models_onnx"),
    overwrite: Annotated[bool, typer.Option(help="Recompute all rows (and replace a feature set made with other settings).")] = False,
    max_failures: Annotated[str, typer.Option(help="Abort after more than N (or P%) unreadable images.")] = "10%",
    window: Annotated[str, typer.Option(help="Intensity window for volumes/DICOM: auto, file, brain, lung, abdomen, bone, percentile[:LO:HI], minmax.")] = "auto",
    layers: Annotated[Optional[str], typer.Option("--layers", "--layer", help="Where to cut the backbone (see 'featx backbones'): e.g. pool5 for VGG, or layer2+layer3+layer4 for pooled multi-layer features.")] = None,
    tta: Annotated[str, typer.Option(help="Test-time augmentation: none, or hflip (mean of the image's and its mirror's features).")] = "none",
    interpolation: Annotated[Optional[str], typer.Option(help="Resize filter instead of the weights' own: bilinear or bicubic (recorded; predict reuses it).")] = None,
    resize_to_input: Annotated[bool, typer.Option(help="Resize the short side straight to the input size (e.g. 299) instead of the weights' resize + centre crop.")] = False,
    ray: Annotated[Optional[str], typer.Option(metavar="ADDRESS", help="Run on a Ray cluster: auto (the running cluster, or $RAY_ADDRESS), local (start one here) or ray://head:10001. Needs featx\\[ray].")] = None,
) -> None:
    """Extract frozen backbone features for every image of a manifest into an HDF5 store.

    Resumable and crash-safe: a rerun computes only rows not yet in the store, also after a kill.

    Example: [bold]featx extract --manifest m.csv --backbone resnet18 --store features.h5[/]
    """
    from featx.extract.run import extract as run_extract
    from featx.dataset.manifest import Manifest

    man = Manifest.load(manifest)
    s = run_extract(
        man, backbone, store, weights=weights, name=name, batch_size=batch_size, workers=workers,
        provider=provider, models_dir=models_dir, overwrite=overwrite, max_failures=max_failures, window=window,
        layer=layers, runtime=runtime, precision=precision, compile=compile, tta=tta, decode=decode, ray=ray,
        interpolation=interpolation, resize_to_input=resize_to_input,
    )
    out_console.print(
        f"[bold]{s.feature_set}[/] ({s.spec_name}, {s.provider}): {s.n_samples} samples, {s.n_extracted} extracted, "
        f"{s.n_already} already in the store, {len(s.failures)} failed"
        + (f", {s.n_removed} no longer in the manifest (kept, flagged)" if s.n_removed else "") + f"; {s.wall_s:.1f} s"
        + (f", {s.images_per_s:.1f} img/s" if s.n_extracted else "") + f" -> {s.store}"
    )
    _print_problems(s.failures, "failed", "error column")


@app.command()
@handle_errors
def radiomics(
    manifest: Annotated[Path, typer.Option("--manifest", "-m", help="Manifest CSV: images or volumes with a 'mask' column (or use --auto-mask).")],
    store: Annotated[Path, typer.Option("--store", "-s", help="HDF5 feature store (created if missing; the same one 'featx extract' writes).")],
    params: Annotated[str, typer.Option(help="Preset (default, mr-2d, ct-3d) or a pyradiomics parameter file (.yaml/.json).")] = "default",
    mode: Annotated[str, typer.Option(help="2d: one vector per image or slice; 3d: one per volume; auto: 3d when every row is a volume.")] = "auto",
    jobs: Annotated[Optional[int], typer.Option(min=1, help="Worker processes, one case each (default: every core).")] = None,
    auto_mask: Annotated[Optional[str], typer.Option(help="Mask for rows without one: whole (the whole image) or otsu (Otsu foreground). Recorded.")] = None,
    label: Annotated[Optional[int], typer.Option(help="Mask value of the region (default: the parameters' label, 1).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Feature-set name (default: radiomics.<preset> or radiomics.<settings hash>).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Recompute all rows (and replace a feature set made with other settings).")] = False,
    max_failures: Annotated[str, typer.Option(help="Stop after more than N (or P%) failed cases; computed rows are kept.")] = "10%",
) -> None:
    """Compute pyradiomics features for every sample into the store, next to the CNN features.

    Resumable and crash-safe like extract; a failing case is recorded with its reason, NaN values are named.

    Example: [bold]featx radiomics --manifest volumes.csv --store features.h5 --params default --jobs 4[/]
    """
    from featx.dataset.manifest import Manifest
    from featx.radiomics.run import run_radiomics

    man = Manifest.load(manifest)
    s = run_radiomics(man, store, params=params, mode=mode, jobs=jobs, auto_mask=auto_mask, label=label, name=name,
                      overwrite=overwrite, max_failures=max_failures)
    out_console.print(
        f"[bold]{s.feature_set}[/] ({s.n_features} features, {s.mode}, {s.jobs} job(s)): {s.n_samples} samples, "
        f"{s.n_computed} computed, {s.n_already} already in the store, {len(s.failures)} failed"
        + (f", {len(s.notes)} with NaN or skipped features (noted)" if s.notes else "")
        + (f", {s.n_removed} no longer in the manifest (kept, flagged)" if s.n_removed else "")
        + f"; {s.wall_s:.1f} s" + (f", {s.cases_per_s:.2f} cases/s" if s.n_computed else "") + f" -> {s.store}",
        highlight=False,
    )
    _print_problems(s.failures, "failed", "error column")
    _print_problems(s.notes, "note", "note column")


def _print_problems(items: list[tuple[str, str]], what: str, column: str, n: int = 20) -> None:
    colour = "red" if what == "failed" else "yellow"
    for sid, why in items[:n]:
        out_console.print(f"  [{colour}]{what}[/] {sid}: {why}", highlight=False)
    if len(items) > n:
        out_console.print(f"  ... and {len(items) - n} more (all are in the store's {column})")


for _command in (evaluate.fit, evaluate.bench, train.finetune, evaluate.compare, evaluate.report, evaluate.predict, train.gradcam):
    app.command()(handle_errors(_command))


@app.command()
@handle_errors
def demo(
    out: Annotated[Path, typer.Option(help="Output folder for images, manifest, store and report.")] = Path("featx-demo"),
) -> None:
    """Run the offline demo on BreastMNIST: PNGs + manifest -> EfficientNet-Lite0 (ONNX Runtime) -> logistic regression,
    and a radiomics row (pyradiomics, whole-image masks) through the same head and folds.

    Example: [bold]featx demo --out featx-demo[/]
    """
    from featx.demo.demo import REFERENCE, run_demo

    results = run_demo(out)
    evaluate.print_results(results)
    rad = results.get("radiomics")
    if rad:
        t = rad["test"]
        out_console.print(
            f"radiomics row, {rad['feature_set']} ({rad['n_features']} pyradiomics features, {rad['masks']}) + "
            f"{results['head']['name']}: CV AUC {rad['cv_auc']:.3f}, test AUC {t['auc']:.3f} "
            f"({t['auc_ci'][0]:.3f}-{t['auc_ci'][1]:.3f}), ACC {t['accuracy']:.3f}; report: "
            f"{Path(rad['results']).parent / 'report.html'}", highlight=False)
    for name, ref in REFERENCE.items():
        out_console.print(f"published reference, {name}: test AUC {ref['auc']:.3f}, ACC {ref['accuracy']:.3f}")


@app.command()
@handle_errors
def export(
    backbone: Annotated[str, typer.Option("--backbone", "-b", help="Registered backbone; see 'featx backbones'.")],
    weights: Annotated[str, typer.Option(help="'imagenet', 'random' (tests only), or a .pth file.")] = "imagenet",
    layer: Annotated[Optional[str], typer.Option(help="Where to cut the graph (default: pooled penultimate layer).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 18,
    models_dir: Annotated[Path, typer.Option(help="Folder of ONNX exports.")] = Path("models_onnx"),
) -> None:
    """Export a backbone to ONNX (checked with onnx.checker and against torch), with a JSON sidecar.

    Cached by content: the same spec, weights, opset and torch version reuse the file.

    Example: [bold]featx export --backbone resnet18 --opset 18[/]
    """
    from featx.backbones.export import export_onnx
    from featx.backbones.weights import load_backbone

    spec, model = load_backbone(backbone, weights, layer=layer)
    ex = export_onnx(spec, model, models_dir, opset=opset)
    side = ex.sidecar
    out_console.print(
        f"{ex.onnx_path} ({ex.onnx_path.stat().st_size / 2**20:.1f} MiB, opset {side['opset']}, {side['exporter']}): "
        f"sha256 {side['onnx_sha256']}; parity max |onnx - torch| {side['parity']['max_abs_diff']:.2e} at output "
        f"scale {side['parity']['output_scale']:.2e}; sidecar {ex.onnx_path.with_suffix('.json')}", highlight=False,
    )


@app.command()
@handle_errors
def backbones(
    models_dir: Annotated[Path, typer.Option(help="Folder of cached ONNX exports.")] = Path("models_onnx"),
) -> None:
    """List registered backbones: input size, feature dim, weights, and what is present locally.

    Example: [bold]featx backbones[/]
    """
    from featx.backbones import list_entries
    from featx.backbones.status import local_status

    table = Table(title="featx backbones", caption="weights/export: present locally (yes) or fetched/exported on first use (no)")
    for col in ("backbone", "input", "dim", "weights", "export", "default weights"):
        table.add_column(col, no_wrap=col != "default weights", overflow="fold")
    notes = []
    for entry in list_entries():
        spec = entry.spec()
        have_weights, have_export = local_status(entry, spec, models_dir)
        table.add_row(entry.arch, f"{spec.crop_size}x{spec.crop_size}", str(spec.feature_dim),
                      "yes" if have_weights else "no", "yes" if have_export else "no", spec.weights_id)
        layers = ", ".join(f"{k} ({v.dim}-d)" for k, v in entry.layers.items())
        notes.append(f"  {entry.arch}: {entry.description}. Layers: {layers}")
    out_console.print(table)
    out_console.print("\n".join(notes), highlight=False)
    tuned = sorted(models_dir.glob("*.finetune.json")) if models_dir.is_dir() else []
    if tuned:
        out_console.print(f"fine-tuned backbones in {models_dir} ('featx finetune --export'): "
                          + ", ".join(p.name.removesuffix(".finetune.json") for p in tuned), highlight=False)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
