"""``featx compare``: the results of several runs (fit, bench, finetune, per sequence and fused) side by side.

A study is usually a folder of runs; this reads every ``results.json`` under the paths it
is given and writes one row per model: per sequence and fused for ``--fuse`` runs, one per
cell for a bench, with the fine-tuning runs' per-epoch summaries (best accuracy and its
epoch, mean and variance after convergence, first epoch reaching that mean), the spread
over folds/repeats and the wall time. It never refits anything: it only reads.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from featx.errors import FeatxError, FitError
from featx.results.bench import BenchResult
from featx.results.io import NotAResult, load_results
from featx.results.metrics import CVScores, Metrics
from featx.results.runs import FitResult, FoldRun, Protocol

COLUMNS = (
    "run",
    "model",
    "sequence",
    "split",
    "level",
    "n",
    "accuracy",
    "sensitivity",
    "specificity",
    "f1",
    "auc",
    "auc_ci",
    "brier",
    "mae",
    "r2",
    "harrell_c",
    "uno_c",
    "auc_fold_mean",
    "auc_fold_var",
    "acc_fold_mean",
    "acc_fold_var",
    "test_auc",
    "test_accuracy",
    "best_acc",
    "best_epoch",
    "mean_acc_after_convergence",
    "var_acc_after_convergence",
    "first_epoch_reaching_mean",
    "seconds",
)
SHOWN = {
    "run": "run",
    "model": "model",
    "sequence": "sequence",
    "split": "split",
    "n": "n",
    "accuracy": "acc",
    "sensitivity": "sens",
    "specificity": "spec",
    "f1": "F1",
    "auc": "AUC",
    "auc_ci": "AUC 95% CI",
    "brier": "Brier",
    "mae": "MAE",
    "r2": "R²",
    "harrell_c": "Harrell's C",
    "uno_c": "Uno's C",
    "auc_fold_mean": "AUC mean (folds)",
    "auc_fold_var": "AUC var",
    "best_acc": "best acc",
    "best_epoch": "epoch",
    "mean_acc_after_convergence": "mean acc conv.",
    "var_acc_after_convergence": "var conv.",
    "first_epoch_reaching_mean": "1st epoch",
    "seconds": "s",
}

#: the columns printed to the terminal (the .md and .csv have all of them)
TERMINAL = (
    "run",
    "model",
    "sequence",
    "split",
    "n",
    "accuracy",
    "f1",
    "auc",
    "auc_fold_var",
    "mae",
    "r2",
    "harrell_c",
    "best_acc",
    "mean_acc_after_convergence",
    "seconds",
)


def find_results(paths: list) -> list[Path]:
    """Every ``results.json`` under ``paths`` (each a results.json or a folder), in path order, no duplicates."""
    found = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(q for q in p.rglob("results.json") if ".partial" not in q.parts)
        else:
            raise FitError(f"{p}: no such file or folder (give run folders or their results.json).")
    seen, unique = set(), []
    for f in found:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    if not unique:
        raise FitError(
            f"No results.json under {', '.join(map(str, paths))}: give the --out folders of fit, bench or "
            "finetune runs."
        )
    return unique


def compare_rows(paths: list) -> list[dict]:
    """One dict per model of every run under ``paths`` (keys: :data:`COLUMNS`)."""
    files = find_results(paths)
    root = _common_root([f.parent for f in files])
    rows = []
    for f in files:
        try:
            res = load_results(f)
        except NotAResult:
            continue  # e.g. a predict or gradcam index: nothing to compare
        except FeatxError as exc:
            raise FitError(f"{exc} Rerun that step or leave the file out.") from None
        run = str(f.parent.resolve().relative_to(root)) if root else str(f.parent)
        rows += _rows_of(res, run or ".")
    if not rows:
        raise FitError(f"No fit, bench or finetune results under {', '.join(map(str, paths))}.")
    return rows


def _rows_of(res: FitResult | BenchResult, run: str) -> list[dict]:
    split = _split(res.protocol)
    if isinstance(res, BenchResult):
        return [_row(run, c.title, "", split, c.cv, c.test, c.seconds) for c in sorted(res.cells, key=lambda c: c.rank)]
    ft = res.finetune
    model = f"{res.feature_set} (fine-tuned, {ft.head.kind} head)" if ft else res.title
    seconds = ft.seconds if ft else (res.seconds if res.seconds is not None else sum(res.cv.fold_seconds))
    fuse = res.protocol.fuse
    rows = []
    if res.sequences and not (ft and ft.sequence_runs):
        for q, v in res.sequences.items():  # fit --fuse: each sequence model's own scores
            rows.append(_row(run, model, q, split, v.cv, v.test, None))
    seq = ("concat" if fuse == "concat" else f"fused ({fuse})") if fuse else res.sequence or ""
    row = _row(run, model, seq, split, res.cv, res.test, seconds)
    if ft:
        row.update(_summaries([r for r in ft.runs if not r.is_final]))
    return rows + [row]


def _split(protocol: Protocol) -> str:
    """A short name of the protocol: '5-fold CV by subject', '10 x 70/30 splits by subject', ... ('[leaky]'
    for a slice-level split)."""
    repeats = protocol.repeats or 1
    if protocol.split == "fixed":
        ts = protocol.test_size
        what = f"{100 - round(100 * ts)}/{round(100 * ts)} split" if ts else "manifest train/test split"
        text = f"{repeats} x {what}s" if repeats > 1 else what
    else:
        text = f"{protocol.cv}-fold CV" + (f" x {repeats}" if repeats > 1 else "")
    if protocol.leaky:
        return text + " by image [image-level: leaky]"
    return text + (" by subject" if protocol.grouped_by_subject else " (no subject ids)")


def _row(run: str, model: str, sequence: str, split: str, cv: CVScores, test: Metrics | None, seconds) -> dict:
    pooled = cv.pooled
    row = {"run": run, "model": model, "sequence": sequence, "split": split, "level": cv.level, "n": cv.n_tested}
    for k in ("accuracy", "sensitivity", "specificity", "f1", "auc", "brier", "mae", "r2", "harrell_c", "uno_c"):
        row[k] = pooled.value(k)
    ci = pooled.auc_ci
    row["auc_ci"] = f"{ci[0]:.3f}-{ci[1]:.3f}" if ci and all(_finite(v) for v in ci) else ""
    for key, name in (("auc", "auc"), ("accuracy", "acc")):
        stat = cv.per_fold.get(key)
        if stat and len([v for v in stat.values if _finite(v)]) > 1:
            row[f"{name}_fold_mean"], row[f"{name}_fold_var"] = stat.mean, stat.sd**2
    if test is not None:
        row["test_auc"], row["test_accuracy"] = test.auc, test.accuracy
    row["seconds"] = seconds
    return row


def _summaries(runs: list[FoldRun]) -> dict:
    """Mean over the folds of each fine-tuning run's per-epoch summary."""
    s = [r.summary for r in runs if r.summary]
    if not s:
        return {}
    mean = lambda k: float(np.mean([getattr(x, k) for x in s]))  # noqa: E731
    return {
        k: mean(k)
        for k in (
            "best_acc",
            "best_epoch",
            "mean_acc_after_convergence",
            "var_acc_after_convergence",
            "first_epoch_reaching_mean",
        )
    }


def write_compare(rows: list[dict], out: Path) -> dict:
    """``out/compare.csv`` (every column) and ``out/compare.md`` (the columns any row fills)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "compare.csv", "md": out / "compare.md"}
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([cell_text(r.get(c), c, 6) for c in COLUMNS])
    paths["md"].write_text(markdown(rows) + "\n", encoding="utf-8")
    return paths


def shown_columns(rows: list[dict]) -> list[str]:
    return [c for c in SHOWN if any(r.get(c) not in (None, "") for r in rows)]


def markdown(rows: list[dict]) -> str:
    cols = shown_columns(rows)
    lines = ["| " + " | ".join(SHOWN[c] for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell_text(r.get(c), c) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def cell_text(v, col: str, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        if col == "seconds":
            return f"{v:.1f}"
        if col in ("best_epoch", "first_epoch_reaching_mean"):
            return f"{v:.1f}" if v != int(v) else str(int(v))
        if "var" in col:
            return f"{v:.2e}" if digits == 3 else repr(v)
        return f"{v:.{digits}f}"
    return str(v)


def _finite(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _common_root(folders: list[Path]) -> Path | None:
    """The folder the run names are relative to: the runs' common parent (a single run: its parent)."""
    try:
        common = Path(os.path.commonpath([str(f.resolve()) for f in folders]))
    except ValueError:  # different drives
        return None
    return common.parent if len(folders) == 1 else common
