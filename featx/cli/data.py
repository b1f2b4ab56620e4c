"""``featx manifest ...`` and ``featx store ...``: build/check manifests, inspect/export stores."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from featx.cli.common import choice_option, out_console, register
from featx.config import Choice
from featx.errors import ConfigError, FeatxError
from featx.images.volume import AXES
from featx.store.tools import EXPORT_FORMATS

UNITS = Choice("unit", ("slice", "lesion"))
manifest_app = typer.Typer(help="Build and check manifests.", no_args_is_help=True)
store_app = typer.Typer(help="Inspect and export feature stores.", no_args_is_help=True)


def manifest_build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Manifest CSV to write.")],
    folder: Annotated[Path | None, typer.Option(help="Folder of class sub-folders: DIR/<label>/**/<image>.")] = None,
    volumes: Annotated[
        Path | None,
        typer.Option(
            help="Volume-level CSV (path = volume file or DICOM series folder; mask, label, subject, sequence, "
            "split), or a folder of volumes with masks named *_label/*_mask/*_seg."
        ),
    ] = None,
    slices: Annotated[
        str,
        typer.Option(help="Slice policy for --volumes: all, mask, top:K, min-area:A (pixels, or 30%), around-max:N."),
    ] = "mask",
    axis: Annotated[str, choice_option(AXES, help="Slice axis in each image's own orientation.")] = "axial",
    crop_margin: Annotated[
        int | None, typer.Option(help="Crop slices to the mask's bounding box plus this many pixels.")
    ] = None,
    label_value: Annotated[
        int | None, typer.Option(help="Use only this mask label (default: any non-zero voxel).")
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option(help="Leave out volumes that cannot be sliced; list them in OUT.skipped.csv.")
    ] = False,
    unit: Annotated[
        str,
        choice_option(
            UNITS, help="Rows of --volumes: slice (2D slices chosen by --slices) or lesion (one row per lesion)."
        ),
    ] = "slice",
    components: Annotated[
        bool, typer.Option(help="--unit lesion: each connected component of a mask value is a lesion.")
    ] = False,
    min_voxels: Annotated[
        int, typer.Option(min=1, help="--unit lesion --components: leave out components smaller than this.")
    ] = 1,
) -> None:
    """Write a manifest from a folder tree, or expand volumes + masks into 2D slice samples.

    Examples: [bold]featx manifest build --folder images/ --out m.csv[/]
    and [bold]featx manifest build --volumes volumes.csv --slices around-max:20 --out slices.csv[/]
    and [bold]featx manifest build --volumes volumes.csv --unit lesion --components --out lesions.csv[/]
    """
    from featx.dataset.ingest import build_from_folder, build_from_volumes

    if (folder is None) == (volumes is None):
        raise ConfigError("give exactly one of --folder DIR or --volumes volumes.csv.")
    if folder is not None:
        man = build_from_folder(folder, out)
    else:
        if unit == "lesion" and crop_margin is not None:
            raise ConfigError("--crop-margin crops 2D slices; lesion rows are cropped by each backbone's recipe.")
        man = build_from_volumes(
            volumes,
            slices,
            out,
            skip_bad=skip_bad,
            unit=unit,
            lesions={"components": components, "min_voxels": min_voxels},
            axis=axis,
            crop_margin=crop_margin,
            label_value=label_value,
        )
    out_console.print(f"{len(man)} samples ({', '.join(f'{k}: {v}' for k, v in _counts(man).items())}) -> {out}")


def _counts(man) -> dict:
    return dict(sorted(Counter(s.label or "(no label)" for s in man).items()))


def manifest_check(
    manifest: Annotated[Path, typer.Argument(help="Manifest CSV.")],
    cv: Annotated[int, typer.Option(help="Folds the data must support.")] = 10,
    labels: Annotated[str | None, typer.Option(help="Comma-separated expected labels; others are problems.")] = None,
    read_files: Annotated[
        bool, typer.Option(help="Open every image and mask to find unreadable files and empty masks.")
    ] = True,
) -> None:
    """Validate a manifest: print a summary and every problem at once (exit 1 if any).

    Example: [bold]featx manifest check m.csv --cv 10[/]
    """
    from featx.dataset.checks import check_manifest

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
        out_console.print(f"warning: {w}", highlight=False)
    for p in rep.problems:
        out_console.print(f"problem: {p}", highlight=False)
    if not rep.ok:
        raise FeatxError(f"{manifest}: {len(rep.problems)} problem(s), listed above.")
    out_console.print("ok")


def store_info(store: Annotated[Path, typer.Argument(help="The HDF5 feature store.")]) -> None:
    """Summarise a store: samples, labels, and each feature set's rows (ok, failed, to do, removed).

    Example: [bold]featx store info features.h5[/]
    """
    from featx.store.tools import describe_store

    d = describe_store(store)
    labels = ", ".join(f"{k or '(none)'} {v}" for k, v in d["labels"].items())
    out_console.print(
        f"{d['path']} ({d['size_mb']} MB, {d['format']}, created {d['created']} by featx {d['featx_version']})",
        highlight=False,
    )
    out_console.print(f"  {d['samples']} samples, {d['subjects']} subjects; labels: {labels}", highlight=False)
    for f in d["feature_sets"]:
        extra = "".join(f", {f[k]} {k.replace('_', ' ')}" for k in ("failed", "to_do", "removed", "noted") if f[k])
        extra += f"; {f['parts']} shards" if f["parts"] > 1 else ""
        out_console.print(
            f"  {f['name']} ({f['kind']}, {f['dim']}-d, {f['made_with']}): {f['ok']} ok{extra}; updated {f['updated']}",
            highlight=False,
        )
    if d["writer"]:
        out_console.print(f"  being written now by {d['writer']}", highlight=False)
    if d.get("pending_journal"):
        out_console.print(f"  interrupted run: {d['pending_journal']}; the next extract applies it", highlight=False)


def store_export(
    store: Annotated[Path, typer.Argument(help="The HDF5 feature store.")],
    features: Annotated[str, typer.Option("--features", "-f", help="Feature set to export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.csv or .parquet).")],
    format: Annotated[
        str | None, choice_option(EXPORT_FORMATS, help="csv or parquet (default: from --out's suffix).")
    ] = None,
    include_removed: Annotated[bool, typer.Option(help="Also rows whose samples left the manifest.")] = False,
) -> None:
    """Write a feature set's computed rows with id, label, subject, sequence, split, slice and path.

    Example: [bold]featx store export features.h5 -f resnet18 -o resnet18.parquet[/]
    """
    from featx.store.tools import export_feature_set

    path, n = export_feature_set(store, features, out, format, include_removed)
    out_console.print(f"{n} rows of {features} -> {path}", highlight=False)


def store_compact(
    store: Annotated[Path, typer.Argument(help="The feature store.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the one file here; the store stays as it is.")
    ] = None,
) -> None:
    """Merge a store's shards into one HDF5 file, to share it (readable with plain h5py).

    Without --out the store itself becomes one file, once every writer has finished; the next writer shards it
    again without copying.

    Example: [bold]featx store compact features.h5 --out features-shared.h5[/]
    """
    from featx.store.tools import compact_store

    path, size = compact_store(store, out)
    out_console.print(f"{store} -> {path} ({size / 1e6:.1f} MB, one file)", highlight=False)


register(manifest_app, build=manifest_build, check=manifest_check)
register(store_app, info=store_info, export=store_export, compact=store_compact)
