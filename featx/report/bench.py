"""The page of a ``featx bench`` run: ranked table with CIs, pairwise tests, ROC and per-fold plots, provenance."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from featx.report.html import (
    copies_note,
    e,
    figures,
    fold_stat,
    key_values,
    page,
    provenance_table,
    raw_json,
    table,
    versions_line,
)
from featx.report.plots import (
    agreement_png,
    confusion_png,
    km_png,
    learning_png,
    reliability_grid_png,
    reliability_png,
    roc_png,
    strip_png,
)
from featx.results.bench import BenchResult
from featx.results.codec import to_json
from featx.results.metrics import METRIC_LABELS, Metrics, finite

TOP_ROC = 5
TABLE_KEYS = (
    ("auc", "AUC"),
    ("balanced_accuracy", "bal. accuracy"),
    ("sensitivity", "sensitivity"),
    ("specificity", "specificity"),
    ("brier", "Brier"),
)  # precision and F1: bench.csv
REGRESSION_TABLE_KEYS = (
    ("mae", "MAE"),
    ("rmse", "RMSE"),
    ("r2", "R²"),
    ("pearson", "Pearson r"),
    ("spearman", "Spearman ρ"),
)
SURVIVAL_TABLE_KEYS = (
    ("harrell_c", "Harrell's C"),
    ("uno_c", "Uno's C"),
    ("td_auc_mean", "mean td-AUC"),
    ("ibs", "IBS"),
)
#: what a bench without classes ranks by and compares: (metric, its short name)
MAIN = {"regression": ("mae", "MAE"), "survival": ("harrell_c", "C")}


def _unclassed(r: BenchResult) -> bool:
    """A bench of a target without classes (a regression or a survival target)."""
    return r.target.kind != "classification"


def bench_images(r: BenchResult, out: Path) -> dict:
    if _unclassed(r):
        return _regression_images(r, out)
    paths = {}
    curves = [(c.title, c.cv.pooled, c.cv.roc) for c in r.cells[:TOP_ROC]]
    if any(roc for _, _, roc in curves):
        paths["roc"] = roc_png(curves, r.positive or "", out / "roc.png")
    curves = [(f"{c.title} ({r.protocol.scored_on})", c.cv.pooled) for c in r.cells[:TOP_ROC]]
    curves += [(f"{c.title} (test)", c.test) for c in r.cells[:1] if c.test is not None]
    for name, made in (
        ("reliability", reliability_png(curves, r.positive or "", out / "reliability.png")),
        (
            "reliability_cells",
            reliability_grid_png(
                [(f"{c.rank}. {c.title}", c.cv.pooled, c.test) for c in r.cells],
                r.positive or "",
                out / "reliability_cells.png",
            ),
        ),
    ):
        if made is not None:
            paths[name] = made
    best = r.cells[0]
    paths["confusion"] = confusion_png([(f"best: {best.title} (CV)", best.cv.pooled)], r.classes, out / "confusion.png")
    series = {f"{c.feature_set}\n{c.head}": c.fold_auc for c in r.cells}
    if any(len(v) > 1 for v in series.values()):
        paths["folds_plot"] = strip_png(series, "AUC per fold (identical folds for every cell)", out / "folds.png")
    if r.learning:
        paths["learning_png"] = learning_png(r.learning, out / "learning.png")
    return paths


def _regression_images(r: BenchResult, out: Path) -> dict:
    """The best cell's predicted versus true and Bland-Altman plots (out-of-fold, averaged over repeats), and every
    cell's MAE per fold."""
    paths = {}
    best = r.cells[0]
    oof = (r.outputs or {}).get("oof")
    if r.target.kind == "survival":
        if best.cv.pooled.risk_groups and best.cv.pooled.risk_groups.get("curves"):
            paths["km"] = km_png(
                [(f"best: {best.title} ({r.protocol.scored_on})", best.cv.pooled.risk_groups)], out / "km.png"
            )
    elif oof and Path(oof).is_file():
        true, pred = bench_values(Path(oof), r.target.value, f"{best.title.replace(' + ', '+')}:p_predicted")
        if len(true):
            panels = [(f"best: {best.title} ({r.protocol.scored_on})", true, pred)]
            paths["agreement"] = agreement_png(panels, r.target.value, out / "agreement.png")
    series = {f"{c.feature_set}\n{c.head}": c.fold_auc for c in r.cells}
    if any(len(v) > 1 for v in series.values()):
        what = MAIN[r.target.kind][1]
        paths["folds_plot"] = strip_png(series, f"{what} per fold (identical folds for every cell)", out / "folds.png")
    return paths


def bench_values(path: Path, column: str, cell: str) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) per row of a regression bench's oof_predictions.csv for ``cell``, repeats averaged."""
    sums: dict = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get(cell, "") == "":
                continue
            t, n, q = sums.get(row["id"], (float(row[column]), 0, 0.0))
            sums[row["id"]] = (t, n + 1, q + float(row[cell]))
    return np.array([t for t, _, _ in sums.values()]), np.array([q / n for _, n, q in sums.values()])


def learning_section(r: BenchResult) -> str:
    """``--train-sizes``: the best deep cell against the best radiomics cell at each size."""
    lc = r.learning
    key = lc.get("metric", "auc")
    label = METRIC_LABELS.get(key, key)
    note = (
        f"<h2>Label efficiency</h2><p class='note'>Each training fold cut down to {e(lc['unit'])} at each size, "
        f"{lc['draws']} random draws (subjects whole), every model scored on the same outer folds (learning.csv: "
        "every cell at every size; the figure below). The best deep cell against the best radiomics cell at each "
        f"size: a paired bootstrap over subjects of the draw-mean {e(label)} difference [95% interval].</p>"
    )
    if not lc["tests"]:
        return note
    rows = [
        (t["size"], t["deep"], t["radiomics"],
         f"{t[f'{key}_difference']:+.3f} " + (f"[{t['ci'][0]:+.3f}, {t['ci'][1]:+.3f}]" if t["ci"] else e(t["test"])),
         p_value(t["p"]))
        for t in lc["tests"]
    ]  # fmt: skip
    return note + table(["size", "deep", "radiomics", f"Δ{label}", "p"], rows)


def p_value(v) -> str:
    """A p-value for tables: two significant digits, ``<0.001`` below that; ``not computable`` for anything
    that is not a number in [0, 1] (None, NaN, inf): a NaN is never shown as a p-value."""
    if not finite(v) or not 0 <= v <= 1:
        return "not computable"
    return f"{v:.2g}" if v >= 0.001 else "<0.001"


def _test(c, name: str, shown: str | None) -> str:
    if shown is not None:
        return shown
    why = c.not_computable.get(name)
    return f"not computable: {why}" if why else "-"


def comparison_rows(r: BenchResult) -> list[tuple[str, str, str, str, str, str]]:
    """(why, a, b, DeLong, paired bootstrap, corrected t) per comparison; a test that did not run says why."""
    rows = []
    for c in r.comparisons:
        d, t, b = c.delong, c.corrected_t, c.bootstrap
        rows.append(
            (
                c.why,
                c.a,
                c.b,
                _test(c, "delong", f"{d.diff:+.3f}, z {d.z:.2f}, p {p_value(d.p)}" if d else None),
                _test(c, "bootstrap", f"{b.diff:+.3f} [{b.lo:+.3f}, {b.hi:+.3f}], p {p_value(b.p)}" if b else None),
                _test(c, "corrected_t", f"{t.mean_diff:+.3f}, t {t.t:.2f}, p {p_value(t.p)}" if t else None),
            )
        )
    return rows


def _cell(m: Metrics | None, key: str) -> str:
    """Value with its 95% CI in small grey type (DeLong for AUC, bootstrap otherwise); raw HTML."""
    if m is None or not finite(m.value(key)):
        return "-"
    ci = m.auc_ci if key == "auc" else m.interval(key)
    small = f" <span class='ci'>{ci[0]:.3f}-{ci[1]:.3f}</span>" if ci and finite(ci[0]) else ""
    return f"{m.value(key):.3f}{small}"


def _ranked_table(r: BenchResult) -> str:
    has_test, on = r.protocol.held_out_test, r.protocol.scored_on
    keys, main = {
        "regression": (REGRESSION_TABLE_KEYS, MAIN["regression"]),
        "survival": (SURVIVAL_TABLE_KEYS, ("harrell_c", "Harrell's C")),
    }.get(r.target.kind, (TABLE_KEYS, ("auc", "AUC")))
    header = (
        ["rank", "feature set", "head", "features"]
        + [f"{on} {label}" for _, label in keys]
        + [f"{main[1]} {r.protocol.per_unit}"]
        + ([f"held-out test {main[1]}"] if has_test else [])
        + ["seconds"]
    )
    rows = []
    for c in r.cells:
        fold = c.cv.per_fold.get(main[0])
        cells = (
            [str(c.rank), e(c.feature_set), e(c.head), str(c.n_features)]
            + [_cell(c.cv.pooled, k) for k, _ in keys]
            + [fold_stat(fold)]
            + ([_cell(c.test, main[0])] if has_test else [])
            + [f"{c.seconds:.1f}"]
        )
        rows.append("<tr>" + "".join(f"<td>{v}</td>" for v in cells) + "</tr>")
    return (
        "<table class='bench'><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>" + "".join(rows) + "</table>"
    )


def render_bench(r: BenchResult, images: dict) -> str:
    proto = r.protocol
    unit = next((c.cv.pooled.ci_unit for c in r.cells if c.cv.pooled.ci_unit), "sample")
    what = {
        "regression": f"target: the number in <b>{e(r.target.value or '')}</b> (regression; ranked by MAE, lowest first)",
        "survival": f"target: the time in <b>{e(r.target.time or '')}</b> to the event in <b>{e(r.target.event or '')}</b> "
        "(survival; ranked by Harrell's C)",
    }.get(r.target.kind, f"classes {e(', '.join(r.classes))}; positive class <b>{e(str(r.positive))}</b>")
    boot = f"percentile bootstrap, {proto.n_boot} resamples by {e(unit)}"
    intervals = (
        boot
        if _unclassed(r)
        else f"AUC: DeLong; others: {boot}; the bootstrap AUC intervals are in bench.csv and results.json"
    )
    body = [
        f"""<p class="note">{r.n_dev} samples (those present in every feature set) in {e(proto.folds)};
{r.n_test} in the held-out test split; {what}. Every cell is scored on the same folds;
the scores are {e(r.cells[0].cv.scope)}. Small grey figures: 95% interval ({intervals}). Seconds:
cross-validation wall time of the cell.</p>""",
        copies_note(proto),
        _ranked_table(r),
    ]
    if r.comparisons and _unclassed(r):
        m = MAIN[r.target.kind][1]
        sign = "Negative: a errs less." if r.target.kind == "regression" else "Positive: a ranks the patients better."
        body.append(
            "<h2>Pairwise comparisons</h2><p class='note'>a - b, on "
            + e(r.comparisons[0].scope)
            + f". A paired bootstrap of the {m} difference, resampling subjects for both cells at once [95% interval]; "
            f"corrected resampled t-test (Nadeau &amp; Bengio) on the per-fold {m}s. {sign} None "
            "corrects for having picked the best of many cells.</p>"
            + table(
                ["comparison", "a", "b", f"paired bootstrap: Δ{m}", f"corrected t-test: mean Δ fold {m}"],
                [(w, a, b, boot, t) for w, a, b, _d, boot, t in comparison_rows(r)],
            )
        )
    elif r.comparisons:
        body.append(
            "<h2>Pairwise comparisons</h2><p class='note'>a - b, on "
            + e(r.comparisons[0].scope)
            + ". DeLong's paired test on the scores (averaged over repeats; binary problems); a paired "
            "bootstrap of the (macro) AUC difference, resampling subjects for both cells at once [95% interval]; "
            "corrected resampled t-test (Nadeau &amp; Bengio) on the per-fold AUCs, which allows for folds "
            "sharing training data. None corrects for having picked the best of many cells.</p>"
            + table(
                ["comparison", "a", "b", "DeLong: ΔAUC", "paired bootstrap: ΔAUC", "corrected t-test: mean Δ fold AUC"],
                comparison_rows(r),
            )
        )
    if r.selection is not None:
        body.append(selection_section(r))
    if r.learning:
        body.append(learning_section(r))
    ensembles = [c for c in r.cells if c.kind == "ensemble"]
    if ensembles:
        body.append(
            "<h2>Ensembles</h2><p class='note'>Each outer fold's ensemble combines the top cells of an inner CV of "
            "that fold's training rows (soft vote: mean probability; stacking: a logistic regression on their inner "
            "out-of-fold probabilities), so no scored prediction chose its members or fitted its meta-learner. The "
            "test split and the saved model use the top cells by the bench's CV, the meta-learner fitted on their "
            "out-of-fold probabilities. With --threshold, each fold's ensemble chooses its threshold on its own inner "
            "out-of-fold probabilities of the training rows (the test split's and the saved model's: on the "
            "development rows).</p>"
            + table(
                ["row", "members (test split, saved model)", "members chosen per fold"],
                [
                    (c.title, "; ".join(c.members), "; ".join(f"{t} {n}x" for t, n in _counts(c.fold_members)))
                    for c in ensembles
                ],
            )
        )
    body.append(figures(images))
    body.append("<h2>Provenance</h2>")
    for name, prov in r.provenance.items():
        body.append(f"<h3>{e(name)}</h3>" + provenance_table(prov, r.dropped_features.get(name, ())))
    folds = proto.folds + (f" (loaded from {proto.folds_from})" if proto.folds_from else "")
    body.append(
        key_values(
            {
                "featx version": r.featx_version,
                "store": r.store,
                "seed": proto.seed,
                "folds": folds,
                "versions": versions_line(r.versions),
                "created": r.created,
            }
        )
    )
    body.append(raw_json(to_json(r)))
    return page(r.title, "\n".join(body))


def _counts(fold_members) -> list:
    out: dict = {}
    for members in fold_members:
        for t in members:
            out[t] = out.get(t, 0) + 1
    return sorted(out.items(), key=lambda kv: -kv[1])


def selection_section(r: BenchResult) -> str:
    """Nested selection: the honest estimate of taking the best cell, beside the naive best, and what to quote."""
    s = r.selection
    key = s.nested.pooled.primary
    label = METRIC_LABELS[key]
    rows = [
        (f"naive: the best cell's CV {label}", s.naive_best, f"{s.naive_auc:.3f}" if finite(s.naive_auc) else "-"),
        (
            f"nested: the cell an inner {s.inner_k}-fold CV chose, on each outer fold",
            "; ".join(f"{t} {n}x" for t, n in s.chosen_counts.items()),
            _cell(s.nested.pooled, key),
        ),
        ("gap (how much better the naive figure looks)", "", f"{s.gap:+.3f}" if finite(s.gap) else "-"),
    ]
    if s.test is not None:
        rows.append(("held-out test of the configuration chosen by CV (scored once)", s.selected, _cell(s.test, key)))
    return (
        "<h2>Model selection (nested)</h2><p class='note'>The best of "
        f"{s.candidates} cells won on the folds it is scored on, so its CV {label} is optimistic. Nested selection "
        "scores the whole procedure: in each outer fold, the cell chosen by an inner CV of the training rows only, "
        "on the outer fold's rows.</p>"
        + f"<table class='bench'><tr><th>estimate</th><th>cell</th><th>{e(label)}</th></tr>"
        + "".join(f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{c}</td></tr>" for a, b, c in rows)
        + "</table>"
        + f"<p><b>Which number to quote.</b> {e(s.quote)}</p>"
    )
