"""``featx demo``: the offline demo on BreastMNIST."""

from __future__ import annotations

from pathlib import Path

import typer

from featx.cli.common import out_console
from featx.cli.evaluate import print_results
from featx.demo.demo import REFERENCE, run_demo


def demo(out: Path = typer.Option(Path("featx-demo"), help="Output folder for images, manifest, store and report.")):
    """Run the offline demo on BreastMNIST: PNGs + manifest -> EfficientNet-Lite0 (ONNX Runtime) -> logistic regression,
    a radiomics row (pyradiomics, whole-image masks) and a combined row (both, early fusion) through the same head
    and folds.

    Example: [bold]featx demo --out featx-demo[/]
    """
    result = run_demo(out)
    print_results(result)
    rad = result.extra.get("radiomics")
    if rad:
        t = rad["test"]
        out_console.print(
            f"radiomics row, {rad['feature_set']} ({rad['n_features']} pyradiomics features, {rad['masks']}) + "
            f"{result.head.name}: CV AUC {rad['cv_auc']:.3f}, test AUC {t['auc']:.3f} "
            f"({t['auc_ci'][0]:.3f}-{t['auc_ci'][1]:.3f}), ACC {t['accuracy']:.3f}; report: "
            f"{Path(rad['results']).parent / 'report.html'}",
            highlight=False,
        )
    both = result.extra.get("combined")
    if both:
        t = both["test"]
        out_console.print(
            f"combined row, {both['feature_set']} ({both['n_features']} features, each block standardised on its own) "
            f"+ {result.head.name}: CV AUC {both['cv_auc']:.3f}, test AUC {t['auc']:.3f} "
            f"({t['auc_ci'][0]:.3f}-{t['auc_ci'][1]:.3f}), ACC {t['accuracy']:.3f}; report: "
            f"{Path(both['results']).parent / 'report.html'}",
            highlight=False,
        )
    for name, ref in REFERENCE.items():
        out_console.print(f"published reference, {name}: test AUC {ref['auc']:.3f}, ACC {ref['accuracy']:.3f}")
