"""The fine-tuning part of a report: training curves and the per-run summaries (formatting only)."""
from __future__ import annotations

from pathlib import Path

SUMMARY_COLUMNS = ("run", "epochs run", "kept epoch", "best acc (epoch)", "mean acc after convergence", "variance",
                   "first epoch reaching the mean", "s / epoch")


def curves_png(runs: list, path: Path) -> Path:
    """Loss and accuracy per epoch: training, inner validation and held-out fold, one thin line per run."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
    labels = {"train": "training", "val": "inner validation (early stopping)", "test": "held-out fold (reported only)"}
    for ax, what in zip(axes, ("loss", "acc")):
        for part, colour in colours.items():
            shown = False
            for run in runs:
                pts = [(h["epoch"], h[f"{part}_{what}"]) for h in run["history"] if f"{part}_{what}" in h]
                if pts:
                    e, v = zip(*pts)
                    ax.plot(e, v, color=colour, lw=1, alpha=0.7, label=None if shown else labels[part])
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


def summary_rows(runs: list) -> list[tuple]:
    rows = []
    for run in runs:
        s = run["summary"]
        name = f"repeat {run['repeat']} fold {run['fold']}" if run["repeat"] != "final" else "final model"
        if run.get("sequence"):
            name = f"{run['sequence']}: {name}"
        rows.append((name, s["epochs_run"], run["best_epoch"], f"{s['best_acc']:.3f} ({s['best_epoch']})",
                     f"{s['mean_acc_after_convergence']:.3f}", f"{s['var_acc_after_convergence']:.2e}",
                     s["first_epoch_reaching_mean"], f"{s['seconds_per_epoch']:.1f}"))
    return rows


def finetune_section(results: dict) -> str:
    from featx.report.html import e, table

    ft = results["finetune"]
    curve = ft["runs"][0]["summary"].get("curve", "test_acc") if ft["runs"] else "test_acc"
    frozen = ", ".join(ft["frozen_blocks"]) or "none"
    note = (f"{e(ft['backbone'])}: blocks {e(', '.join(ft['blocks']))}; frozen: {e(frozen)} "
            f"({ft['trainable_parameters']:,} trainable parameters). Augmentation: {e(ft['augment'])}. "
            f"Optimizer {e(ft['train']['optimizer'])}, lr head {ft['train']['lr']:g}, backbone {ft['train']['lr_backbone']:g}, "
            f"cosine schedule, {ft['train']['epochs']} epochs, early-stopping patience {ft['train']['patience']}, "
            f"input {ft['input_size']} px, on {e(ft['device'])}; {ft['seconds']:.0f} s in all.")
    return (f"<h2>Fine-tuning</h2><p class='note'>{note}</p><p class='note'>Per run, from the {e(curve)} curve: "
            f"'after convergence' = from {ft['train']['converged_from']:.0%} of the epochs run onwards. The kept "
            "epoch is the one with the lowest inner-validation loss; the held-out fold's accuracy is never used to "
            "choose.</p>" + table(list(SUMMARY_COLUMNS), summary_rows(ft["runs"])))
