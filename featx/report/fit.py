"""The page of one ``fit`` or ``finetune`` run: metrics, plots, per-sequence models, tuning, provenance."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from featx.report.finetune import finetune_section
from featx.report.html import (
    copies_note,
    degenerate_note,
    e,
    figures,
    fmt,
    key_values,
    page,
    raw_json,
    summary_rows,
    table,
    versions_line,
)
from featx.report.plots import (
    agreement_png,
    class_roc_png,
    confusion_png,
    curves_png,
    km_png,
    reliability_png,
    roc_png,
    strip_png,
)
from featx.results.codec import to_json
from featx.results.metrics import METRIC_LABELS
from featx.results.provenance import FeatureProvenance
from featx.results.runs import FitResult

FOLD_PLOT_KEYS = ("auc", "accuracy", "balanced_accuracy", "f1")


def fit_images(r: FitResult, out: Path) -> dict:
    """ROC (with bootstrap band), confusion matrices, per-fold scores and the fine-tuning curves of one run (a
    regression: :func:`regression_images`)."""
    if r.target.kind == "regression":
        return regression_images(r, out)
    if r.target.kind == "survival":
        return survival_images(r, out)
    paths = {}
    on = r.protocol.scored_on
    curves = [(f"{on} ({r.cv.level})", r.cv.pooled, r.cv.roc)]
    if r.test is not None:
        curves.append(("held-out test", r.test, r.test.roc))
    for q, v in (r.sequences or {}).items():  # each sequence model's own curve beside the fused one
        curves.append((f"{on}, {q} model (image)", v.cv.pooled, v.cv.roc))
    if any(c[2] for c in curves):
        paths["roc"] = roc_png(curves, r.positive or "", out / "roc.png")
    panels = [("cross-validation" if on == "CV" else on, r.cv.pooled)] + (
        [("held-out test", r.test)] if r.test is not None else []
    )
    paths["confusion"] = confusion_png(panels, r.classes, out / "confusion.png")
    for name, made in (
        ("reliability", reliability_png(panels, r.positive or "", out / "reliability.png")),
        ("class_roc", class_roc_png(panels, out / "class_roc.png")),
    ):
        if made is not None:
            paths[name] = made
    folds = {k: r.cv.fold_values(k) for k in FOLD_PLOT_KEYS if r.cv.fold_values(k)}
    if folds and len(next(iter(folds.values()))) > 1:
        title = "score per fold (every repeat x fold)" if on == "CV" else "score per draw of the test split"
        paths["folds_plot"] = strip_png(folds, title, out / "folds.png")
    if r.finetune is not None and r.finetune.runs:
        paths["curves"] = curves_png(r.finetune.runs, out / "curves.png")
    return paths


def regression_images(r: FitResult, out: Path) -> dict:
    """Predicted versus true and Bland-Altman (each row's out-of-fold prediction averaged over the repeats, and the
    held-out test rows), from the run's prediction CSVs; per-fold MAE and R²."""
    paths = {}
    panels = []
    for title, key in ((f"{r.protocol.scored_on} (out-of-fold)", "oof"), ("held-out test", "test_predictions")):
        csv_path = (r.outputs or {}).get(key)
        if csv_path and Path(csv_path).is_file():
            true, pred = predicted_values(Path(csv_path), r.target.value)
            if len(true):
                panels.append((title, true, pred))
    if panels:
        paths["agreement"] = agreement_png(panels, r.target.value, out / "agreement.png")
    folds = {k: r.cv.fold_values(k) for k in ("mae", "r2") if r.cv.fold_values(k)}
    if folds and len(next(iter(folds.values()))) > 1:
        paths["folds_plot"] = strip_png(folds, "score per fold (every repeat x fold)", out / "folds.png")
    return paths


def survival_images(r: FitResult, out: Path) -> dict:
    """Kaplan-Meier curves of the risk groups (out-of-fold, and the held-out test rows), Harrell's C per fold."""
    paths = {}
    panels = [
        (title, m.risk_groups)
        for title, m in ((f"{r.protocol.scored_on} (out-of-fold)", r.cv.pooled), ("held-out test", r.test))
        if m is not None and m.risk_groups and m.risk_groups.get("curves")
    ]
    if panels:
        paths["km"] = km_png(panels, out / "km.png")
    folds = {k: r.cv.fold_values(k) for k in ("harrell_c", "uno_c") if r.cv.fold_values(k)}
    if folds and len(next(iter(folds.values()))) > 1:
        paths["folds_plot"] = strip_png(folds, "score per fold (every repeat x fold)", out / "folds.png")
    return paths


def predicted_values(path: Path, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) per row of a regression's prediction CSV, the predictions of a row's repeats averaged."""
    sums: dict = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            t, n, p = sums.get(row["id"], (float(row[column]), 0, 0.0))
            sums[row["id"]] = (t, n + 1, p + float(row["predicted"]))
    true = np.array([t for t, _, _ in sums.values()])
    return true, np.array([p / n for _, n, p in sums.values()])


def render_fit(r: FitResult, images: dict) -> str:
    """The page of one run."""
    proto, cv = r.protocol, r.cv
    pos, unit = cv.pooled.positive, cv.pooled.ci_unit or "sample"
    if r.target.kind == "regression":
        return page(f"featx: {r.title}", "\n".join([regression_body(r), *_rest(r, images)]))
    if r.target.kind == "survival":
        return page(f"featx: {r.title}", "\n".join([survival_body(r), *_rest(r, images)]))
    body = [
        f"""<p class="note">{r.n_dev} samples in {e(proto.folds)}; {r.n_test} in the held-out test split;
classes {e(", ".join(r.classes))}{f"; positive class <b>{e(pos)}</b>" if pos else ""}. Level: {e(cv.level)}.
AUC: 95% DeLong interval in parentheses; [brackets]: 95% percentile bootstrap ({proto.n_boot} resamples by {e(unit)}).</p>""",
        copies_note(proto),
        degenerate_note(proto.scored_on, cv.pooled),
        degenerate_note("held-out test", r.test),
        summary_table(r),
    ]
    body.append(operating_section(proto, [(f"{proto.scored_on}", cv.pooled), ("held-out test", r.test)], cv.thresholds))
    body += _rest(r, images)
    return page(f"featx: {r.title}", "\n".join(body))


def _rest(r: FitResult, images: dict) -> list[str]:
    """The sections every run's page shares after its summary: subject level, sequences, attention, figures,
    fine-tuning, tuning, provenance and the raw JSON."""
    proto, cv = r.protocol, r.cv
    body: list[str] = []
    if cv.subject is not None:
        s = cv.subject
        body.append(
            f"<h2>Subject level</h2><p class='note'>{s.n_subjects} subjects; mean "
            f"{'probability' if r.target.kind == 'classification' else 'prediction'} over each subject's images.</p>"
            + table(["metric", f"{proto.scored_on} subject level"], [(METRIC_LABELS[k], fmt(s, k)) for k in s.shown()])
        )
    if r.sequences:
        body.append(_sequences_table(r))
    if r.outputs and r.outputs.get("attention"):
        body.append(attention_section(Path(r.outputs["attention"])))
    body.append(figures(images))
    if r.finetune is not None:
        body.append(finetune_section(r.finetune))
    if cv.best_params:
        body.append(
            f"<h2>Tuning (nested CV)</h2><p class='note'>grid {e(json.dumps(r.head.tuned))}; "
            f"chosen per outer fold:</p><pre>{e(json.dumps(cv.best_params))}</pre>"
        )
    folds = proto.folds + (f" (loaded from {proto.folds_from})" if proto.folds_from else "")
    prov = {
        "featx version": r.featx_version,
        "store": r.store,
        "feature set": r.feature_set,
        **FeatureProvenance.of(r.provenance).rows(r.dropped_features),
        "head": r.head.estimator,
        "folds": folds,
        "seed": proto.seed,
        "versions": versions_line(r.versions),
        "created": r.created,
    }
    body.append("<h2>Provenance</h2>" + key_values(prov))
    body.append(raw_json(to_json(r)))
    return body


def summary_table(r: FitResult) -> str:
    """Each metric pooled, per fold and on the held-out test rows."""
    proto = r.protocol
    head = [
        "metric",
        "CV (pooled out-of-fold)" if proto.split == "cv" else "test split (fixed)",
        f"{proto.scored_on} {proto.per_unit} (mean ± sd)",
        "held-out test",
    ]
    return table(head, summary_rows(r.cv, r.test))


def regression_body(r: FitResult) -> str:
    """The summary of a regression: its metrics with their intervals, and the Bland-Altman agreement."""
    proto, cv = r.protocol, r.cv
    unit = cv.pooled.ci_unit or "sample"
    agreement = [
        (t, f"{m.bias:.3f}", f"{m.loa[0]:.3f} to {m.loa[1]:.3f}")
        for t, m in ((proto.scored_on, cv.pooled), ("held-out test", r.test))
        if m is not None and m.bias is not None and m.loa is not None
    ]
    return (
        f"""<p class="note">{r.n_dev} samples in {e(proto.folds)}; {r.n_test} in the held-out test split;
target: the number in <b>{e(r.target.value or "")}</b> (regression). Level: {e(cv.level)}. [brackets]: 95% percentile
bootstrap ({proto.n_boot} resamples by {e(unit)}). MAE and RMSE are in the target's units.</p>"""
        + copies_note(proto)
        + summary_table(r)
        + "<h2>Agreement (Bland-Altman)</h2><p class='note'>bias: mean of predicted - true; 95% limits of "
        "agreement: bias ± 1.96 sd of the differences.</p>"
        + table(["predictions", "bias", "95% limits of agreement"], agreement)
    )


def survival_body(r: FitResult) -> str:
    """The summary of a survival target: C-indices, time-dependent AUC per horizon, IBS, the risk groups."""
    proto, cv, t = r.protocol, r.cv, r.target
    unit = cv.pooled.ci_unit or "sample"
    panels = [(proto.scored_on, cv.pooled), ("held-out test", r.test)]
    horizons = sorted({h for _, m in panels if m is not None for h in m.td_auc}, key=float)
    td = [(name, *(f"{m.td_auc[h]:.3f}" if h in m.td_auc else "-" for h in horizons)) for name, m in panels if m]
    groups = []
    for name, m in panels:
        g = m.risk_groups if m is not None else None
        if g:
            test = g.get("logrank")
            groups.append(
                (
                    name,
                    f"{g['n']['low']} ({g['events']['low']} events)",
                    f"{g['n']['high']} ({g['events']['high']} events)",
                    f"chi² {test['chi2']:.2f}, p {test['p']:.2g}" if test else f"not computable: {g.get('why', '')}",
                )
            )
    return (
        f"""<p class="note">{r.n_dev} samples in {e(proto.folds)} ({cv.pooled.n_events} events); {r.n_test} in the
held-out test split; target: the time in <b>{e(t.time or "")}</b> to the event in <b>{e(t.event or "")}</b> (survival).
Level: {e(cv.level)}. [brackets]: 95% percentile bootstrap ({proto.n_boot} resamples by {e(unit)}). Uno's C, the
time-dependent AUC and the integrated Brier score (IBS, lower is better; over {len(t.times)} times from
{min(t.times, default=0):g} to {max(t.times, default=0):g}) weight by the censoring distribution of the development
rows.</p>"""
        + copies_note(proto)
        + summary_table(r)
        + "<h2>Time-dependent AUC</h2><p class='note'>cumulative/dynamic AUC at each horizon (scikit-survival).</p>"
        + table(["predictions", *(f"t = {h}" for h in horizons)], td)
        + f"<h2>Risk groups</h2><p class='note'>High risk: a risk score above the {t_quantile(cv.pooled)} quantile "
        "of the risk scores of the training rows of the row's own fold (the held-out rows never move it); "
        "log-rank test between the groups; Kaplan-Meier curves in the figure below.</p>"
        + table(["predictions", "low risk", "high risk", "log-rank"], groups)
    )


def t_quantile(m) -> str:
    q = (m.risk_groups or {}).get("quantile", 0.5)
    return "median (0.5)" if q == 0.5 else f"{q:g}"


def attention_section(path: Path, shown: int = 25) -> str:
    """The slices ABMIL's attention weighted most: each bag's top slice (``attention.csv`` has them all)."""
    import csv

    if not path.is_file():
        return ""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    per_bag: dict = {}
    for row in rows:
        per_bag.setdefault(row["bag"], []).append(row)
    lines = []
    for bag, items in list(per_bag.items())[:shown]:
        top = min(items, key=lambda x: int(x["rank"]))
        lines.append((bag, top["label"], top["instance"], f"{float(top['attention']):.2f}", str(len(items))))
    more = f" The first {shown} of {len(per_bag)} bags;" if len(per_bag) > shown else ""
    return (
        "<h2>Which slices mattered (attention)</h2><p class='note'>The attention of the head refit on every "
        f"development bag: each bag's most weighted slice (uniform attention would give each 1/slices).{more} "
        f"every slice's weight is in {e(path.name)}.</p>"
        + table(["bag", "label", "top slice", "attention", "slices"], lines)
    )


def _sequences_table(r: FitResult) -> str:
    on = r.protocol.scored_on
    keys = [k for k in ("accuracy", "sensitivity", "specificity", "f1") if r.cv.pooled.value(k) is not None]
    rows = [
        (
            q,
            v.n,
            fmt(v.cv.pooled, "auc"),
            *(fmt(v.cv.pooled, k) for k in keys),
            fmt(v.cv.subject, "auc"),
            fmt(v.test, "auc"),
        )
        for q, v in r.sequences.items()
    ]
    rows.append(
        (
            f"fused ({r.protocol.fuse})",
            "-",
            fmt(r.cv.pooled, "auc"),
            *(fmt(r.cv.pooled, k) for k in keys),
            "-",
            fmt(r.test, "auc"),
        )
    )
    return "<h2>Per-sequence models and the fused one</h2>" + table(
        ["model", "images", f"{on} AUC", *keys, f"{on} AUC (subject)", "test AUC"], rows
    )


def operating_section(proto, panels: list, thresholds=None) -> str:
    """How the classes were decided and how calibrated the probabilities are (binary), or the multi-class
    extras (weighted AUC, each class's AUC, quadratic-weighted kappa), for (title, metrics) panels."""
    panels = [(t, m) for t, m in panels if m is not None]
    binary = panels and panels[0][1].positive is not None
    note = f"Decision: {e(proto.decision)}. Calibration: {e(proto.calibrate)}."
    if thresholds:
        shown = [f"{v:.3f}" for v in thresholds if v is not None]
        note += f" Threshold chosen per fold: {e(', '.join(shown))}."
    if binary:
        rows = [
            (
                t,
                f"{m.threshold:.3f}" if m.threshold is not None else "most probable class",
                fmt(m, "brier"),
                f"{m.calibration_slope:.3f}" if m.calibration_slope is not None else "not computable",
                f"{m.calibration_intercept:.3f}" if m.calibration_intercept is not None else "not computable",
            )
            for t, m in panels
        ]
        head = ["predictions", "threshold", "Brier", "calibration slope (1 ideal)", "calibration intercept (0 ideal)"]
        return f"<h2>Operating point and calibration</h2><p class='note'>{note}</p>" + table(head, rows)
    classes = list(panels[0][1].classes) if panels else []
    rows = [
        (
            t,
            _with_ci(m, "weighted_auc"),
            *(f"{m.class_auc[c]:.3f}" if c in m.class_auc else "-" for c in classes),
            f"{m.qwk:.3f}" if m.qwk is not None else "-",
        )
        for t, m in panels
    ]
    head = ["predictions", "weighted AUC", *(f"AUC {c} vs rest" for c in classes), "quadratic-weighted kappa"]
    return (
        f"<h2>Multi-class</h2><p class='note'>{note} The AUC above is the macro one-vs-rest AUC; the weighted one "
        "weighs each class by its prevalence. The kappa is shown when every label is an integer (ordinal grades).</p>"
        + table(head, rows)
    )


def _with_ci(m, key: str) -> str:
    v, ci = getattr(m, key), m.ci.get(key)
    if v is None:
        return "-"
    return f"{v:.3f}" + (f" [{ci[0]:.3f}-{ci[1]:.3f}]" if ci else "")
