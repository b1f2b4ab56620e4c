"""The five study recipes (docs/recipes/*.sh) run end to end, as scripts, on stand-in data of the same structure.

Each recipe runs with small settings from the environment (random weights, a few
epochs, small inputs); the stand-ins carry a planted class signal (featx.demo.standins), so a
correct pipeline scores clearly above chance, and the checks below would catch a label
shuffle, a leak across folds or runs scored on different folds.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from featx.demo import standins

pytestmark = pytest.mark.slow


def run(name: str, tmp_path: Path, models_dir: Path, **overrides) -> tuple[Path, subprocess.CompletedProcess]:
    """Run a recipe on its stand-in with the small settings of featx.demo.standins.RECIPES; its study folder."""
    proc = standins.run_recipe(name, tmp_path, models_dir, **overrides)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr
    return tmp_path / "study", proc


def table(out: Path) -> list[dict]:
    with open(out / "summary" / "compare.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def num(row: dict, key: str) -> float:
    return float(row[key])


def subjects_on_test_side(run: Path) -> set:
    """Subjects on the tested side of a fixed split, from the run's out-of-fold predictions."""
    with open(run / "oof_predictions.csv", newline="") as fh:
        return {r["subject"] for r in csv.DictReader(fh)}


def test_liver_fibrosis_recipe(tmp_path, models_dir):
    out, _ = run("liver_fibrosis", tmp_path, models_dir)
    rows = table(out)
    seqs = sorted(standins.LIVER_SEQUENCES)
    frozen = {r["sequence"]: r for r in rows if r["run"] == "frozen-resnet18-logreg"}
    assert sorted(frozen) == sorted(seqs + ["fused (vote)"])
    # planted stage signal: five classes (chance 0.2), the strongest-contrast sequence must be clearly above it
    assert num(frozen["T2"], "accuracy") >= 0.5, frozen["T2"]
    for arch in ("resnet18",):  # VGG-11-BN fine-tunes in the fine-tuning vs features recipe (its fc layers are slow)
        for lock in (0, 5):
            mine = {r["sequence"]: r for r in rows if r["run"] == f"finetune-{arch}-lock{lock}/" + r["sequence"]}
            assert sorted(mine) == seqs, (arch, lock, sorted(mine))
            for r in mine.values():  # the study's per-run summaries, from the test-split accuracy curve
                assert 0 <= num(r, "best_acc") <= 1 and 1 <= num(r, "best_epoch") <= 4
                assert num(r, "mean_acc_after_convergence") <= num(r, "best_acc") + 1e-9
                assert 1 <= num(r, "first_epoch_reaching_mean") <= 4 and num(r, "var_acc_after_convergence") >= 0
    # 7:3 by animal, the same animals tested by every model of every sequence, lock level and backbone
    runs = [out / "frozen-resnet18-logreg"] + [
        out / f"finetune-{a}-lock{k}" / q for a in ("resnet18",) for k in (0, 5) for q in seqs
    ]
    tested = {frozenset(subjects_on_test_side(r)) for r in runs}
    assert len(tested) == 1
    test_side = next(iter(tested))  # 30% of 15 animals (3 per stage), stratified: one animal of each stage
    assert len(test_side) == 5 and {s[3] for s in test_side} == {"0", "1", "2", "3", "4"}
    res = json.loads((out / "finetune-resnet18-lock5" / "T2" / "results.json").read_text())
    assert res["finetune"]["frozen_blocks"] == res["finetune"]["blocks"][:5] and res["sequence"] == "T2"
    assert len(res["finetune"]["runs"][0]["history"]) == 4  # every epoch run: no early stopping, as in the study
    md = (out / "summary" / "compare.md").read_text()
    assert "mean acc conv." in md and "1st epoch" in md


def test_glioma_sequences_recipe(tmp_path, models_dir):
    out, _ = run("glioma_sequences", tmp_path, models_dir)
    slices = list(csv.DictReader(open(out / "slices.csv")))
    assert len(slices) == 12 * 3 * 3 and {r["sequence"] for r in slices} == set(standins.GLIOMA_SEQUENCES)
    rows = table(out)
    grouped = {r["sequence"]: r for r in rows if r["run"] == "frozen-logreg"}
    leaky = {r["sequence"]: r for r in rows if r["run"] == "leaky-slice-split-logreg"}
    assert sorted(grouped) == sorted(leaky) == sorted(list(standins.GLIOMA_SEQUENCES) + ["fused (vote)"])
    assert "[image-level: leaky]" in leaky["T2"]["split"] and "leaky" not in grouped["T2"]["split"]
    assert num(grouped["fused (vote)"], "auc") >= 0.7  # planted grade signal, scored honestly by patient
    # the leak made visible: a slice-level split lets the model recognise patients and scores higher
    assert sum(num(leaky[q], "auc") for q in standins.GLIOMA_SEQUENCES) > sum(
        num(grouped[q], "auc") for q in standins.GLIOMA_SEQUENCES
    )
    for r in grouped.values():
        assert all(r[k] != "" for k in ("accuracy", "sensitivity", "specificity", "f1", "auc"))
    ft = json.loads((out / "finetuned" / "results.json").read_text())
    assert ft["protocol"]["fuse"] == "vote" and sorted(ft["sequences"]) == sorted(standins.GLIOMA_SEQUENCES)
    assert ft["finetune"]["head"] == {"kind": "mlp", "hidden": 128, "dropout": 0.5}
    fit = json.loads((out / "frozen-logreg" / "results.json").read_text())
    assert fit["cv"]["pooled"]["positive"] == ft["cv"]["pooled"]["positive"] == "HGG"
    assert ft["folds"] == fit["folds"]  # fine-tuned and frozen sequence models on the same patient folds
    assert (out / "frozen-logreg" / "roc.png").is_file() and (out / "finetuned" / "roc.png").is_file()


def test_pleural_effusion_recipe(tmp_path, models_dir):
    out, proc = run("pleural_effusion", tmp_path, models_dir)
    rows = {r["run"]: r for r in table(out)}
    assert set(rows) == {"frozen-resnet50-logreg", "finetuned-resnet50"}
    for r in rows.values():
        assert all(r[k] != "" for k in ("accuracy", "sensitivity", "specificity", "auc", "seconds"))
    res = json.loads((out / "frozen-resnet50-logreg" / "results.json").read_text())
    assert res["protocol"]["cv"] == 10 and res["cv"]["pooled"]["positive"] == "effusion"
    assert res["cv"]["pooled"]["confusion_matrix"] and (out / "frozen-resnet50-logreg" / "confusion.png").is_file()
    assert num(rows["frozen-resnet50-logreg"], "auc") >= 0.6  # real images: features carry the class signal
    cams = sorted(p.name.split("_")[0] for p in (out / "finetuned-resnet50" / "gradcam").glob("*.png"))
    assert cams and set(cams) <= {"right", "wrong"}
    assert "wall time of the whole run" in proc.stdout and (out / "summary" / "wall_time.txt").is_file()


def test_finetune_vs_features_recipe(tmp_path, models_dir):
    out, _ = run("finetune_vs_features", tmp_path, models_dir)
    bench = json.loads((out / "bench" / "results.json").read_text())
    cells = {(c["feature_set"], c["head"]) for c in bench["cells"]}
    for b in ("vgg11_bn", "resnet18", "densenet121", "inception_v3"):
        assert {(b, "logreg"), (f"{b}.ft-freeze0", "fine-tuned")} <= cells
    assert len(cells) == 8
    assert any("fine-tuned" in c["why"] for c in bench["comparisons"])
    folds = json.loads((out / "folds" / "folds.json").read_text())
    for b in ("vgg11_bn", "densenet121"):
        assert json.loads((out / f"finetuned-{b}" / "folds.json").read_text()) == folds


def test_glioma_grade_recipe(tmp_path, models_dir):
    out, _ = run("glioma_grade", tmp_path, models_dir)
    lesions = list(csv.DictReader(open(out / "lesions.csv")))
    assert {r["label"] for r in lesions} == {"II", "III", "IV"} and len({r["subject"] for r in lesions}) == 12
    assert len(lesions) == 12 and all(r["mask"] and r["id"].endswith("@label1") for r in lesions)  # one per patient
    rows = {r["model"]: r for r in table(out)}
    sets = ("encoder3d", "pooled2d", "planes2.5d", "radiomics", "encoder3d+radiomics")
    assert set(rows) == {f"{f} + {h}" for f in sets for h in ("logreg", "svm-rbf")}
    for r in rows.values():  # every set on the same lesion rows; mean and variance over the 10 random splits
        assert r["n"] == "12" and r["auc_fold_mean"] != "" and float(r["auc_fold_var"]) >= 0 and "10 x" in r["split"]
    # planted grade signal (size, heterogeneity, necrosis): radiomics sees it clearly; three classes
    assert max(num(rows[f"radiomics + {h}"], "auc") for h in ("logreg", "svm-rbf")) >= 0.75
    bench = json.loads((out / "bench" / "results.json").read_text())
    assert bench["protocol"]["repeats"] == 10 and bench["protocol"]["grouped_by_subject"]
    prov = bench["provenance"]
    assert prov["encoder3d"]["spec"]["volume"]["spacing"] == [1.0, 1.0, 1.0]  # the encoder's recipe, recorded
    assert prov["planes2.5d"]["planes"].startswith("2.5D: axial, coronal and sagittal")
    assert prov["pooled2d"]["pooled"]["by"] == "lesion"
