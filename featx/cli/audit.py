"""``featx audit``: near-copies among the rows of a stored feature set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featx.cli.common import out_console

THRESHOLD_HELP = (
    "Centred cosine of the embeddings at or above which two rows are near-copies (default 0.95: measured on real "
    "images with made copies, see docs/data.md#near-copies)."
)
SIGNATURE_HELP = (
    "Cosine of the images' pixel signatures at or above which two rows are near-copies (default 0.95; stored by "
    "extract, or read from the images; finds re-encoded, resized, mirrored and brightened copies the embeddings "
    "miss)."
)


def audit(
    store: Annotated[Path, typer.Option("--store", "-s", help="HDF5 feature store.")],
    features: Annotated[str, typer.Option("--features", "-f", help="A deep feature set of the store (e.g. resnet50).")],
    threshold: Annotated[float | None, typer.Option(help=THRESHOLD_HELP)] = None,
    signature_threshold: Annotated[float | None, typer.Option(help=SIGNATURE_HELP)] = None,
    pixels: Annotated[
        bool, typer.Option("--pixels/--no-pixels", help="Compare pixel signatures too (--no-pixels: embeddings only).")
    ] = True,
    across: Annotated[
        str, typer.Option(help="Pairs of different subjects (subjects), across the test split (split), or all.")
    ] = "subjects",
    out: Annotated[Path | None, typer.Option(help="Folder for pairs.csv and audit.html (thumbnails).")] = None,
    manifest: Annotated[Path | None, typer.Option("--manifest", "-m", help="The manifest of the store's rows.")] = None,
    write_manifest: Annotated[
        Path | None, typer.Option(help="Write --manifest again here, the subjects of near-copies joined.")
    ] = None,
) -> None:
    """Find near-copies (re-encoded, resized, cropped, mirrored, brightened) across subjects and across the split.

    Compares the stored embeddings (no extraction): pairs above the threshold, the test rows with a near-copy in
    training, a page of thumbnails side by side, and a manifest that joins near-copies into one subject.

    Example: [bold]featx audit -s features.h5 -f efficientnet_lite0 --out audit/ -m m.csv --write-manifest joined.csv[/]
    """
    from featx.audit.near import DEFAULT_THRESHOLD, SIGNATURE_THRESHOLD
    from featx.audit.run import ACROSS, run_audit
    from featx.errors import ConfigError

    if across not in ACROSS:
        raise ConfigError(f"must be one of {', '.join(ACROSS)}, got {across!r}.", "across")
    res = run_audit(
        store,
        features,
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
        signature_threshold=None if not pixels else (signature_threshold or SIGNATURE_THRESHOLD),
        across=across,
        out=out,
        manifest=manifest,
        write_manifest=write_manifest,
    )
    out_console.print(res.summary() + (f" ({res.exact_groups} group(s) of exact copies)" if res.exact_groups else ""))
    for p in res.pairs[:10]:
        tag = " (exact copy)" if p["exact"] else ""
        sig = f", signature {p['signature']:.4f}" if p.get("signature") is not None else ""
        out_console.print(f"  {p['id_a']} ~ {p['id_b']}: embedding {p['cosine']:.4f}{sig}{tag}", highlight=False)
    if len(res.pairs) > 10:
        out_console.print(f"  ... and {len(res.pairs) - 10} more" + (" (pairs.csv)" if out else " (--out writes them)"))
    for k, v in res.outputs.items():
        out_console.print(f"{k}: {v}", highlight=False)
