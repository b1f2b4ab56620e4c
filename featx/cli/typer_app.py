"""The ``featx`` Typer app: every command registered the one way (:func:`featx.cli.common.register`).

Importing it builds every command's options (their config classes); :mod:`featx.cli.app` is the light entry point
that imports it only when a command runs."""

from __future__ import annotations

import typer

from featx import __version__
from featx.cli import audit, demo, evaluate, extract, pool, train
from featx.cli.common import out_console, register, setup_logging
from featx.cli.data import manifest_app, store_app

app = typer.Typer(
    name="featx",
    help="Feature-based transfer learning for medical images: frozen backbones (ONNX Runtime or torch) -> HDF5 "
    "feature store -> cross-validated scikit-learn heads with honest metrics. Settings: command line, then "
    "./featx.toml (or --config), then defaults. Exit codes: 1 error, 2 usage error, 130 interrupted.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        out_console.print(f"featx {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show progress messages (INFO logging)."),
    version: bool | None = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """featx: frozen CNN features and radiomics for medical image classification."""
    setup_logging(verbose)


register(
    app,
    extract.extract,
    extract.radiomics,
    evaluate.fit,
    evaluate.bench,
    train.finetune,
    evaluate.compare,
    evaluate.report,
    evaluate.predict,
    audit.audit,
    pool.pool,
    train.gradcam,
    demo.demo,
    extract.export,
    extract.backbones,
)
app.add_typer(manifest_app, name="manifest")
app.add_typer(store_app, name="store")
