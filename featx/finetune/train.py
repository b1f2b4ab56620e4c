"""The training loop of one fold: class-weighted loss, AdamW or SGD with a cosine schedule, separate
learning rates for the backbone and the head, early stopping on an inner validation split drawn
from the training fold only (grouped by subject), mixed precision on a GPU.

Each epoch records the training loss and accuracy, the inner validation's, and the
held-out fold's (reported only: no choice ever looks at it), the learning rate and the
wall time. The weights of the epoch with the lowest validation loss are the fold's model.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from featx.errors import FitError
from featx.evaluate.protocol.folds import make_holdout
from featx.finetune.blocks import apply_freeze, set_train_mode
from featx.finetune.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    """What training one model produced."""

    history: list  # one dict per epoch
    best_epoch: int  # 1-based; the epoch whose weights are kept
    proba: np.ndarray | None  # (len(test_idx), C) class probabilities of the held-out samples
    net: object
    seconds: float
    n_train: int
    n_val: int
    stopped_early: bool = False


def inner_split(labels, subjects, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) positions within a training fold; validation = ``frac`` of its subjects."""
    n = len(labels)
    if frac == 0:
        return np.arange(n), np.arange(0)
    try:
        f = make_holdout(labels, subjects, frac, seed).fold_of[0]
    except FitError as exc:
        raise FitError(
            f"Cannot draw the inner validation split for early stopping: {exc} Use a larger data set, "
            "or --val-fraction 0 (no early stopping: the last epoch is kept)."
        ) from None
    return np.flatnonzero(f != 0), np.flatnonzero(f == 0)


def train_fold(
    net,
    bmap,
    n_freeze: int,
    bank,
    y: np.ndarray,
    subjects,
    train_idx,
    test_idx,
    cfg: TrainConfig,
    seed: int,
    device: str = "cpu",
    on_epoch=None,
) -> TrainedModel:
    """Train ``net`` on ``train_idx`` (bank positions) and predict ``test_idx``.

    ``y`` holds the class index of every bank position; ``subjects`` their subject (or None).
    ``on_epoch(record)`` is called after each epoch.
    """
    import torch

    t_start = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    tr, va = inner_split(y[train_idx], None if subjects is None else subjects[train_idx], cfg.val_fraction, seed)
    tr, va = np.asarray(train_idx)[tr], np.asarray(train_idx)[va]
    weight = _class_weight(y[tr], net.head[-1].out_features, cfg.class_weight, device)
    apply_freeze(net.features, bmap, n_freeze)
    net.to(device)
    opt = _optimizer(net, cfg)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    step = _Step(net, opt, cfg, device, weight, gen)
    best, history, stopped = (math.inf, 0, None), [], False
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        set_train_mode(net.features, bmap, n_freeze)
        net.head.train()
        loss_sum, correct = step.epoch(bank, y, tr[torch.randperm(len(tr), generator=gen).numpy()])
        rec = {
            "epoch": epoch,
            "train_loss": loss_sum / len(tr),
            "train_acc": correct / len(tr),
            "lr_head": opt.param_groups[0]["lr"],
        }
        sched.step()
        train_s = time.perf_counter() - t0
        for part, index in (("val", va), ("test", test_idx)):
            if len(index):
                rec[f"{part}_loss"], rec[f"{part}_acc"], _ = evaluate(
                    net, bank, y, index, cfg.batch_size, device, step.amp, weight
                )
        rec["train_seconds"], rec["seconds"] = train_s, time.perf_counter() - t0
        history.append(rec)
        if on_epoch is not None:
            on_epoch(rec)
        monitored = rec.get("val_loss", -epoch)  # no validation: keep the last epoch
        if monitored < best[0]:
            best = (monitored, epoch, copy.deepcopy({k: v.detach().clone() for k, v in net.state_dict().items()}))
        elif cfg.stop_after is not None and len(va) and epoch - best[1] >= cfg.stop_after:
            stopped = True
            break
    net.load_state_dict(best[2])
    proba = evaluate(net, bank, y, test_idx, cfg.batch_size, device, step.amp, weight)[2] if len(test_idx) else None
    return TrainedModel(history, best[1], proba, net, time.perf_counter() - t_start, len(tr), len(va), stopped)


def _class_weight(y_train, n_classes: int, on: bool, device: str):
    """Inverse class frequencies as the loss weights (None when off); a class missing from training is an error."""
    import torch

    counts = np.bincount(y_train, minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        raise FitError(
            "A training fold lacks a class after the inner validation split; use fewer folds or --val-fraction 0."
        )
    return torch.tensor(len(y_train) / (n_classes * counts), dtype=torch.float32, device=device) if on else None


def _optimizer(net, cfg: TrainConfig):
    """AdamW or SGD over the head (``lr``) and the unfrozen backbone blocks (``lr_backbone``)."""
    import torch

    body = [p for p in net.features.parameters() if p.requires_grad]
    groups = [{"params": list(net.head.parameters()), "lr": cfg.lr}]
    groups += [{"params": body, "lr": cfg.lr_backbone}] if body else []
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class _Step:
    """One training epoch over shuffled batches: augmentation, (mixed-precision) forward, loss, update."""

    def __init__(self, net, opt, cfg: TrainConfig, device: str, weight, gen):
        import torch

        self.net, self.opt, self.cfg, self.device, self.weight, self.gen = net, opt, cfg, device, weight, gen
        self.amp = cfg.amp and device.startswith("cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.augment = cfg.augment

    def epoch(self, bank, y, order) -> tuple[float, int]:
        """(summed loss, correct predictions) over the batches of ``order``."""
        import torch
        import torch.nn.functional as F

        loss_sum, correct = 0.0, 0
        for i in range(0, len(order), self.cfg.batch_size):
            idx = order[i : i + self.cfg.batch_size]
            if len(idx) == 1 and len(order) > 1:
                continue  # batch norm cannot train on a batch of one
            x = self.augment(torch.from_numpy(bank.batch(idx)), self.gen).to(self.device, non_blocking=True)
            target = torch.from_numpy(y[idx]).to(self.device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                logits = self.net(x)
                loss = F.cross_entropy(logits.float(), target, weight=self.weight)
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == target).sum())
        return loss_sum, correct


def evaluate(net, bank, y, index, batch_size: int, device: str, amp: bool = False, weight=None):
    """(mean loss, accuracy, probabilities (n, C)) of ``net`` on bank positions ``index``, eval mode."""
    import torch
    import torch.nn.functional as F

    net.eval()
    probs, loss_sum = [], 0.0
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
        for i in range(0, len(index), batch_size):
            idx = index[i : i + batch_size]
            logits = net(torch.from_numpy(bank.batch(idx)).to(device)).float()
            target = torch.from_numpy(y[idx]).to(device)
            loss_sum += float(F.cross_entropy(logits, target, weight=weight, reduction="sum"))
            probs.append(torch.softmax(logits, 1).cpu().numpy())
    p = np.concatenate(probs).astype(np.float64)
    return loss_sum / len(index), float((p.argmax(1) == y[index]).mean()), p


def summarize(history: list, key: str, converged_from: float) -> dict:
    """The published studies' per-run summary of an accuracy curve: best accuracy (and its epoch), the mean
    and variance after convergence (from ``converged_from`` of the epochs run onwards), and the first epoch
    whose accuracy reaches that mean."""
    acc = np.array([h[key] for h in history if key in h], dtype=float)
    if not len(acc):
        return {}
    start = min(int(math.floor(converged_from * len(acc))), len(acc) - 1)
    tail = acc[start:]
    mean = float(tail.mean())
    reach = np.flatnonzero(acc >= mean - 1e-12)
    return {
        "curve": key,
        "best_acc": float(acc.max()),
        "best_epoch": int(acc.argmax()) + 1,
        "converged_from_epoch": start + 1,
        "mean_acc_after_convergence": mean,
        "var_acc_after_convergence": float(tail.var(ddof=1)) if len(tail) > 1 else 0.0,
        "first_epoch_reaching_mean": int(reach[0]) + 1,
        "epochs_run": int(len(acc)),
        "seconds_per_epoch": float(np.median([h["seconds"] for h in history])),
    }
