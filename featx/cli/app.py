"""The ``featx`` console script: ``--version`` and the command list answer at once, without importing a command;
Ctrl-C at any moment (imports, parsing, a command, an ONNX export) ends with one line and exit code 130.

The Typer app itself is :mod:`featx.cli.typer_app` (``featx.cli.app.app`` still names it, imported on first use).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys

from featx import __version__
from featx.cli import interrupt

#: (name, what it does) of every command, in ``--help``'s order; tests/test_cli.py checks it against the app
COMMANDS = (
    ("extract", "Extract frozen backbone features for every image of a manifest into an HDF5 store."),
    ("radiomics", "Compute pyradiomics features for every sample into the store, next to the CNN features."),
    ("fit", "Cross-validate a head on a feature set, with CIs, subject-level metrics and a report."),
    ("bench", "Every feature set x every head on identical folds: ranked table with CIs and paired tests of the best."),
    ("finetune", "Fine-tune a backbone on the same folds as 'featx fit', with curves, summaries and Grad-CAM."),
    ("compare", "Runs side by side: fit, bench and finetune results (per sequence and fused) in one table."),
    ("report", "Re-render the HTML report (and plots) of a saved results.json, without the store or the models."),
    ("predict", "Apply a saved model to new images; their features are computed exactly as in training."),
    (
        "audit",
        "Find near-copies (re-encoded, resized, cropped, mirrored, brightened) across subjects and across the split.",
    ),
    ("pool", "Pool a stored feature set's rows per subject or per volume into a new feature set of the same store."),
    ("gradcam", "Grad-CAM overlays by the exact model that predicts the images."),
    (
        "demo",
        "Run the offline demo on BreastMNIST: PNGs + manifest -> EfficientNet-Lite0 (ONNX Runtime) -> logistic "
        "regression, a radiomics row (pyradiomics, whole-image masks) and a combined row (both, early fusion) through "
        "the same head and folds.",
    ),
    ("export", "Export a backbone to ONNX (checked with onnx.checker and against torch), with a JSON sidecar."),
    ("backbones", "List registered backbones: input size, feature dim, weights, and what is present locally."),
    ("manifest", "Build and check manifests."),
    ("store", "Inspect and export feature stores."),
)
HELP = (
    "Feature-based transfer learning for medical images: frozen backbones (ONNX Runtime or torch) -> HDF5 feature "
    "store -> cross-validated scikit-learn heads with honest metrics. Settings: command line, then ./featx.toml (or "
    "--config), then defaults. Exit codes: 1 error, 2 usage error, 130 interrupted."
)
INTERRUPTED = interrupt.MESSAGE


def __getattr__(name: str):
    if name == "app":  # the Typer app, for tests and embedding: built on first use
        from featx.cli.typer_app import app

        return app
    raise AttributeError(name)


def quick_help() -> str:
    """``featx --help`` without importing a command: the usage, the global options and every command."""
    width = max(len(n) for n, _ in COMMANDS)
    lines = [
        "Usage: featx [OPTIONS] COMMAND [ARGS]...",
        "",
        HELP,
        "",
        "Options:",
        "  --verbose, -v  Show progress messages (INFO logging).",
        "  --version      Print the version.",
        "  --help         Show this message and exit.",
        "",
        "Commands:",
        *(f"  {n:<{width}}  {h}" for n, h in COMMANDS),
        "",
        "'featx COMMAND --help' shows a command's options, their choices and defaults, and an example.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else list(argv)
    if argv is None:  # the console script: a Ctrl-C however it surfaces ends as one line and 130
        interrupt.watch()
        # the last exit callback: once the others ran, Python's finalisation puts back the default SIGINT action,
        # which would end the process by the signal (-2); ignored from here, the run ends with its own exit code
        atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)
    try:
        if args == ["--version"]:
            _print(f"featx {__version__}")
            return
        if args in ([], ["--help"], ["-h"]):
            _print(quick_help())
            return
        from featx.cli.typer_app import app  # the commands' options: their configs, a second or more to import

        app(args=args, prog_name="featx")  # Typer ends a Ctrl-C while it parses with exit code 130
    except KeyboardInterrupt:
        _say_interrupted()
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 130 or (interrupt.State.seen and exc.code not in (0, None)):
            _say_interrupted()
            sys.exit(130)
        raise
    finally:
        if argv is None:  # a Ctrl-C while Python shuts down (joining threads) ends alike
            signal.signal(signal.SIGINT, _interrupted_at_exit)


def _say_interrupted() -> None:
    if not interrupt.State.reported:
        interrupt.State.reported = True
        sys.stderr.write(INTERRUPTED + "\n")
        sys.stderr.flush()


def _interrupted_at_exit(signum, frame) -> None:
    sys.stdout.flush()
    _say_interrupted()
    os._exit(130)


def _print(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `featx --help | head`
        sys.stderr.close()


if __name__ == "__main__":  # pragma: no cover
    main()
