"""One fine-tuned model per MRI sequence on shared folds, and their per-subject fusion (``--sequence each``,
``--fuse vote|mean``).

The folds are planned once on every sequence's rows (grouped by subject), then each
sequence model trains and tests on its own rows of those folds: the T1 and the T2 model
of a fold see the same patients, exactly as ``featx fit --fuse`` does with frozen features.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import time
from pathlib import Path


from featx.evaluate.cv import Folds
from featx.errors import FitError
from featx.store.feature_set import FeatureSet
from featx.evaluate.fusion import sequences_of

log = logging.getLogger(__name__)


def pick_sequences(fs: FeatureSet, sequence: str | None, fuse: str | None) -> list[str] | None:
    """The sequences to train one model each on (None: one model on every row)."""
    present = sorted(set(fs.sequences.tolist()) - {""})
    if fuse is not None:
        if fuse not in ("vote", "mean"):
            raise FitError(f"Unknown --fuse {fuse!r} for fine-tuning; choose vote or mean (one model per sequence).")
        if sequence not in (None, "each"):
            raise FitError(f"--fuse combines every sequence's model; drop --sequence {sequence} (or use --sequence each).")
        return sequences_of(fs)
    if sequence is None:
        if len(present) > 1:
            log.warning("the manifest has %d sequences (%s): one model is trained on all their rows together; "
                        "--sequence each trains one model per sequence, --fuse vote also fuses them per subject",
                        len(present), ", ".join(present))
        return None
    if sequence == "each":
        if not present or (fs.sequences == "").any():
            raise FitError("--sequence each needs a 'sequence' column (T1, T2, FLAIR ...) on every manifest row.")
        return present
    if sequence not in present:
        raise FitError(f"--sequence {sequence!r} is not in the manifest's 'sequence' column (it has: "
                       f"{', '.join(present) or 'no sequences'}).")
    return [sequence]


def restrict(dev: FeatureSet, test: FeatureSet, folds: Folds, sequence: str) -> tuple[FeatureSet, FeatureSet, Folds]:
    """One sequence's development rows, test rows and their part of the shared folds."""
    sel = dev.sequences == sequence
    if not sel.any():
        raise FitError(f"Sequence {sequence!r} has no development rows (all its rows are in the test split).")
    sub = Folds(folds.fold_of[:, sel], folds.k, folds.seed, folds.splitter, folds.grouped, folds.kind, folds.test_size)
    return dev.subset(sel), test.subset(test.sequences == sequence), sub


def folder_name(sequence: str) -> str:
    """A sequence's sub-folder name (its name, with anything but letters, digits, '.', '-' and '_' as '_')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", sequence) or "_"


def run_per_sequence(seqs: list[str], dev: FeatureSet, test: FeatureSet, folds: Folds, out: Path, fuse: str | None,
                     t_start: float, settings: dict) -> dict:
    """Train one model per sequence into ``out/<sequence>/``; with ``fuse``, score their per-subject fusion in
    ``out`` (the same files as a fit). Returns the fused results, or an index of the sequence runs."""
    from featx.finetune.run import train_unit

    names = [folder_name(q) for q in seqs]
    if len(set(names)) < len(names):
        raise FitError(f"Sequences {seqs} share a folder name; rename them in the manifest's 'sequence' column.")
    per = {}
    for q, name in zip(seqs, names):
        per[q] = train_unit(*restrict(dev, test, folds, q), out / name, q, time.perf_counter(), **settings,
                            keep_journal=True)
    for name in names:  # every sequence finished: their fold journals are no longer needed
        shutil.rmtree(out / name / ".partial", ignore_errors=True)
    index = {"type": "finetune-sequences", "sequences": {q: str(out / n) for q, n in zip(seqs, names)},
             "seconds": time.perf_counter() - t_start}
    if fuse is None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sequences.json").write_text(json.dumps(index, indent=2))
        return index
    return _fused(per, seqs, dev, test, folds, out, fuse, index, settings)


def _fused(per: dict, seqs: list, dev, test, folds: Folds, out: Path, fuse: str, index: dict, settings: dict) -> dict:
    from featx.evaluate.outputs import write_outputs
    from featx.evaluate.scoring import score_fused

    first = per[seqs[0]][0]
    units = {q: dev.sequences == q for q in seqs}
    test_units = {q: test.sequences == q for q in seqs}
    test_proba = {q: per[q][2][next(iter(per[q][2]))] for q in seqs if per[q][2]}
    results = {k: first[k] for k in ("featx_version", "store", "provenance", "versions", "classes", "n_features")}
    results.update({
        "type": "finetune", "created": first["created"], "feature_set": first["feature_set"] + f"[{fuse}]",
        "sequence": None, "head": {**first["head"], "description": first["head"]["description"]
                                   + f"; one model per sequence ({', '.join(seqs)}), {fuse} per subject"},
        "protocol": {**first["protocol"], "fuse": fuse, "folds": folds.describe()},
        "dropped_features": [], "n_dev": len(dev), "n_test": len(test), "test": None,
        "folds": folds.to_dict(dev.ids),
        "finetune": {**{k: v for k, v in first["finetune"].items() if k not in ("model", "exported", "gradcam")},
                     "runs": [{**r, "sequence": q} for q in seqs for r in per[q][0]["finetune"]["runs"]],
                     "seconds": index["seconds"], "sequence_runs": index["sequences"], "gradcam": []},
    })
    evals = {q: per[q][0]["cv"] for q in seqs}
    score_fused(results, dev, test, {q: per[q][1].proba for q in seqs}, evals, units, test_units, test_proba, folds,
                fuse, settings["positive"], settings["n_boot"], settings["seed"])
    for q in seqs:
        results["sequences"][q]["run"] = index["sequences"][q]
    cvres = {q: per[q][1] for q in seqs}
    write_outputs(results, dev, cvres, units, test, test_proba, test_units, out)
    return results
