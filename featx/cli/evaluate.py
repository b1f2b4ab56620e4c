"""Evaluation commands: ``fit``, ``bench``, ``report`` and ``predict`` (registered on the app in :mod:`featx.cli.app`)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from featx.cli.common import out_console
from featx.evaluate.heads import list_heads

HEADS = ", ".join(h.name for h in list_heads())

Store = Annotated[Path, typer.Option("--store", "-s", help="HDF5 feature store written by 'featx extract' or 'featx radiomics'.")]
Cv = Annotated[int, typer.Option(help="Folds per repeat: stratified, grouped by subject when the manifest has subjects.")]
Repeats = Annotated[int, typer.Option(help="Repeat the K-fold CV with re-shuffled folds (seeds derived from --seed).")]
Split = Annotated[str, typer.Option(help="cv (K-fold; manifest rows with split=test are held out and scored once) or "
                                    "fixed (one train/test split: the manifest's split column, or --test-size).")]
TestSize = Annotated[Optional[float], typer.Option(help="With --split fixed: draw this fraction of the subjects as test (e.g. 0.3).")]
Tune = Annotated[bool, typer.Option(help="Nested CV: tune each head's grid by an inner grouped CV on the training folds only.")]
Pca = Annotated[Optional[int], typer.Option(help="PCA components before the classifier (fit inside each training fold).")]
Folds = Annotated[Optional[Path], typer.Option(help="Reuse the folds of an earlier run (its folds.json or results.json).")]
Seed = Annotated[int, typer.Option(help="Seed of the folds, the heads and the bootstrap (recorded in the results).")]
Positive = Annotated[Optional[str], typer.Option(help="Positive class for sensitivity/specificity (binary; default: the second sorted class).")]
SplitBy = Annotated[str, typer.Option(help="subject (folds grouped by subject: the honest default) or image (slice-level "
                                      "random split that ignores the subjects: leaky, only to show what it would report).")]
Boot = Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples (by subject) for the 95% CIs; 0: DeLong only.")]


def fit(
    store: Store,
    features: Annotated[str, typer.Option("--features", "-f", help="Feature-set name in the store (e.g. resnet18).")],
    head: Annotated[str, typer.Option(help=f"Classifier head: {HEADS}.")] = "logreg",
    cv: Cv = 10,
    repeats: Repeats = 1,
    split: Split = "cv",
    test_size: TestSize = None,
    split_by: SplitBy = "subject",
    tune: Tune = False,
    pca: Pca = None,
    fuse: Annotated[Optional[str], typer.Option(help="Multi-sequence fusion per subject: vote or mean (one model per "
                                                "sequence), or concat (sequences' features side by side).")] = None,
    folds: Folds = None,
    seed: Seed = 0,
    positive: Positive = None,
    bootstrap: Boot = 1000,
    out: Annotated[Optional[Path], typer.Option(help="Folder for results.json, folds.json, prediction CSVs and report.html.")] = None,
    save: Annotated[Optional[Path], typer.Option(help="Save the head refit on all non-test samples (.skops) for 'featx predict'.")] = None,
) -> None:
    """Cross-validate a head on a feature set, with CIs, subject-level metrics and a report.

    Example: [bold]featx fit --store features.h5 --features resnet18 --head logreg --cv 10 --out results/[/]
    """
    from featx.evaluate.fit import run_fit

    results = run_fit(store, features, head=head, cv=cv, seed=seed, out=out, positive=positive, repeats=repeats,
                      split=split, test_size=test_size, tune=tune, pca=pca, fuse=fuse, folds=folds, save=save,
                      n_boot=bootstrap, split_by=split_by)
    print_results(results)


def bench(
    store: Store,
    features: Annotated[str, typer.Option("--features", "-f", help="Comma-separated feature sets (e.g. resnet50,radiomics.default).")],
    heads: Annotated[str, typer.Option(help=f"Comma-separated heads (default: all of {HEADS}).")] = "",
    cv: Cv = 10,
    repeats: Repeats = 1,
    split: Split = "cv",
    test_size: TestSize = None,
    split_by: SplitBy = "subject",
    tune: Tune = False,
    pca: Pca = None,
    folds: Folds = None,
    seed: Seed = 0,
    positive: Positive = None,
    bootstrap: Boot = 1000,
    out: Annotated[Optional[Path], typer.Option(help="Folder for results.json, bench.csv, folds.json and report.html.")] = None,
    finetuned: Annotated[Optional[list[Path]], typer.Option(help="Output folder of a 'featx finetune' run on the same folds: adds its row (repeatable).")] = None,
) -> None:
    """Every feature set x every head on identical folds: ranked table with CIs and paired tests of the best.

    Example: [bold]featx bench -s features.h5 -f efficientnet_lite0,radiomics.default --heads logreg,svm-rbf,xgb --out bench/[/]
    """
    from featx.evaluate.bench import run_bench
    from featx.report.html import fmt
    from featx.report.bench import comparison_rows

    names = [h.strip() for h in heads.split(",") if h.strip()] or [h.name for h in list_heads()]
    res = run_bench(store, [f.strip() for f in features.split(",") if f.strip()], names, cv=cv, repeats=repeats,
                    seed=seed, out=out, positive=positive, split=split, test_size=test_size, tune=tune, pca=pca,
                    folds=folds, n_boot=bootstrap, finetuned=finetuned, split_by=split_by)
    table = Table(title=f"featx bench: {res['protocol']['folds']}", caption="bootstrap CIs: report.html and bench.csv")
    cols = ["rank", "feature set", "head", "CV AUC (DeLong 95% CI)", "bal. acc"] + (["test AUC"] if res["n_test"] else []) + ["s"]
    for c in cols:  # names never truncated: they wrap in narrow terminals
        table.add_column(c, no_wrap=c in ("rank", "head", "s"), overflow="fold")
    for c in res["cells"]:
        p = c["cv"]["pooled"]
        table.add_row(str(c["rank"]), c["feature_set"], c["head"], fmt(p, "auc", boot=False),
                      fmt(p, "balanced_accuracy", boot=False), *([fmt(c["test"], "auc", boot=False)] if res["n_test"] else []),
                      f"{c['seconds']:.1f}")
    out_console.print(table)
    for why, a, b, delong, t in comparison_rows(res):
        out_console.print(f"{why}: {a} vs {b}: DeLong {delong}; corrected t-test {t}", highlight=False)
    if "outputs" in res:
        out_console.print(f"report: {res['outputs']['report']}\nresults: {res['outputs']['results']}")


def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (searched for results.json) or results.json files.")],
    out: Annotated[Optional[Path], typer.Option(help="Folder for compare.csv (every column) and compare.md.")] = None,
) -> None:
    """Runs side by side: fit, bench and finetune results (per sequence and fused) in one table.

    Example: [bold]featx compare study/ --out study/summary/[/]
    """
    from featx.report.compare import SHOWN, TERMINAL, cell_text, compare_rows, shown_columns, write_compare

    rows = compare_rows(runs)
    cols = [c for c in shown_columns(rows) if c in TERMINAL]  # every column: compare.csv / compare.md
    table = Table(title=f"featx compare: {len(rows)} model(s)")
    for c in cols:
        table.add_column(SHOWN[c], overflow="fold")
    for r in rows:
        table.add_row(*(cell_text(r.get(c), c) for c in cols))
    out_console.print(table)
    if out is not None:
        paths = write_compare(rows, out)
        out_console.print(f"table: {paths['md']}\ncsv: {paths['csv']}")


def report(
    results: Annotated[Path, typer.Argument(help="results.json of 'featx fit' or 'featx bench'.")],
    out: Annotated[Optional[Path], typer.Option(help="Folder for the page and plots (default: beside results.json).")] = None,
) -> None:
    """Re-render the HTML report (and plots) of a saved results.json, without the store or the models.

    Example: [bold]featx report results/results.json[/]
    """
    from featx.report.html import rerender

    out_console.print(f"report: {rerender(results, out)}")


def predict(
    source: Annotated[Path, typer.Argument(help="An image, a folder of images, or a manifest CSV (labels optional).")],
    model: Annotated[Path, typer.Option("--model", help="Model saved by 'featx fit --save' (.skops).")],
    out: Annotated[Path, typer.Option(help="Predictions CSV (one row per input; failures say why).")] = Path("predictions.csv"),
    store: Annotated[Optional[Path], typer.Option(help="Keep the computed features in this store (default: a temporary one).")] = None,
    models_dir: Annotated[Path, typer.Option(help="Folder of cached ONNX exports.")] = Path("models_onnx"),
    provider: Annotated[str, typer.Option(help="ONNX Runtime provider: auto, cpu, cuda, tensorrt.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Images per inference batch.")] = 32,
    allow_export_change: Annotated[bool, typer.Option(help="Accept an ONNX export that differs from the training one "
                                                      "(same weights, another torch/exporter version).")] = False,
) -> None:
    """Apply a saved model to new images; their features are computed exactly as in training.

    Example: [bold]featx predict --model model.skops new_images/ --out predictions.csv[/]
    """
    from featx.predict import run_predict

    s = run_predict(model, source, out, store=store, models_dir=models_dir, provider=provider, batch_size=batch_size,
                    allow_export_change=allow_export_change)
    counts = {}
    for _, c in s.predictions:
        counts[c] = counts.get(c, 0) + 1
    out_console.print(f"{s.n_inputs} input(s), {s.n_predicted} predicted ({s.level} level: "
                      + ", ".join(f"{c} {n}" for c, n in sorted(counts.items())) + f"), {len(s.failures)} failed",
                      highlight=False)
    for sid, why in s.failures[:10]:
        out_console.print(f"  [red]failed[/] {sid}: {why}", highlight=False)
    out_console.print(f"predictions: {s.out}" + (f"\nper subject: {s.subjects_out}" if s.subjects_out else ""))


def print_results(results: dict) -> None:
    from featx.report.html import fmt, summary_rows

    proto = results["protocol"]
    table = Table(title=f"{results['feature_set']} + {results['head']['name']}: {proto['folds']}"
                  + (" and held-out test" if results["test"] else ""))
    for col in ("metric", "CV pooled (DeLong) [bootstrap]", "CV per fold", "test"):
        table.add_column(col, no_wrap=col == "metric", overflow="fold")
    for row in summary_rows(results):
        table.add_row(*row)
    out_console.print(table)
    if results["cv"].get("subject"):
        out_console.print(f"subject level ({results['cv']['subject']['n_subjects']} subjects): AUC "
                          f"{fmt(results['cv']['subject'], 'auc')}", highlight=False)
    for q, v in (results.get("sequences") or {}).items():
        out_console.print(f"sequence {q}: CV AUC {fmt(v['cv']['pooled'], 'auc')}", highlight=False)
    if results.get("saved_model"):
        out_console.print(f"model: {results['saved_model']}")
    if "outputs" in results:
        out_console.print(f"report: {results['outputs']['report']}\nresults: {results['outputs']['results']}")
