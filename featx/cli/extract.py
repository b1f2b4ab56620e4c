"""``featx extract``, ``featx radiomics``, ``featx export`` and ``featx backbones``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from featx.cli.common import ConfigOption, opt, out_console, print_problems, settings
from featx.errors import ConfigError
from featx.extract.config import ExtractConfig
from featx.radiomics.config import RadiomicsConfig

E, R = ExtractConfig, RadiomicsConfig


def extract(
    ctx: typer.Context,
    manifest: Path | None = opt(E, "manifest", "--manifest", "-m"),
    backbone: str | None = opt(E, "backbone", "--backbone", "-b"),
    store: Path | None = opt(E, "store", "--store", "-s"),
    weights: str = opt(E, "weights"),
    name: str | None = opt(E, "name"),
    batch_size: int = opt(E, "batch_size", min=1),
    workers: int | None = opt(E, "workers", min=1),
    decode: str = opt(E, "decode"),
    provider: str = opt(E, "provider"),
    runtime: str = opt(E, "runtime"),
    precision: str = opt(E, "precision"),
    min_fidelity: float = opt(E, "min_fidelity"),
    calibration: int = opt(E, "calibration", min=8),
    compile: bool = opt(E, "compile", "--compile"),
    models_dir: Path = opt(E, "models_dir"),
    overwrite: bool = opt(E, "overwrite"),
    max_failures: str = opt(E, "max_failures"),
    window: str = opt(E, "window"),
    layer: str | None = opt(E, "layer", "--layers", "--layer"),
    tta: str = opt(E, "tta"),
    interpolation: str | None = opt(E, "interpolation"),
    resize_to_input: bool = opt(E, "resize_to_input"),
    pool: str | None = opt(E, "pool"),
    input_size: int | None = opt(E, "input_size", min=32),
    fit: str | None = opt(E, "fit"),
    jpeg_draft: bool = opt(E, "jpeg_draft"),
    planes: str = opt(E, "planes"),
    plane_mm: float = opt(E, "plane_mm", min=1),
    ray: str | None = opt(E, "ray", metavar="ADDRESS"),
    shard: str | None = opt(E, "shard", metavar="I/N"),
    config: Path | None = ConfigOption,
) -> None:
    """Extract frozen backbone features for every image of a manifest into an HDF5 store.

    Resumable and crash-safe: a rerun computes only rows not yet in the store, also after a kill, and
    recomputes (and names) rows whose image changed since, or whose id now names another file.

    Example: [bold]featx extract --manifest m.csv --backbone resnet18 --store features.h5[/]
    """
    from featx.extract.run import run_extract

    s = run_extract(settings(ctx, ExtractConfig, config))
    out_console.print(
        f"{s.feature_set} ({s.spec_name}, {s.provider}): {s.n_samples} samples, {s.n_extracted} extracted"
        + (f" (of which {len(s.stale)} recomputed: their files changed)" if s.stale else "")
        + f", {s.n_already} already in the store, {len(s.failures)} failed"
        + (f", {len(s.notes)} with a note (see below)" if s.notes else "")
        + (f", {s.n_removed} no longer in the manifest (kept, flagged)" if s.n_removed else "")
        + f"; {s.wall_s:.1f} s"
        + (f", {s.images_per_s:.1f} {s.unit}/s" if s.n_extracted else "")
        + f" -> {s.store}"
    )
    from featx.engines.choose import describe_auto

    for line in describe_auto(s.auto or {}):
        out_console.print(line, highlight=False)
    if s.fidelity and "mean_cosine" in s.fidelity:
        f = s.fidelity
        out_console.print(
            f"{f['engine']} against {f['reference']} on {f['n']} calibration images: mean cosine "
            f"{f['mean_cosine']:.4f}, lowest {f['min_cosine']:.4f} (gate: mean >= {f['min_fidelity']}, each >= "
            f"{f['row_floor']:.3g})"
        )
    if s.copies:
        out_console.print(f"copies: {s.copies}", highlight=False)
    print_problems(s.failures, "failed", "error column")
    print_problems([(x.sample_id, x.reason) for x in s.stale], "recomputed", "")
    print_problems(s.notes, "note", "note column")


def radiomics(
    ctx: typer.Context,
    manifest: Path | None = opt(R, "manifest", "--manifest", "-m"),
    store: Path | None = opt(R, "store", "--store", "-s"),
    params: str = opt(R, "params"),
    mode: str = opt(R, "mode"),
    jobs: int | None = opt(R, "jobs", min=1),
    auto_mask: str | None = opt(R, "auto_mask"),
    label: int | None = opt(R, "label"),
    name: str | None = opt(R, "name"),
    overwrite: bool = opt(R, "overwrite"),
    max_failures: str = opt(R, "max_failures"),
    shard: str | None = opt(R, "shard", metavar="I/N"),
    config: Path | None = ConfigOption,
) -> None:
    """Compute pyradiomics features for every sample into the store, next to the CNN features.

    Resumable and crash-safe like extract (a changed image or mask is recomputed); a failing case is
    recorded with its reason, NaN values are named.

    Example: [bold]featx radiomics --manifest volumes.csv --store features.h5 --params default --jobs 4[/]
    """
    from featx.radiomics.run import run_radiomics

    s = run_radiomics(settings(ctx, RadiomicsConfig, config))
    out_console.print(
        f"{s.feature_set} ({s.n_features} features, {s.mode}, {s.jobs} job(s)): {s.n_samples} samples, "
        f"{s.n_computed} computed"
        + (f" (of which {len(s.stale)} recomputed: their files changed)" if s.stale else "")
        + f", {s.n_already} already in the store, {len(s.failures)} failed"
        + (f", {len(s.notes)} with NaN or skipped features (noted)" if s.notes else "")
        + (f", {s.n_removed} no longer in the manifest (kept, flagged)" if s.n_removed else "")
        + f"; {s.wall_s:.1f} s"
        + (f", {s.cases_per_s:.2f} cases/s" if s.n_computed else "")
        + f" -> {s.store}",
        highlight=False,
    )
    print_problems(s.failures, "failed", "error column")
    print_problems([(x.sample_id, x.reason) for x in s.stale], "recomputed", "")
    print_problems(s.notes, "note", "note column")


def export(
    backbone: str = typer.Option(..., "--backbone", "-b", help="Backbone; see 'featx backbones'."),
    weights: str = opt(E, "weights"),
    layer: str | None = opt(E, "layer", "--layer", "--layers"),
    pool: str | None = opt(E, "pool"),
    input_size: int | None = opt(E, "input_size", min=32),
    opset: int = typer.Option(18, help="ONNX opset."),
    models_dir: Path = opt(E, "models_dir"),
) -> None:
    """Export a backbone to ONNX (checked with onnx.checker and against torch), with a JSON sidecar.

    Cached by content: the same spec, weights, opset and torch version reuse the file.

    Example: [bold]featx export --backbone resnet18 --opset 18[/]
    and [bold]featx export -b timm:vit_small_patch14_dinov2 --weights dino_folder/ --input-size 224 --pool cls+mean[/]
    """
    from featx.backbones.export import export_onnx
    from featx.backbones.resolve import resolve_backbone

    resolved = resolve_backbone(backbone, weights, layer, models_dir, pool=pool, input_size=input_size)
    if resolved.exported is not None:
        raise ConfigError(f"{backbone} is an ONNX model already; nothing to export.", "backbone")
    ex = export_onnx(resolved.spec, resolved.model, models_dir, opset=opset)
    side = ex.sidecar
    out_console.print(
        f"{ex.onnx_path} ({ex.onnx_path.stat().st_size / 2**20:.1f} MiB, opset {side['opset']}, {side['exporter']}): "
        f"sha256 {side['onnx_sha256']}; parity max |onnx - torch| {side['parity']['max_abs_diff']:.2e} at output "
        f"scale {side['parity']['output_scale']:.2e}; sidecar {ex.onnx_path.with_suffix('.json')}",
        highlight=False,
    )


def _search(text: str) -> None:
    from featx.backbones.open_clip_source import search_open_clip
    from featx.backbones.timm_source import search_timm

    rows = search_timm(text) + search_open_clip(text)
    if not rows:
        raise ConfigError(f"no timm or OpenCLIP pretrained model name contains {text!r}.", "search")
    table = Table(title=f"pretrained models matching {text!r}", caption="use as --backbone NAME [--weights TAG]")
    for col in ("backbone", "input", "dim", "licence", "weights (Hugging Face repo, URL or OpenCLIP tag)"):
        table.add_column(col, no_wrap=col in ("input", "dim"), overflow="fold")
    for r in rows:
        table.add_row(r["name"], str(r["input"] or "-"), str(r["dim"] or "-"), r["license"] or "-", r["weights"])
    out_console.print(table)


def _volumetric_table() -> None:
    """The 3D sources (lesion crops): input recipe, width and where their weights come from."""
    from featx.backbones.volumetric import RECIPES, SOURCES, weights_hint

    table = Table(title="3D backbones (lesion rows; the 3d extra)")
    for col in ("backbone", "input", "dim", "weights"):
        table.add_column(col, overflow="fold")
    for name in SOURCES:
        recipe, dim = RECIPES[name]
        size = "x".join(str(n) for n in recipe.size)
        mm = "x".join(f"{v:g}" for v in recipe.extent_mm)
        table.add_row(name, f"{size} ({mm} mm, {recipe.axcodes})", str(dim), weights_hint(name))
    out_console.print(table)


def backbones(
    models_dir: Path = opt(E, "models_dir"),
    search: str | None = typer.Option(
        None,
        "--search",
        metavar="TEXT",
        help="Search timm's (and OpenCLIP's, when installed) pretrained models whose names contain TEXT.",
    ),
    describe: str | None = typer.Option(
        None, "--describe", metavar="NAME", help="Print the resolved spec of a backbone (any source)."
    ),
    weights: str = opt(E, "weights"),
    pool: str | None = opt(E, "pool"),
    input_size: int | None = opt(E, "input_size", min=32),
) -> None:
    """List registered backbones: input size, feature dim, weights, and what is present locally.

    Example: [bold]featx backbones[/], [bold]featx backbones --search dinov2[/] and
    [bold]featx backbones --describe timm:convnext_tiny --weights random[/]
    """
    from featx.backbones.registry import list_entries
    from featx.backbones.resolve import resolve_backbone
    from featx.backbones.status import local_status
    from featx.backbones.variants import present, variants_of, weights_dir

    if search is not None:
        _search(search)
        return
    if describe is not None:
        r = resolve_backbone(describe, weights, None, models_dir, pool=pool, input_size=input_size)
        out_console.print_json(json.dumps(r.spec.to_dict() | {"source": r.spec.source}))
        return
    table = Table(
        title="featx backbones", caption="weights/export: present locally (yes) or fetched/exported on first use (no)"
    )
    for col in ("backbone", "input", "dim", "weights", "export", "default weights"):
        table.add_column(col, no_wrap=col != "default weights", overflow="fold")
    notes = []
    for entry in list_entries():
        spec = entry.spec()
        have_weights, have_export = local_status(entry, spec, models_dir)
        table.add_row(
            entry.arch,
            f"{spec.crop_size}x{spec.crop_size}",
            str(spec.feature_dim),
            "yes" if have_weights else "no",
            "yes" if have_export else "no",
            spec.weights_id,
        )
        layers = ", ".join(f"{k} ({v.dim}-d)" for k, v in entry.layers.items())
        notes.append(f"  {entry.arch}: {entry.description}. Layers: {layers}")
        for v in variants_of(entry.arch):
            table.add_row(
                v.name,
                f"{spec.crop_size}x{spec.crop_size}",
                str(spec.feature_dim),
                "yes" if present(v) else "no",
                "-",
                f"{v.tag}: {v.files[0]} in {weights_dir()} (you download it)",
            )
    out_console.print(table)
    out_console.print("\n".join(notes), highlight=False)
    _volumetric_table()
    tuned = sorted(models_dir.glob("*.finetune.json")) if models_dir.is_dir() else []
    if tuned:
        out_console.print(
            f"fine-tuned backbones in {models_dir} ('featx finetune --export'): "
            + ", ".join(p.name.removesuffix(".finetune.json") for p in tuned),
            highlight=False,
        )
