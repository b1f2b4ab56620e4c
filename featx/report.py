"""Results -> PNG plots and a self-contained HTML page (formatting only: no model code here)."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

_METRIC_ROWS = (
    ("auc", "AUC"), ("accuracy", "Accuracy"), ("balanced_accuracy", "Bal. accuracy"),
    ("sensitivity", "Sensitivity"), ("specificity", "Specificity"), ("precision", "Precision"), ("f1", "F1"),
)


def write_report(results: dict, curves: dict, out: Path) -> dict:
    """Write ``roc.png``, ``confusion.png`` and ``report.html`` into ``out``.

    Parameters
    ----------
    results : dict
        As built by :func:`featx.fit.run_fit`.
    curves : dict
        Title -> (true labels as str, probabilities (n, C)) for each evaluated set.
    out : Path

    Returns
    -------
    dict
        Name -> written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    paths = {}
    classes = results["classes"]
    if len(classes) == 2:
        paths["roc"] = _roc_png(curves, classes, results, out / "roc.png")
    paths["confusion"] = _confusion_png(results, out / "confusion.png")
    paths["report"] = out / "report.html"
    paths["report"].write_text(render_html(results, {k: v for k, v in paths.items() if k != "report"}), encoding="utf-8")
    return paths


def _roc_png(curves: dict, classes, results: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    positive = results["cv"]["pooled"].get("positive", classes[1])
    pos = classes.index(positive)
    fig, ax = plt.subplots(figsize=(4.8, 4.5), dpi=110)
    for (title, (labels, proba)), key in zip(curves.items(), ("cv", "test")):
        m = results["cv"]["pooled"] if key == "cv" else results["test"]
        fpr, tpr, _ = roc_curve(np.asarray(labels) == positive, np.asarray(proba)[:, pos])
        lo, hi = m["auc_ci"]
        ax.plot(fpr, tpr, lw=1.8, label=f"{title}: AUC {m['auc']:.3f} [{lo:.3f}, {hi:.3f}]")
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC, positive = {positive}", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _confusion_png(results: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    panels = [("cross-validation", results["cv"]["pooled"])] + ([("held-out test", results["test"])] if results["test"] else [])
    classes = results["classes"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), dpi=110, squeeze=False)
    for ax, (title, m) in zip(axes[0], panels):
        cm = np.asarray(m["confusion_matrix"])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
        ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
               xlabel="predicted", ylabel="true", title=title)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(m: dict, key: str) -> str:
    v = m.get(key)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    s = f"{v:.3f}"
    if key == "auc" and "auc_ci" in m:
        s += f" ({m['auc_ci'][0]:.3f}-{m['auc_ci'][1]:.3f})"
    return s


def summary_rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(metric, pooled CV, per-fold mean ± sd, test) rows for text and HTML tables."""
    rows = []
    pooled, folds, test = results["cv"]["pooled"], results["cv"]["per_fold"], results["test"]
    for key, label in _METRIC_ROWS:
        if key not in pooled:
            continue
        pf = folds.get(key)
        rows.append((label, _fmt(pooled, key), f"{pf['mean']:.3f} ± {pf['sd']:.3f}" if pf else "-",
                     _fmt(test, key) if test else "-"))
    return rows


def _radiomics_provenance(prov: dict, results: dict) -> dict:
    params = prov.get("params", {})
    dropped = results.get("dropped_features") or []
    return {
        "features": f"pyradiomics ({', '.join(f'{k} {v}' for k, v in prov.get('versions', {}).items())}), "
                    f"{params.get('mode', '?')}, {prov.get('n_features', '?')} features"
                    + (f"; left out as NaN in some rows: {', '.join(dropped)}" if dropped else ""),
        "settings": f"{prov.get('params_source', '?')}: image types {params.get('imageType')}, "
                    f"feature classes {sorted(params.get('featureClass') or {})}, settings {params.get('setting')}",
        "mask": prov.get("mask", "-"),
        "intensity": prov.get("intensity", "-"),
    }


def render_html(results: dict, images: dict) -> str:
    """Self-contained HTML (images embedded as base64)."""
    prov = results["provenance"]
    spec = prov.get("spec", {})
    e = html.escape
    table = "".join(f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td><td>{e(d)}</td></tr>" for a, b, c, d in summary_rows(results))
    imgs = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(Path(p).read_bytes()).decode()}" alt="{e(k)}"></figure>'
        for k, p in images.items()
    )
    proto = results["protocol"]
    provenance = {
        "featx version": results["featx_version"],
        "store": results["store"],
        "feature set": results["feature_set"],
        **(_radiomics_provenance(prov, results) if prov.get("kind") == "radiomics" else {
            "backbone": spec.get("name", prov.get("kind", "?")),
            "weights": f"{spec.get('weights_id', '?')} (sha256 {spec.get('weights_sha256') or 'none: random init'})",
            "ONNX sha256": prov.get("onnx_sha256", "-"),
            "runtime": f"{prov.get('runtime', '-')} on {prov.get('provider', '-')}",
            "preprocessing": prov.get("preprocessing", "-"),
        }),
        "head": results["head"]["estimator"],
        "protocol": (f"{proto['cv']}-fold {proto['splitter']}, seed {proto['seed']}, "
                     f"{'grouped by subject' if proto['grouped_by_subject'] else 'NOT grouped (no subject ids)'}; "
                     f"{'refit on all non-test samples, scored once on the test split' if proto['held_out_test'] else 'no held-out test split'}"),
        "created": results["created"],
    }
    prov_rows = "".join(f"<tr><th>{e(k)}</th><td><code>{e(str(v))}</code></td></tr>" for k, v in provenance.items())
    pos = results["cv"]["pooled"].get("positive")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>featx report: {e(results['feature_set'])} + {e(results['head']['name'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; }}
th {{ background: #f3f3f3; }} figure {{ display: inline-block; margin: 0 1em 1em 0; }} img {{ max-width: 460px; }}
code {{ font-size: 0.85em; word-break: break-all; }} .note {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>featx: {e(results['feature_set'])} + {e(results['head']['name'])}</h1>
<p class="note">{results['n_dev']} samples in cross-validation, {results['n_test']} in the held-out test split;
classes {e(', '.join(results['classes']))}{f'; positive class <b>{e(pos)}</b>' if pos else ''}.
AUC intervals are 95% DeLong intervals.</p>
<table><tr><th>metric</th><th>CV (pooled out-of-fold)</th><th>CV per fold (mean ± sd)</th><th>held-out test</th></tr>{table}</table>
{imgs}
<h2>Provenance</h2><table>{prov_rows}</table>
<details><summary>results.json</summary><pre>{e(json.dumps({k: v for k, v in results.items() if k != 'folds'}, indent=1)[:20000])}</pre></details>
</body></html>
"""
