"""``featx pool``: a stored feature set pooled per subject or per volume, without extracting again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featx.cli.common import out_console


def pool(
    store: Annotated[Path, typer.Option("--store", "-s", help="HDF5 feature store.")],
    source: Annotated[str, typer.Option("--from", help="The feature set to pool (e.g. resnet50).")],
    by: Annotated[
        str,
        typer.Option(
            help="subject (rows of one subject), volume (the slices of one image file) or lesion (onto --lesions rows)."
        ),
    ] = ("subject"),
    how: Annotated[str, typer.Option(help="mean, max or mean+max (both side by side).")] = "mean",
    name: Annotated[str | None, typer.Option(help="The pooled set's name (default SOURCE~BY-HOW).")] = None,
    lesions: Annotated[
        Path | None,
        typer.Option(
            help="--by lesion: the lesion manifest (manifest build --unit lesion) whose rows the slices pool onto."
        ),
    ] = None,
) -> None:
    """Pool a stored feature set's rows per subject or per volume into a new feature set of the same store.

    Recomputes on a rerun only the groups whose source rows changed; fit refuses a pooled set whose source changed.

    Example: [bold]featx pool -s features.h5 --from resnet50 --by subject --how mean --name resnet50_subject[/]
    """
    from featx.dataset.manifest import Manifest
    from featx.store.pooled import describe, pool_feature_set

    rows = Manifest.load(lesions) if lesions is not None else None
    out_console.print(describe(pool_feature_set(store, source, by, how, name, rows)), highlight=False)
