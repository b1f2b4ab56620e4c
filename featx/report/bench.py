"""The page of a ``featx bench`` run: ranked table with CIs, pairwise tests, ROC and per-fold plots, provenance."""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from featx.report.html import confusion_png, figures, page, provenance_rows, roc_png, strip_png, table, versions_line

e = html.escape
TOP_ROC = 5


def bench_images(results: dict, out: Path) -> dict:
    cells = results["cells"]
    paths = {}
    curves = [(f"{c['feature_set']} + {c['head']}", c["cv"]["pooled"], c["cv"].get("roc")) for c in cells[:TOP_ROC]]
    if any(r for _, _, r in curves):
        paths["roc"] = roc_png(curves, results.get("positive") or "", out / "roc.png")
    best = cells[0]
    paths["confusion"] = confusion_png([(f"best: {best['feature_set']} + {best['head']} (CV)", best["cv"]["pooled"])],
                                       results["classes"], out / "confusion.png")
    series = {f"{c['feature_set']}\n{c['head']}": c["fold_auc"] for c in cells}
    if any(len(v) > 1 for v in series.values()):
        paths["folds"] = strip_png(series, "AUC per fold (identical folds for every cell)", out / "folds.png")
    return paths


def _unit(results: dict) -> str:
    return next((c["cv"]["pooled"].get("ci_unit") for c in results["cells"] if c["cv"]["pooled"].get("ci_unit")), "sample")


def _p(v) -> str:
    return "-" if v is None else (f"{v:.2g}" if v >= 0.001 else "<0.001")


def comparison_rows(results: dict) -> list:
    rows = []
    for c in results["comparisons"]:
        d, t = c.get("delong"), c.get("corrected_t")
        rows.append((c["why"], c["a"], c["b"],
                     f"{d['diff']:+.3f}, z {d['z']:.2f}, p {_p(d['p'])}" if d else "- (multi-class)",
                     f"{t['mean_diff']:+.3f}, t {t['t']:.2f}, p {_p(t['p'])}" if t else "-"))
    return rows


def _cell(m: dict | None, key: str) -> str:
    """Value with its 95% CI in small grey type (DeLong for AUC, bootstrap otherwise); raw HTML."""
    if not m or m.get(key) is None or np.isnan(m[key]):
        return "-"
    ci = m.get("auc_ci") if key == "auc" else (m.get("ci") or {}).get(key)
    small = f" <span class='ci'>{ci[0]:.3f}-{ci[1]:.3f}</span>" if ci and not np.isnan(ci[0]) else ""
    return f"{m[key]:.3f}{small}"


def render_bench(results: dict, images: dict) -> str:
    proto = results["protocol"]
    has_test = proto["held_out_test"]
    keys = [("auc", "CV AUC"), ("balanced_accuracy", "bal. accuracy"), ("sensitivity", "sensitivity"),
            ("specificity", "specificity")]  # precision and F1: bench.csv
    header = (["rank", "feature set", "head", "features"] + [k[1] for k in keys] + ["AUC per fold"]
              + (["test AUC"] if has_test else []) + ["seconds"])
    rows = []
    for c in results["cells"]:
        p, pf = c["cv"]["pooled"], c["cv"]["per_fold"].get("auc")
        cells = ([str(c["rank"]), e(c["feature_set"]), e(c["head"]), str(c["n_features"])] + [_cell(p, k) for k, _ in keys]
                 + [f"{pf['mean']:.3f} ± {pf['sd']:.3f}" if pf else "-"] + ([_cell(c["test"], "auc")] if has_test else [])
                 + [f"{c['seconds']:.1f}"])
        rows.append("<tr>" + "".join(f"<td>{v}</td>" for v in cells) + "</tr>")
    ranked = ("<table class='bench'><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>" + "".join(rows)
              + "</table>")
    body = [f"""<p class="note">{results['n_dev']} samples (those present in every feature set) in {e(proto['folds'])};
{results['n_test']} in the held-out test split; classes {e(', '.join(results['classes']))}; positive class
<b>{e(str(results.get('positive')))}</b>. Every cell is scored on the same folds. Small grey figures: 95% interval
(AUC: DeLong; others: percentile bootstrap, {proto['n_boot']} resamples by {e(_unit(results))}; the bootstrap AUC
intervals are in bench.csv and results.json). Seconds: cross-validation wall time of the cell.</p>""", ranked]
    if results["comparisons"]:
        body.append("<h2>Pairwise comparisons</h2><p class='note'>a - b. DeLong's paired test on the out-of-fold "
                    "scores (averaged over repeats); corrected resampled t-test (Nadeau &amp; Bengio) on the per-fold "
                    "AUCs, which allows for folds sharing training data. Neither corrects for having picked the best "
                    "of many cells.</p>"
                    + table(["comparison", "a", "b", "DeLong: ΔAUC", "corrected t-test: mean Δ fold AUC"],
                            comparison_rows(results)))
    body.append(figures(images))
    body.append("<h2>Provenance</h2>")
    for name, prov in results["provenance"].items():
        info = provenance_rows(prov, results["dropped_features"].get(name))
        body.append(f"<h3>{e(name)}</h3><table>" + "".join(
            f"<tr><th>{e(k)}</th><td><code>{e(str(v))}</code></td></tr>" for k, v in info.items()) + "</table>")
    meta = {"featx version": results["featx_version"], "store": results["store"], "seed": proto["seed"],
            "folds": proto["folds"] + (f" (loaded from {proto['folds_from']})" if proto.get("folds_from") else ""),
            "versions": versions_line(results), "created": results["created"]}
    body.append("<table>" + "".join(f"<tr><th>{e(k)}</th><td><code>{e(str(v))}</code></td></tr>"
                                    for k, v in meta.items()) + "</table>")
    lean = {k: v for k, v in results.items() if k != "folds"}
    body.append(f"<details><summary>results.json</summary><pre>{e(json.dumps(lean, indent=1)[:30000])}</pre></details>")
    return page(f"featx bench: {len(results['feature_sets'])} feature set(s) x {len(results['heads'])} head(s)",
                "\n".join(body))
