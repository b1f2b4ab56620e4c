"""The building blocks of every page: a metric with its intervals, tables, embedded figures, the page itself."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from featx.results.metrics import METRIC_LABELS, CVScores, Metrics, degenerate_decisions, finite
from featx.results.provenance import FeatureProvenance

e = html.escape


def fmt(m: Metrics | None, key: str, boot: bool = True) -> str:
    """A metric with its CI: DeLong for AUC, bootstrap for the others (and in brackets for AUC too, unless not
    ``boot``); ``-`` when it was not computed."""
    if m is None:
        return "-"
    v = m.value(key)
    if not finite(v):
        why = m.not_computable.get(key)
        return f"not computable: {why}" if why else "-"
    s = f"{v:.3f}"
    if key == "auc" and m.auc_ci and finite(m.auc_ci[0]):
        s += f" ({m.auc_ci[0]:.3f}-{m.auc_ci[1]:.3f})"
    ci = m.interval(key) if boot else None
    if ci:
        s += f" [{ci[0]:.3f}-{ci[1]:.3f}]"
    return s


def fold_stat(stat) -> str:
    """``mean ± sd`` over the folds that have the metric (how many lack it, when some do)."""
    if stat is None:
        return "-"
    if stat.mean is None or not finite(stat.mean):
        return "not computable in any fold"
    lacking = f" ({stat.n_missing} of {len(stat.values)} not computable)" if stat.n_missing else ""
    return f"{stat.mean:.3f} ± {stat.sd:.3f}{lacking}"


def summary_rows(cv: CVScores, test: Metrics | None) -> list[tuple[str, str, str, str]]:
    """(metric, pooled CV, per-fold mean ± sd, test) rows for text and HTML tables."""
    rows = []
    for key in cv.pooled.shown():
        stat = cv.per_fold.get(key)
        rows.append((METRIC_LABELS[key], fmt(cv.pooled, key), fold_stat(stat), fmt(test, key)))
    return rows


def provenance_table(prov, dropped=()) -> str:
    """The feature set's provenance as a two-column table."""
    return key_values(FeatureProvenance.of(prov).rows(dropped))


def key_values(info: dict) -> str:
    return (
        "<table>"
        + "".join(f"<tr><th>{e(k)}</th><td><code>{e(str(v))}</code></td></tr>" for k, v in info.items())
        + "</table>"
    )


def versions_line(versions) -> str:
    return ", ".join(f"{k} {v}" for k, v in (versions or {}).items()) or "-"


def table(header: list, rows: list) -> str:
    head = "".join(f"<th>{e(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figures(images: dict) -> str:
    return "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(Path(p).read_bytes()).decode()}" alt="{e(k)}">'
        "</figure>"
        for k, p in images.items()
        if str(p).endswith(".png")
    )


def raw_json(data: dict) -> str:
    """The result as JSON (without the folds), folded away at the end of the page."""
    lean = {k: v for k, v in data.items() if k != "folds"}
    return f"<details><summary>results.json</summary><pre>{e(json.dumps(lean, indent=1)[:30000])}</pre></details>"


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


def degenerate_note(what: str, m) -> str:
    """A warning paragraph when the decisions of ``m`` are degenerate (:func:`degenerate_decisions`), else ""."""
    why = degenerate_decisions(m)
    return f"<p class='note'><b>Warning ({e(what)}).</b> {e(why)}.</p>" if why else ""


def copies_note(protocol) -> str:
    """A paragraph on the exact copies among the rows and what the split did with them ("" when there are none)."""
    out = ""
    if protocol.copies:
        out += f"<p class='note'><b>Copies.</b> {html.escape(str(protocol.copies.get('summary', '')))}</p>"
    near = getattr(protocol, "near_copies", None)
    if near:
        out += f"<p class='note'><b>Near-copies.</b> {html.escape(str(near.get('summary', '')))}</p>"
    return out
