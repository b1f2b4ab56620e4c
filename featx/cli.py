"""featx command line: each command resolves options -> one library call -> renders the result.

Only this module turns :class:`featx.errors.FeatxError` into an exit code and a
one-line message.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from featx import __version__
from featx.errors import FeatxError
from featx.heads import list_heads

app = typer.Typer(
    name="featx",
    help="Feature-based transfer learning for medical images: frozen ImageNet backbones (ONNX Runtime) -> "
    "HDF5 feature store -> cross-validated scikit-learn heads with honest metrics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
out_console = Console(soft_wrap=True)  # never hard-wrap: output stays grep-able when piped
err_console = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("featx")

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


class _LineFormatter(logging.Formatter):
    """``warning: message``, one line per record, as the errors are printed."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler()  # stderr
    handler.setFormatter(_LineFormatter())
    root = logging.getLogger("featx")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def _handle_errors(fn):
    """Domain errors -> one red line and exit 1; Ctrl-C -> exit 130; other errors -> one line too."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FeatxError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted:[/] everything written so far is kept; rerun the command to resume.")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if os.environ.get("FEATX_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {exc}. This is a featx bug; rerun with "
                "FEATX_DEBUG=1 for the traceback and report it.", highlight=False, soft_wrap=True,
            )
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper


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
    _setup_logging(verbose)


@app.command()
@_handle_errors
def extract(
    manifest: Annotated[Path, typer.Option("--manifest", "-m", help="Manifest CSV (columns path,label[,subject,split,id]) or a folder of class sub-folders.")],
    backbone: Annotated[str, typer.Option("--backbone", "-b", help="Registered backbone; see 'featx backbones'.")],
    store: Annotated[Path, typer.Option("--store", "-s", help="HDF5 feature store (created if missing).")],
    weights: Annotated[str, typer.Option(help="'imagenet' (default weights, cached under $TORCH_HOME), 'random' (tests only), or a .pth file.")] = "imagenet",
    name: Annotated[Optional[str], typer.Option(help="Feature-set name in the store [default: the backbone name].")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per inference batch.")] = 32,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Image decoding workers [default: CPU count, max 8].")] = None,
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
    ray: Annotated[Optional[str], typer.Option(metavar="ADDRESS", help="Run on a Ray cluster: auto (the running cluster, or $RAY_ADDRESS), local (start one here) or ray://head:10001. Needs featx\\[ray].")] = None,
) -> None:
    """Extract frozen backbone features for every image of a manifest into an HDF5 store.

    Resumable and crash-safe: a rerun computes only rows not yet in the store, also after a kill.

    Example: [bold]featx extract --manifest m.csv --backbone resnet18 --store features.h5[/]
    """
    from featx.extract import extract as run_extract
    from featx.manifest import Manifest

    man = Manifest.load(manifest)
    s = run_extract(
        man, backbone, store, weights=weights, name=name, batch_size=batch_size, workers=workers,
        provider=provider, models_dir=models_dir, overwrite=overwrite, max_failures=max_failures, window=window,
        layer=layers, runtime=runtime, precision=precision, compile=compile, tta=tta, decode=decode, ray=ray,
    )
    out_console.print(
        f"[bold]{s.feature_set}[/] ({s.spec_name}, {s.provider}): {s.n_samples} samples, {s.n_extracted} extracted, "
        f"{s.n_already} already in the store, {len(s.failures)} failed"
        + (f", {s.n_removed} no longer in the manifest (kept, flagged)" if s.n_removed else "") + f"; {s.wall_s:.1f} s"
        + (f", {s.images_per_s:.1f} img/s" if s.n_extracted else "") + f" -> {s.store}"
    )
    for sid, why in s.failures[:20]:
        out_console.print(f"  [red]failed[/] {sid}: {why}", highlight=False)
    if len(s.failures) > 20:
        out_console.print(f"  ... and {len(s.failures) - 20} more (their reasons are in the store's error column)")


manifest_app = typer.Typer(help="Build and check manifests.", no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")


@manifest_app.command("build")
@_handle_errors
def manifest_build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Manifest CSV to write.")],
    folder: Annotated[Optional[Path], typer.Option(help="Folder of class sub-folders: DIR/<label>/**/<image>.")] = None,
    volumes: Annotated[Optional[Path], typer.Option(help="Volume-level CSV (path = volume file or DICOM series folder; mask, label, subject, sequence, split), or a folder of volumes with masks named *_label/*_mask/*_seg.")] = None,
    slices: Annotated[str, typer.Option(help="Slice policy for --volumes: all, mask, top:K, min-area:A (pixels, or 30%), around-max:N.")] = "mask",
    axis: Annotated[str, typer.Option(help="Slice axis in each image's own orientation: axial, coronal, sagittal.")] = "axial",
    crop_margin: Annotated[Optional[int], typer.Option(help="Crop slices to the mask's bounding box plus this many pixels.")] = None,
    label_value: Annotated[Optional[int], typer.Option(help="Use only this mask label (default: any non-zero voxel).")] = None,
    skip_bad: Annotated[bool, typer.Option(help="Leave out volumes that cannot be sliced; list them in OUT.skipped.csv.")] = False,
) -> None:
    """Write a manifest from a folder tree, or expand volumes + masks into 2D slice samples.

    Examples: [bold]featx manifest build --folder images/ --out m.csv[/]
    and [bold]featx manifest build --volumes volumes.csv --slices around-max:20 --out slices.csv[/]
    """
    from featx.ingest import build_from_folder, build_from_volumes

    if (folder is None) == (volumes is None):
        raise FeatxError("Give exactly one of --folder DIR or --volumes volumes.csv.")
    if folder is not None:
        man = build_from_folder(folder, out)
    else:
        man = build_from_volumes(volumes, slices, out, skip_bad=skip_bad, axis=axis, crop_margin=crop_margin,
                                 label_value=label_value)
    out_console.print(f"{len(man)} samples ({', '.join(f'{k}: {v}' for k, v in _counts(man).items())}) -> {out}")


def _counts(man) -> dict:
    from collections import Counter

    return dict(sorted(Counter(s.label or "(no label)" for s in man).items()))


@manifest_app.command("check")
@_handle_errors
def manifest_check(
    manifest: Annotated[Path, typer.Argument(help="Manifest CSV.")],
    cv: Annotated[int, typer.Option(help="Folds the data must support.")] = 10,
    labels: Annotated[Optional[str], typer.Option(help="Comma-separated expected labels; others are problems.")] = None,
    read_files: Annotated[bool, typer.Option(help="Open every image and mask to find unreadable files and empty masks.")] = True,
) -> None:
    """Validate a manifest: print a summary and every problem at once (exit 1 if any).

    Example: [bold]featx manifest check m.csv --cv 10[/]
    """
    from featx.checks import check_manifest

    rep = check_manifest(manifest, cv=cv, labels=labels.split(",") if labels else None, read_files=read_files)
    table = Table(title=f"{manifest}: {rep.n_samples} samples")
    table.add_column("label")
    table.add_column("images", justify="right")
    table.add_column("subjects", justify="right")
    for label, n in rep.images_per_label.items():
        table.add_row(label, str(n), str(rep.subjects_per_label.get(label, "-")))
    out_console.print(table)
    if rep.images_per_subject:
        lo, med, hi = rep.images_per_subject
        out_console.print(f"images per subject: min {lo}, median {med:g}, max {hi}")
    if rep.sequences:
        out_console.print(f"sequences: {rep.sequences}; subjects by number of sequences: {rep.sequences_per_subject}")
    for w in rep.warnings:
        out_console.print(f"[yellow]warning:[/] {w}", highlight=False)
    for p in rep.problems:
        out_console.print(f"[red]problem:[/] {p}", highlight=False)
    if not rep.ok:
        raise FeatxError(f"{manifest}: {len(rep.problems)} problem(s), listed above.")
    out_console.print("[green]ok[/]")


@app.command()
@_handle_errors
def fit(
    store: Annotated[Path, typer.Option("--store", "-s", help="HDF5 feature store written by 'featx extract'.")],
    features: Annotated[str, typer.Option("--features", "-f", help="Feature-set name in the store (e.g. resnet18).")],
    head: Annotated[str, typer.Option(help="Classifier head: " + ", ".join(h.name for h in list_heads()) + ".")] = "logreg",
    cv: Annotated[int, typer.Option(help="Number of cross-validation folds (grouped by subject when known).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the fold shuffle and the head.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Folder for results.json, prediction CSVs and report.html.")] = None,
    positive: Annotated[Optional[str], typer.Option(help="Positive class for sensitivity/specificity (binary).")] = None,
) -> None:
    """Cross-validate a head on a feature set; samples with split=test are held out and scored once.

    Example: [bold]featx fit --store features.h5 --features resnet18 --head logreg --cv 10 --out results/[/]
    """
    from featx.fit import run_fit

    results = run_fit(store, features, head=head, cv=cv, seed=seed, out=out, positive=positive)
    _print_results(results)


@app.command()
@_handle_errors
def demo(
    out: Annotated[Path, typer.Option(help="Output folder for images, manifest, store and report.")] = Path("featx-demo"),
) -> None:
    """Run the offline demo on BreastMNIST: PNGs + manifest -> EfficientNet-Lite0 (ONNX Runtime) -> logistic regression.

    Example: [bold]featx demo --out featx-demo[/]
    """
    from featx.demo import REFERENCE, run_demo

    results = run_demo(out)
    _print_results(results)
    for name, ref in REFERENCE.items():
        out_console.print(f"published reference, {name}: test AUC {ref['auc']:.3f}, ACC {ref['accuracy']:.3f}")


@app.command()
@_handle_errors
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
@_handle_errors
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


def _print_results(results: dict) -> None:
    from featx.report import summary_rows

    table = Table(title=f"{results['feature_set']} + {results['head']['name']}: {results['protocol']['cv']}-fold CV"
                  + (" and held-out test" if results["test"] else ""))
    for col in ("metric", "CV pooled", "CV per fold", "test"):
        table.add_column(col, no_wrap=True)
    for row in summary_rows(results):
        table.add_row(*row)
    out_console.print(table)
    if "outputs" in results:
        out_console.print(f"report: {results['outputs']['report']}\nresults: {results['outputs']['results']}")


store_app = typer.Typer(help="Inspect and export feature stores.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("info")
@_handle_errors
def store_info(
    store: Annotated[Path, typer.Argument(help="The HDF5 feature store.")],
) -> None:
    """Summarise a store: samples, labels, and each feature set's rows (ok, failed, to do, removed).

    Example: [bold]featx store info features.h5[/]
    """
    from featx.store_tools import describe_store

    d = describe_store(store)
    labels = ", ".join(f"{k or '(none)'} {v}" for k, v in d["labels"].items())
    out_console.print(f"[bold]{d['path']}[/] ({d['size_mb']} MB, {d['format']}, created {d['created']} by featx "
                      f"{d['featx_version']})", highlight=False)
    out_console.print(f"  {d['samples']} samples, {d['subjects']} subjects; labels: {labels}", highlight=False)
    for f in d["feature_sets"]:
        extra = "".join(f", {f[k]} {k.replace('_', ' ')}" for k in ("failed", "to_do", "removed") if f[k])
        out_console.print(f"  [bold]{f['name']}[/] ({f['kind']}, {f['dim']}-d, {f['spec']}, {f['provider']}): "
                          f"{f['ok']} ok{extra}; updated {f['updated']}", highlight=False)
    if d["writer"]:
        out_console.print(f"  being written now by {d['writer']}", highlight=False)
    if d.get("pending_journal"):
        out_console.print(f"  interrupted run: {d['pending_journal']}; the next extract applies it", highlight=False)


@store_app.command("export")
@_handle_errors
def store_export(
    store: Annotated[Path, typer.Argument(help="The HDF5 feature store.")],
    features: Annotated[str, typer.Option("--features", "-f", help="Feature set to export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.csv or .parquet).")],
    format: Annotated[Optional[str], typer.Option(help="csv or parquet [default: from --out's suffix].")] = None,
    include_removed: Annotated[bool, typer.Option(help="Also rows whose samples left the manifest.")] = False,
) -> None:
    """Write a feature set's computed rows with id, label, subject, sequence, split, slice and path.

    Example: [bold]featx store export features.h5 -f resnet18 -o resnet18.parquet[/]
    """
    from featx.store_tools import export_feature_set

    path, n = export_feature_set(store, features, out, format, include_removed)
    out_console.print(f"{n} rows of {features} -> {path}", highlight=False)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
