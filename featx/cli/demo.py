"""``featx demo``: the offline demo on BreastMNIST."""

from __future__ import annotations

from pathlib import Path

import typer

from featx.cli.common import out_console
from featx.cli.evaluate import print_results


def demo(out: Path = typer.Option(Path("featx-demo"), help="Output folder for images, manifest, store and report.")):
    """Run the offline demo on BreastMNIST: PNGs + manifest -> EfficientNet-Lite0 (ONNX Runtime) -> logistic regression,
    a radiomics row (pyradiomics, whole-image masks) and a combined row (both, early fusion) through the same head
    and folds.

    Example: [bold]featx demo --out featx-demo[/]
    """
    from featx.demo.demo import REFERENCE, run_demo

    result = run_demo(out)
    print_results(result)
    rad, both = result.extra.get("radiomics"), result.extra.get("combined")
    if rad:
        what = f"{rad['n_features']} pyradiomics features, {rad['masks']}"
        _row("radiomics row", rad, what, result.head.name)
    if both:
        _row(
            "combined row", both, f"{both['n_features']} features, each block standardised on its own", result.head.name
        )
    for name, ref in REFERENCE.items():
        out_console.print(f"published reference, {name}: test AUC {ref['auc']:.3f}, ACC {ref['accuracy']:.3f}")


def _row(label: str, row: dict, what: str, head: str) -> None:
    t = row["test"]
    out_console.print(
        f"{label}, {row['feature_set']} ({what}) + {head}: CV AUC {row['cv_auc']:.3f}, test AUC {t['auc']:.3f} "
        f"({t['auc_ci'][0]:.3f}-{t['auc_ci'][1]:.3f}), ACC {t['accuracy']:.3f}; report: "
        f"{Path(row['results']).parent / 'report.html'}",
        highlight=False,
    )
