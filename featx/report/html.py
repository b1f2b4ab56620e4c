"""Results -> PNG plots and a self-contained HTML page (formatting only: no model code here).

Everything is drawn from the results dict alone, so ``featx report RESULTS.json``
re-renders a page without the store or the models.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from featx.errors import FeatxError

METRIC_ROWS = (
    ("auc", "AUC"), ("accuracy", "Accuracy"), ("balanced_accuracy", "Bal. accuracy"),
    ("sensitivity", "Sensitivity"), ("specificity", "Specificity"), ("precision", "Precision"), ("f1", "F1"),
)
e = html.escape


def write_report(results: dict, out: Path) -> dict:
    """Write the PNG plots and ``report.html`` for a fit or bench result into ``out``; returns name -> path."""
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    if results.get("type") == "bench":
        from featx.report.bench import bench_images, render_bench

        paths = bench_images(results, out)
        page = render_bench(results, paths)
    else:
        paths = fit_images(results, out)
        page = render_fit(results, paths)
    paths["report"] = out / "report.html"
    paths["report"].write_text(page, encoding="utf-8")
    return paths


def rerender(results_path: str | Path, out: str | Path | None = None) -> Path:
    """Re-render the report of a saved ``results.json`` (into its folder, or ``out``)."""
    path = Path(results_path)
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FeatxError(f"Cannot read {path}: {exc}. Give the results.json that 'featx fit' or 'featx bench' wrote.") from None
    if "cv" not in results and results.get("type") != "bench":
        raise FeatxError(f"{path} is not a featx results file (no 'cv' or bench table).")
    return write_report(results, Path(out) if out else path.parent)["report"]


def fit_images(results: dict, out: Path) -> dict:
    """ROC (with bootstrap band), confusion matrices and per-fold scores of one fit."""
    paths = {}
    curves = [(f"CV ({results['cv'].get('level', 'image')})", results["cv"]["pooled"], results["cv"].get("roc"))]
    if results.get("test"):
        curves.append(("held-out test", results["test"], results["test"].get("roc")))
    for q, v in (results.get("sequences") or {}).items():  # each sequence model's own curve beside the fused one
        curves.append((f"CV, {q} model (image)", v["cv"]["pooled"], v["cv"].get("roc")))
    if any(c[2] for c in curves):
        paths["roc"] = roc_png(curves, results["cv"]["pooled"].get("positive", ""), out / "roc.png")
    panels = [("cross-validation", results["cv"]["pooled"])] + ([("held-out test", results["test"])] if results.get("test") else [])
    paths["confusion"] = confusion_png(panels, results["classes"], out / "confusion.png")
    folds = {k: v["values"] for k, v in results["cv"]["per_fold"].items() if k in ("auc", "accuracy", "balanced_accuracy", "f1")}
    if folds and len(next(iter(folds.values()))) > 1:
        paths["folds"] = strip_png(folds, "score per fold (every repeat x fold)", out / "folds.png")
    if results.get("finetune", {}).get("runs"):
        from featx.report.finetune import curves_png

        paths["curves"] = curves_png(results["finetune"]["runs"], out / "curves.png")
    return paths


def roc_png(curves: list, positive: str, path: Path) -> Path:
    """``curves``: (title, metrics with auc/auc_ci, roc dict with fpr/tpr[/lo/hi]) per curve."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.8), dpi=110)
    for title, m, roc in curves:
        if not roc:
            continue
        line, = ax.plot(roc["fpr"], roc["tpr"], lw=1.6, label=f"{title}: AUC {fmt(m, 'auc')}")
        if "lo" in roc:
            ax.fill_between(roc["fpr"], roc["lo"], roc["hi"], color=line.get_color(), alpha=0.15, lw=0)
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC, positive = {positive} (band: 95% bootstrap)",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.title.set_fontsize(9)
    ax.legend(loc="lower right", fontsize=6.5)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def confusion_png(panels: list, classes: list, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), dpi=110, squeeze=False)
    for ax, (title, m) in zip(axes[0], panels):
        cm = np.asarray(m["confusion_matrix"])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
        ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
               xlabel="predicted", ylabel="true")
        ax.set_title(title, fontsize=8)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def strip_png(series: dict, title: str, path: Path) -> Path:
    """One column of points (plus mean bar) per named list of per-fold scores."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(min(11.0, max(4.0, 0.65 * len(series) + 1.5)), 3.8), dpi=110)
    rng = np.random.default_rng(0)
    for i, (name, vals) in enumerate(series.items()):
        v = np.asarray(vals, float)
        v = v[~np.isnan(v)]
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(v)), v, s=12, alpha=0.7)
        if len(v):
            ax.hlines(v.mean(), i - 0.25, i + 0.25, color="black", lw=1.5)
    ax.set_xticks(range(len(series)), list(series), rotation=35, ha="right", fontsize=7)
    ax.set(title=title, ylim=(min(0.4, ax.get_ylim()[0]), 1.01))
    ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def fmt(m: dict | None, key: str, boot: bool = True) -> str:
    """A metric with its CI: DeLong for AUC, bootstrap for the others (and in brackets for AUC too, unless not ``boot``)."""
    if not m:
        return "-"
    v = m.get(key)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    s = f"{v:.3f}"
    if key == "auc" and m.get("auc_ci") and not np.isnan(m["auc_ci"][0]):
        s += f" ({m['auc_ci'][0]:.3f}-{m['auc_ci'][1]:.3f})"
    ci = (m.get("ci") or {}).get(key) if boot else None
    if ci:
        s += f" [{ci[0]:.3f}-{ci[1]:.3f}]"
    return s


def summary_rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(metric, pooled CV, per-fold mean ± sd, test) rows for text and HTML tables."""
    rows = []
    pooled, folds, test = results["cv"]["pooled"], results["cv"]["per_fold"], results.get("test")
    for key, label in METRIC_ROWS:
        if key not in pooled:
            continue
        pf = folds.get(key)
        rows.append((label, fmt(pooled, key), f"{pf['mean']:.3f} ± {pf['sd']:.3f}" if pf else "-", fmt(test, key)))
    return rows


def provenance_rows(prov: dict, dropped: list | None = None) -> dict:
    """What made a feature set, for the provenance table."""
    if prov.get("kind") == "radiomics":
        params = prov.get("params", {})
        return {
            "features": f"pyradiomics ({', '.join(f'{k} {v}' for k, v in prov.get('versions', {}).items())}), "
                        f"{params.get('mode', '?')}, {prov.get('n_features', '?')} features"
                        + (f"; left out as NaN in some rows: {', '.join(dropped)}" if dropped else ""),
            "settings": f"{prov.get('params_source', '?')}: image types {params.get('imageType')}, "
                        f"feature classes {sorted(params.get('featureClass') or {})}, settings {params.get('setting')}",
            "mask": prov.get("mask", "-"),
            "intensity": prov.get("intensity", "-"),
        }
    spec = prov.get("spec", {})
    return {
        "backbone": spec.get("name", prov.get("kind", "?")),
        "weights": f"{spec.get('weights_id', '?')} (sha256 {spec.get('weights_sha256') or 'none: random init'})",
        "ONNX sha256": prov.get("onnx_sha256", "-"),
        "runtime": f"{prov.get('runtime', '-')} on {prov.get('provider', '-')}",
        "preprocessing": prov.get("preprocessing", "-"),
    }


def versions_line(results: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in (results.get("versions") or {}).items()) or "-"


def table(header: list, rows: list) -> str:
    head = "".join(f"<th>{e(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figures(images: dict) -> str:
    return "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(Path(p).read_bytes()).decode()}" alt="{e(k)}"></figure>'
        for k, p in images.items() if str(p).endswith(".png"))


def page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1300px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; }}
th {{ background: #f3f3f3; }} figure {{ display: inline-block; margin: 0 1em 1em 0; max-width: 100%; }} img {{ max-width: 100%; }}
code {{ font-size: 0.85em; word-break: break-all; }} .note {{ color: #555; font-size: 0.9em; }}
table.bench td {{ white-space: nowrap; font-size: 0.9em; }} .ci {{ color: #888; font-size: 0.8em; }}
</style></head><body>
<h1>{e(title)}</h1>
{body}
</body></html>
"""


def render_fit(results: dict, images: dict) -> str:
    """The page of one fit: metrics, plots, per-sequence models, provenance."""
    proto = results["protocol"]
    cvd = results["cv"]
    pos = cvd["pooled"].get("positive")
    unit = cvd["pooled"].get("ci_unit", "sample")
    body = [f"""<p class="note">{results['n_dev']} samples in {e(proto['folds'])}; {results['n_test']} in the held-out test split;
classes {e(', '.join(results['classes']))}{f'; positive class <b>{e(pos)}</b>' if pos else ''}. Level: {e(cvd.get('level', 'image'))}.
AUC: 95% DeLong interval in parentheses; [brackets]: 95% percentile bootstrap ({proto.get('n_boot', 0)} resamples by {e(unit)}).</p>""",
            table(["metric", "CV (pooled out-of-fold)", "CV per fold (mean ± sd)", "held-out test"], summary_rows(results))]
    if cvd.get("subject"):
        s = cvd["subject"]
        body.append(f"<h2>Subject level</h2><p class='note'>{s['n_subjects']} subjects; mean probability over each "
                    f"subject's images.</p>" + table(["metric", "CV subject level"], [(lab, fmt(s, k)) for k, lab in METRIC_ROWS if k in s]))
    if results.get("sequences"):
        keys = [k for k in ("accuracy", "sensitivity", "specificity", "f1") if k in cvd["pooled"]]
        rows = [(q, v["n"], fmt(v["cv"]["pooled"], "auc"), *(fmt(v["cv"]["pooled"], k) for k in keys),
                 fmt((v["cv"].get("subject") or {}), "auc"), fmt(v.get("test"), "auc"))
                for q, v in results["sequences"].items()]
        rows.append((f"fused ({proto['fuse']})", "-", fmt(cvd["pooled"], "auc"),
                     *(fmt(cvd["pooled"], k) for k in keys), "-", fmt(results.get("test"), "auc")))
        body.append("<h2>Per-sequence models and the fused one</h2>"
                    + table(["model", "images", "CV AUC", *keys, "CV AUC (subject)", "test AUC"], rows))
    body.append(figures(images))
    if results.get("finetune"):
        from featx.report.finetune import finetune_section

        body.append(finetune_section(results))
    if cvd.get("best_params"):
        body.append(f"<h2>Tuning (nested CV)</h2><p class='note'>grid {e(json.dumps(results['head']['tuned']))}; "
                    f"chosen per outer fold:</p><pre>{e(json.dumps(cvd['best_params']))}</pre>")
    prov = {"featx version": results["featx_version"], "store": results["store"], "feature set": results["feature_set"],
            **provenance_rows(results["provenance"], results.get("dropped_features")),
            "head": results["head"]["estimator"], "folds": proto["folds"]
            + (f" (loaded from {proto['folds_from']})" if proto.get("folds_from") else ""),
            "seed": proto["seed"], "versions": versions_line(results), "created": results["created"]}
    body.append("<h2>Provenance</h2><table>" + "".join(
        f"<tr><th>{e(k)}</th><td><code>{e(str(v))}</code></td></tr>" for k, v in prov.items()) + "</table>")
    lean = {k: v for k, v in results.items() if k != "folds"}
    body.append(f"<details><summary>results.json</summary><pre>{e(json.dumps(lean, indent=1)[:30000])}</pre></details>")
    return page(f"featx: {results['feature_set']} + {results['head']['name']}", "\n".join(body))
