"""Writing a report: the plots and the self-contained ``report.html`` of a fit, bench or finetune result.

Everything is drawn from the typed result alone, so ``featx report RESULTS.json`` re-renders a
page, of this featx version or an earlier one, without the store or the models.
"""

from __future__ import annotations

from pathlib import Path

from featx.report.bench import bench_images, render_bench
from featx.report.fit import fit_images, render_fit
from featx.results.bench import BenchResult
from featx.results.io import load_results
from featx.results.runs import FitResult


def write_report(result: FitResult | BenchResult, out: Path) -> dict:
    """Write the PNG plots and ``report.html`` into ``out``; returns name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(result, BenchResult):
        paths = bench_images(result, out)
        html = render_bench(result, paths)
    else:
        paths = fit_images(result, out)
        html = render_fit(result, paths)
    paths["report"] = out / "report.html"
    paths["report"].write_text(html, encoding="utf-8")
    return paths


def rerender(results_path: str | Path, out: str | Path | None = None) -> Path:
    """Re-render the report of a saved ``results.json`` (into its folder, or ``out``)."""
    path = Path(results_path)
    return write_report(load_results(path), Path(out) if out else path.parent)["report"]
