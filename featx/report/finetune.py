"""The fine-tuning part of a report: what was trained how, and each run's per-epoch summary (formatting only)."""

from __future__ import annotations

from featx.report.html import e, table
from featx.results.runs import FinetuneInfo, FoldRun

SUMMARY_COLUMNS = (
    "run",
    "epochs run",
    "kept epoch",
    "best acc (epoch)",
    "mean acc after convergence",
    "variance",
    "first epoch reaching the mean",
    "s / epoch",
)


def summary_rows(runs: tuple[FoldRun, ...]) -> list[tuple]:
    """One row per trained model: its accuracy curve's summary."""
    rows = []
    for run in runs:
        s = run.summary
        if s is None:
            continue
        name = "final model" if run.is_final else f"repeat {run.repeat} fold {run.fold}"
        if run.sequence:
            name = f"{run.sequence}: {name}"
        rows.append(
            (
                name,
                s.epochs_run,
                run.best_epoch,
                f"{s.best_acc:.3f} ({s.best_epoch})",
                f"{s.mean_acc_after_convergence:.3f}",
                f"{s.var_acc_after_convergence:.2e}",
                s.first_epoch_reaching_mean,
                f"{s.seconds_per_epoch:.1f}",
            )
        )
    return rows


def finetune_section(ft: FinetuneInfo) -> str:
    curve = next((r.summary.curve for r in ft.runs if r.summary), "test_acc")
    frozen = ", ".join(ft.frozen_blocks) or "none"
    t = ft.train
    note = (
        f"{e(ft.backbone)}: blocks {e(', '.join(ft.blocks))}; frozen: {e(frozen)} "
        f"({ft.trainable_parameters:,} trainable parameters). Augmentation: {e(ft.augment)}. "
        f"Optimizer {e(t.optimizer)}, lr head {t.lr:g}, backbone {t.lr_backbone:g}, cosine schedule, {t.epochs} "
        f"epochs, early-stopping patience {t.patience}, input {ft.input_size} px, on {e(ft.device)}; "
        f"{ft.seconds:.0f} s in all."
    )
    return (
        f"<h2>Fine-tuning</h2><p class='note'>{note}</p><p class='note'>Per run, from the {e(curve)} curve: "
        f"'after convergence' = from {t.converged_from:.0%} of the epochs run onwards. The kept epoch is the one "
        "with the lowest inner-validation loss; the held-out fold's accuracy is never used to choose.</p>"
        + table(list(SUMMARY_COLUMNS), summary_rows(ft.runs))
    )
