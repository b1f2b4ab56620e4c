"""The PNG plots of the reports: ROC curves with bands, confusion matrices, per-fold scores, fine-tuning curves.

matplotlib is imported inside each function (headless ``Agg``), so reading results stays fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from featx.report.html import fmt
from featx.results.metrics import Metrics, Roc
from featx.results.runs import FoldRun


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_png(curves: list[tuple[str, Metrics, Roc | None]], positive: str, path: Path) -> Path:
    """One ROC per (title, metrics with auc/auc_ci, curve with its bootstrap band when resampled)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.8), dpi=110)
    for title, m, roc in curves:
        if not roc:
            continue
        (line,) = ax.plot(roc.fpr, roc.tpr, lw=1.6, label=f"{title}: AUC {fmt(m, 'auc')}")
        if roc.has_band:
            ax.fill_between(roc.fpr, roc.lo, roc.hi, color=line.get_color(), alpha=0.15, lw=0)
    return _unit_square(
        plt, fig, ax, path, "1 - specificity", "sensitivity", f"ROC, positive = {positive} (band: 95% bootstrap)"
    )


def _unit_square(plt, fig, ax, path: Path, xlabel: str, ylabel: str, title: str, legend: str = "lower right") -> Path:
    """Finish a plot of rates on [0, 1] x [0, 1] with its diagonal, and save it to ``path``."""
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.title.set_fontsize(9)
    ax.legend(loc=legend, fontsize=6.5)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def reliability_png(curves: list[tuple[str, Metrics | None]], positive: str, path: Path) -> Path | None:
    """A reliability diagram: observed fraction positive against mean predicted probability per bin, one line per
    (title, metrics with ``reliability``); marker area follows the bin's count. None when no curve has one."""
    curves = [(t, m) for t, m in curves if m is not None and m.reliability is not None]
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.8), dpi=110)
    for title, m in curves:
        r = m.reliability
        n = np.asarray(r.n, float)
        label = f"{title}: Brier {fmt(m, 'brier', boot=False)}"
        if m.calibration_slope is not None:
            label += f", slope {m.calibration_slope:.2f}"
        (line,) = ax.plot(r.predicted, r.observed, lw=1.2, marker=None, label=label)
        ax.scatter(r.predicted, r.observed, s=8 + 120 * n / n.max(), color=line.get_color(), alpha=0.6)
    title = "reliability (10 bins; marker area: samples in the bin)"
    return _unit_square(
        plt, fig, ax, path, f"mean predicted probability of {positive}", "observed fraction", title, "upper left"
    )


def reliability_grid_png(cells: list[tuple[str, Metrics | None, Metrics | None]], positive: str, path: Path):
    """One small reliability diagram per (title, CV metrics, test metrics): every bench cell, its CV and its
    held-out test predictions. None when no cell has a reliability table."""
    cells = [c for c in cells if c[1] is not None and c[1].reliability is not None]
    if not cells:
        return None
    plt = _pyplot()
    cols = min(4, len(cells))
    rows = -(-len(cells) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.9 * rows), dpi=100, squeeze=False)
    for ax in axes.flat[len(cells) :]:
        ax.axis("off")
    for ax, (title, cv, test) in zip(axes.flat, cells):
        for what, m, colour in (("CV", cv, "tab:blue"), ("test", test, "tab:orange")):
            if m is None or m.reliability is None:
                continue
            r = m.reliability
            slope = f", slope {m.calibration_slope:.2f}" if m.calibration_slope is not None else ""
            ax.plot(
                r.predicted,
                r.observed,
                marker="o",
                ms=3,
                lw=1,
                color=colour,
                label=f"{what}: Brier {m.brier:.3f}{slope}",
            )
        ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
        ax.set(xlim=(0, 1), ylim=(0, 1.01))
        ax.set_title(title, fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5.5, loc="upper left")
    fig.suptitle(
        f"reliability of every cell (x: mean predicted probability of {positive}; y: observed fraction)", fontsize=8
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / (2.9 * rows)))
    fig.savefig(path)
    plt.close(fig)
    return path


def class_roc_png(panels: list[tuple[str, Metrics]], path: Path) -> Path | None:
    """Each class's one-vs-rest ROC, one panel per (title, multi-class metrics with ``class_roc``)."""
    panels = [(t, m) for t, m in panels if m is not None and m.class_roc]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.4), dpi=110, squeeze=False)
    for ax, (title, m) in zip(axes[0], panels):
        for c, roc in m.class_roc.items():
            auc = m.class_auc.get(c)
            ax.plot(roc.fpr, roc.tpr, lw=1.3, label=f"{c} vs rest" + (f": AUC {auc:.3f}" if auc is not None else ""))
        ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
        ax.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01))
        ax.set_title(f"{title}: one-vs-rest ROC", fontsize=8)
        ax.legend(loc="lower right", fontsize=6.5)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def confusion_png(panels: list[tuple[str, Metrics]], classes, path: Path) -> Path:
    """One confusion matrix (rows true, columns predicted) per (title, metrics)."""
    plt = _pyplot()
    classes = list(classes)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), dpi=110, squeeze=False)
    for ax, (title, m) in zip(axes[0], panels):
        cm = np.asarray(m.confusion_matrix)
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
        ax.set(
            xticks=range(len(classes)),
            yticks=range(len(classes)),
            xticklabels=classes,
            yticklabels=classes,
            xlabel="predicted",
            ylabel="true",
        )
        ax.set_title(title, fontsize=8)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def strip_png(series: dict, title: str, path: Path) -> Path:
    """One column of points (plus mean bar) per named list of per-fold scores."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(min(11.0, max(4.0, 0.65 * len(series) + 1.5)), 3.8), dpi=110)
    rng = np.random.default_rng(0)
    for i, vals in enumerate(series.values()):
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


def learning_png(learning: dict, path: Path) -> Path:
    """AUC (a regression: MAE; survival: Harrell's C; mean over draws, bars: the draws' range) against training subjects
    per class, a line per cell."""
    key = learning.get("metric", "auc")
    label = {"auc": "AUC", "mae": "MAE", "harrell_c": "Harrell's C"}.get(key, key)
    plt = _pyplot()
    sizes = learning["sizes"]
    x = {s: i for i, s in enumerate(sizes)}
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    cells: dict = {}
    for p in learning["points"]:
        cells.setdefault(f"{p['features']} + {p['head']}", []).append(p)
    for name, pts in cells.items():
        pts = sorted(pts, key=lambda p: x[p["size"]])
        xs = [x[p["size"]] for p in pts]
        ys = np.array([p[key] for p in pts])
        lo = ys - np.array([p[f"{key}_range"][0] for p in pts])
        hi = np.array([p[f"{key}_range"][1] for p in pts]) - ys
        style = "--" if pts[0]["kind"] == "radiomics" else "-"
        ax.errorbar(xs, ys, yerr=[lo, hi], ls=style, marker="o", ms=3, capsize=2, lw=1.2, label=name)
    labels = [
        f"{s}\n({np.mean([p['train_subjects'] for p in learning['points'] if p['size'] == s]):.0f})" for s in sizes
    ]
    ax.set_xticks(range(len(sizes)), labels, fontsize=7)
    ax.set(xlabel=f"training size ({learning['unit']}; mean training subjects)", ylabel=f"CV {label} (mean of draws)")
    ax.set_title("Label efficiency: the same outer folds at every size", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


_CURVE_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
_CURVE_LABELS = {
    "train": "training",
    "val": "inner validation (early stopping)",
    "test": "held-out fold (reported only)",
}


def curves_png(runs: tuple[FoldRun, ...], path: Path) -> Path:
    """Loss and accuracy per epoch: training, inner validation and held-out fold, one thin line per run."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, what in zip(axes, ("loss", "acc")):
        for part, colour in _CURVE_COLOURS.items():
            shown = False
            for run in runs:
                pts = [(h.epoch, h.curve(part, what)) for h in run.history if h.curve(part, what) is not None]
                if pts:
                    epochs, values = zip(*pts)
                    ax.plot(epochs, values, color=colour, lw=1, alpha=0.7, label=None if shown else _CURVE_LABELS[part])
                    shown = True
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if what == "loss" else "accuracy")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("fine-tuning curves (one line per fold)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def agreement_png(panels: list[tuple[str, np.ndarray, np.ndarray]], what: str, path: Path) -> Path:
    """A regression's predictions against the truth: predicted versus true (the identity line dashed) and the
    Bland-Altman plot (difference predicted - true against their mean, with the bias and its 95% limits of
    agreement), one colour per (title, true, predicted) panel."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    colours = ("C0", "C3", "C2")
    lo = min(min(t.min(), p.min()) for _, t, p in panels)
    hi = max(max(t.max(), p.max()) for _, t, p in panels)
    left.plot([lo, hi], [lo, hi], "k--", lw=1, label="identity")
    for (title, true, pred), colour in zip(panels, colours):
        left.scatter(true, pred, s=10, alpha=0.6, color=colour, label=f"{title} (n={len(true)})")
        mean, diff = (true + pred) / 2, pred - true
        bias, sd = diff.mean(), diff.std(ddof=1) if len(diff) > 1 else 0.0
        right.scatter(mean, diff, s=10, alpha=0.6, color=colour, label=title)
        for y, style in ((bias, "-"), (bias - 1.96 * sd, ":"), (bias + 1.96 * sd, ":")):
            right.axhline(y, color=colour, ls=style, lw=1)
    left.set(xlabel=f"true {what}", ylabel=f"predicted {what}", title="predicted versus true")
    right.axhline(0, color="k", lw=0.5)
    right.set(
        xlabel=f"mean of predicted and true {what}",
        ylabel="predicted - true",
        title="Bland-Altman: bias (solid), 95% limits of agreement (dotted)",
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def km_png(panels: list[tuple[str, dict]], path: Path) -> Path:
    """Kaplan-Meier curves of the low- and high-risk groups (with their 95% bands), one panel per (title,
    ``risk_groups`` record), the log-rank p in each title."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (title, groups) in zip(axes[0], panels):
        for name, colour in (("low", "C0"), ("high", "C3")):
            c = groups["curves"].get(name)
            if not c:
                continue
            t = [0.0, *c["time"]]
            label = f"{name} risk (n={groups['n'][name]}, {groups['events'][name]} events)"
            ax.step(t, [1.0, *c["survival"]], where="post", color=colour, label=label)
            ax.fill_between(t, [1.0, *c["lo"]], [1.0, *c["hi"]], step="post", color=colour, alpha=0.15)
        test = groups.get("logrank")
        p = f"log-rank p {test['p']:.2g}" if test else "log-rank: not computable"
        ax.set(title=f"{title}\n{p}", xlabel="time", ylabel="survival", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
