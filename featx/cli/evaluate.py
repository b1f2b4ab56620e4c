"""``featx fit``, ``featx bench``, ``featx compare``, ``featx report`` and ``featx predict``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from featx.cli.common import ConfigOption, err_console, opt, out_console, settings
from featx.evaluate.config import BenchConfig, FitConfig
from featx.extract.config import ExtractConfig
from featx.results.metrics import METRIC_LABELS, degenerate_decisions

if TYPE_CHECKING:
    from featx.results.bench import BenchResult
    from featx.results.runs import FitResult

# The commands import what they run when they run (featx --help and --version start fast).

F, B = FitConfig, BenchConfig


def fit(
    ctx: typer.Context,
    store: Path | None = opt(F, "store", "--store", "-s"),
    features: str | None = opt(F, "features", "--features", "-f"),
    head: str = opt(F, "head"),
    target: str = opt(F, "target"),
    value: str | None = opt(F, "value", metavar="COLUMN"),
    time: str | None = opt(F, "time", metavar="COLUMN"),
    event: str | None = opt(F, "event", metavar="COLUMN"),
    horizons: str | None = opt(F, "horizons", metavar="T1,T2"),
    risk_cut: float = opt(F, "risk_cut"),
    cv: int = opt(F, "cv"),
    repeats: int = opt(F, "repeats"),
    split: str = opt(F, "split"),
    test_size: float | None = opt(F, "test_size"),
    split_by: str = opt(F, "split_by"),
    copies: str = opt(F, "copies"),
    drop_test_copies: bool = opt(F, "drop_test_copies"),
    tune: bool = opt(F, "tune"),
    pca: int | None = opt(F, "pca"),
    inner_k: int = opt(F, "inner_k"),
    threshold: str = opt(F, "threshold"),
    calibrate: str = opt(F, "calibrate"),
    fuse: str | None = opt(F, "fuse"),
    bag: str = opt(F, "bag"),
    folds: Path | None = opt(F, "folds"),
    seed: int = opt(F, "seed"),
    positive: str | None = opt(F, "positive"),
    bootstrap: int = opt(F, "bootstrap"),
    jobs: int | None = opt(F, "jobs", min=1),
    ray: str | None = opt(F, "ray", metavar="ADDRESS"),
    out: Path | None = opt(F, "out"),
    save: Path | None = opt(F, "save"),
    config: Path | None = ConfigOption,
) -> None:
    """Cross-validate a head on a feature set, with CIs, subject-level metrics and a report.

    Example: [bold]featx fit --store features.h5 --features resnet18 --head logreg --cv 10 --out results/[/]
    """
    from featx.evaluate.runs.fit import run_fit

    print_results(run_fit(settings(ctx, FitConfig, config)))


def bench(
    ctx: typer.Context,
    store: Path | None = opt(B, "store", "--store", "-s"),
    features: str | None = opt(B, "features", "--features", "-f"),
    heads: str | None = opt(B, "heads"),
    target: str = opt(B, "target"),
    value: str | None = opt(B, "value", metavar="COLUMN"),
    time: str | None = opt(B, "time", metavar="COLUMN"),
    event: str | None = opt(B, "event", metavar="COLUMN"),
    horizons: str | None = opt(B, "horizons", metavar="T1,T2"),
    risk_cut: float = opt(B, "risk_cut"),
    cv: int = opt(B, "cv"),
    repeats: int = opt(B, "repeats"),
    split: str = opt(B, "split"),
    test_size: float | None = opt(B, "test_size"),
    split_by: str = opt(B, "split_by"),
    copies: str = opt(B, "copies"),
    drop_test_copies: bool = opt(B, "drop_test_copies"),
    tune: bool = opt(B, "tune"),
    pca: int | None = opt(B, "pca"),
    inner_k: int = opt(B, "inner_k"),
    threshold: str = opt(B, "threshold"),
    calibrate: str = opt(B, "calibrate"),
    folds: Path | None = opt(B, "folds"),
    seed: int = opt(B, "seed"),
    positive: str | None = opt(B, "positive"),
    bootstrap: int = opt(B, "bootstrap"),
    jobs: int | None = opt(B, "jobs", min=1),
    ray: str | None = opt(B, "ray", metavar="ADDRESS"),
    out: Path | None = opt(B, "out"),
    finetuned: list[Path] | None = opt(B, "finetuned"),
    select: str = opt(B, "select"),
    ensemble: int | None = opt(B, "ensemble", metavar="K"),
    save: Path | None = opt(B, "save"),
    save_row: str | None = opt(B, "save_row", metavar="TITLE"),
    train_sizes: str | None = opt(B, "train_sizes", metavar="SIZES"),
    draws: int = opt(B, "draws"),
    config: Path | None = ConfigOption,
) -> None:
    """Every feature set x every head on identical folds: ranked table with CIs and paired tests of the best.

    Example: [bold]featx bench -s features.h5 -f efficientnet_lite0,radiomics.default --heads logreg,svm-rbf,xgb --out bench/[/]
    """
    from featx.evaluate.runs.bench import run_bench

    print_bench(run_bench(settings(ctx, BenchConfig, config)))


def compare(
    runs: list[Path] = typer.Argument(..., help="Run folders (searched for results.json) or results.json files."),
    out: Path | None = typer.Option(None, help="Folder for compare.csv (every column) and compare.md."),
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
    results: Path = typer.Argument(..., help="results.json of 'featx fit', 'featx bench' or 'featx finetune'."),
    out: Path | None = typer.Option(None, help="Folder for the page and plots (default: beside results.json)."),
) -> None:
    """Re-render the HTML report (and plots) of a saved results.json, without the store or the models.

    Example: [bold]featx report results/results.json[/]
    """
    from featx.report.write import rerender

    out_console.print(f"report: {rerender(results, out)}")


def predict(
    source: Path = typer.Argument(..., help="An image, a folder of images, or a manifest CSV (labels optional)."),
    model: Path = typer.Option(..., "--model", help="Model saved by 'featx fit --save' (.skops)."),
    out: Path = typer.Option(Path("predictions.csv"), help="Predictions CSV (one row per input; failures say why)."),
    store: Path | None = typer.Option(
        None, help="Keep the computed features in this store (default: a temporary one)."
    ),
    models_dir: Path = opt(ExtractConfig, "models_dir"),
    provider: str = opt(ExtractConfig, "provider"),
    batch_size: int = opt(ExtractConfig, "batch_size", min=1),
    allow_export_change: bool = typer.Option(
        False,
        help="Accept an ONNX export that differs from the training one (same weights, another torch/exporter version).",
    ),
) -> None:
    """Apply a saved model to new images; their features are computed exactly as in training.

    Example: [bold]featx predict --model model.skops new_images/ --out predictions.csv[/]
    """
    from featx.predict import run_predict

    s = run_predict(
        model,
        source,
        out,
        store=store,
        models_dir=models_dir,
        provider=provider,
        batch_size=batch_size,
        allow_export_change=allow_export_change,
    )
    counts = {}
    for _, c in s.predictions:
        counts[c] = counts.get(c, 0) + 1
    out_console.print(
        f"{s.n_inputs} input(s), {s.n_predicted} predicted ({s.level} level: "
        + ", ".join(f"{c} {n}" for c, n in sorted(counts.items()))
        + f"), {len(s.failures)} failed",
        highlight=False,
    )
    for sid, why in s.failures[:10]:
        out_console.print(f"  failed {sid}: {why}", highlight=False)
    out_console.print(f"predictions: {s.out}" + (f"\nper subject: {s.subjects_out}" if s.subjects_out else ""))


def print_results(r: FitResult) -> None:
    """The metrics table of a fit or finetune run, subject and sequence lines, where its files are."""
    from featx.report.html import fmt, summary_rows

    table = Table(title=r.title)
    on = r.protocol.scored_on
    pooled = "CV pooled" if on == "CV" else "test split (fixed)"
    ci = "[bootstrap]" if r.target.kind != "classification" else "(DeLong) [bootstrap]"
    for col in ("metric", f"{pooled} {ci}", f"{on} {r.protocol.per_unit}", "held-out test"):
        table.add_column(col, no_wrap=col == "metric", overflow="fold")
    for row in summary_rows(r.cv, r.test):
        table.add_row(*row)
    out_console.print(table)
    print_protocol(r.protocol, bool(r.test))
    decided = r.protocol.decision + ("" if r.protocol.calibrate == "none" else f"; calibration {r.protocol.calibrate}")
    for what, m in ((on, r.cv.pooled), ("test", r.test)):
        if m is not None and m.calibration_slope is not None:
            thr = f"threshold {m.threshold:.3f}, " if m.threshold is not None else ""
            decided += f"; {what}: {thr}calibration slope {m.calibration_slope:.2f}"
            decided += f", intercept {m.calibration_intercept:.2f}" if m.calibration_intercept is not None else ""
    out_console.print(f"decision: {decided}", highlight=False)
    for what, m in ((on, r.cv.pooled), ("held-out test", r.test)):
        if degenerate_decisions(m):
            err_console.print(f"[yellow]warning:[/] {what}: {degenerate_decisions(m)}", highlight=False)
    main = r.cv.pooled.primary
    if r.cv.subject is not None:
        out_console.print(
            f"subject level ({r.cv.subject.n_subjects} subjects): {METRIC_LABELS[main]} {fmt(r.cv.subject, main)}",
            highlight=False,
        )
    for q, v in (r.sequences or {}).items():
        out_console.print(f"sequence {q}: {on} AUC {fmt(v.cv.pooled, 'auc')}", highlight=False)
    if r.saved_model:
        out_console.print(f"model: {r.saved_model}")
    if r.outputs:
        out_console.print(f"report: {r.outputs['report']}\nresults: {r.outputs['results']}")


def print_protocol(p, held_out_test: bool) -> None:
    """The folds in one line (soft-wrapped, never cut), and what was found and done about copies."""
    out_console.print(f"folds: {p.folds}" + (" and a held-out test split" if held_out_test else ""), highlight=False)
    if p.copies:
        out_console.print(f"copies: {p.copies['summary']}", highlight=False)
    if p.near_copies:
        out_console.print(f"near-copies: {p.near_copies['summary']}", highlight=False)


def print_bench(res: BenchResult) -> None:
    """The ranked table of a bench run and its pairwise comparisons."""
    from featx.report.bench import comparison_rows
    from featx.report.html import fmt

    table = Table(title="featx bench", caption="bootstrap CIs: report.html and bench.csv")
    on = res.protocol.scored_on
    regression = res.target.kind != "classification"
    main, second = {"regression": ("mae", "r2"), "survival": ("harrell_c", "uno_c")}.get(
        res.target.kind, ("auc", "balanced_accuracy")
    )
    if regression:
        cols = ["rank", "feature set", "head", f"{on} {METRIC_LABELS[main]}", f"{on} {METRIC_LABELS[second]}"]
        cols += [f"held-out test {METRIC_LABELS[main]}"] if res.n_test else []
    else:
        cols = ["rank", "feature set", "head", f"{on} AUC (DeLong 95% CI)", "bal. acc"]
        cols += ["held-out test AUC"] if res.n_test else []
    widest = {"feature set": max(len(c.feature_set) for c in res.cells), "head": max(len(c.head) for c in res.cells)}
    for c in cols + ["s"]:  # names are never cut or split mid-word: the number columns wrap at spaces instead
        table.add_column(c, no_wrap=c in ("rank", "s", *widest), min_width=widest.get(c), overflow="fold")
    for c in res.cells:
        p = c.cv.pooled
        table.add_row(
            str(c.rank),
            c.feature_set,
            c.head,
            fmt(p, main, boot=False),
            fmt(p, second, boot=False),
            *([fmt(c.test, main, boot=False)] if res.n_test else []),
            f"{c.seconds:.1f}",
        )
    out_console.print(table)
    print_protocol(res.protocol, bool(res.n_test))
    stuck = [c.title for c in res.cells if degenerate_decisions(c.cv.pooled)]
    if stuck:
        err_console.print(
            f"[yellow]warning:[/] degenerate decisions (one class called for >= 95% of the rows while another is "
            f">= 20% of them) in {len(stuck)} cell(s): {'; '.join(stuck[:5])}{' ...' if len(stuck) > 5 else ''}",
            highlight=False,
        )
    for why, a, b, delong, boot, t in comparison_rows(res):
        tests = (
            f"paired bootstrap of the MAE difference {boot}"
            if regression
            else f"DeLong {delong}; paired bootstrap {boot}"
        )
        out_console.print(
            f"{why}: {a} vs {b} ({res.comparisons[0].scope}): {tests}; corrected t-test {t}", highlight=False
        )
    sel = res.selection
    if sel is not None:
        counts = ", ".join(f"{t} {n}x" for t, n in sel.chosen_counts.items())
        out_console.print(
            f"nested selection (inner {sel.inner_k}-fold CV of each outer training fold; chosen: {counts}): "
            f"{METRIC_LABELS[sel.nested.pooled.primary]} {fmt(sel.nested.pooled, sel.nested.pooled.primary, boot=False)}",
            highlight=False,
        )
        out_console.print(sel.quote, highlight=False)
    if res.saved_model:
        out_console.print(f"model: {res.saved_model}")
    if res.outputs:
        out_console.print(f"report: {res.outputs['report']}\nresults: {res.outputs['results']}")
