"""``featx finetune`` end to end on real BreastMNIST images (random ResNet-18 at 64 px, 2 epochs: the
plumbing, not the accuracy): outputs, fit's folds, bench rows, the exported backbone, Grad-CAM."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
from helpers import assert_one_line_error, featx

from featx.store.open import open_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(demo_subset, tmp_path_factory):
    """A manifest with subjects (two images each), one fine-tuning run with --export, and a store of
    the exported backbone's features."""
    from featx.dataset.manifest import Manifest

    tmp = tmp_path_factory.mktemp("ft")
    rows = (
        list(Manifest.load(demo_subset / "subset.csv"))[:60] + list(Manifest.load(demo_subset / "subset.csv"))[80:100]
    )
    # pairs of same-label, same-split images share a subject
    rows = [replace(s, subject=f"{s.split}-{s.label}-{i // 2}") for i, s in enumerate(rows)]
    Manifest(rows).to_csv(tmp / "m.csv")
    models = tmp / "models"
    proc = featx(
        "finetune",
        "-m",
        tmp / "m.csv",
        "-b",
        "resnet18",
        "--weights",
        "random",
        "--input-size",
        "64",
        "--epochs",
        "2",
        "--cv",
        "3",
        "--freeze",
        "2",
        "--batch-size",
        "16",
        "--bootstrap",
        "50",
        "--out",
        tmp / "ft",
        "--export",
        "t1",
        "--models-dir",
        models,
        "--positive",
        "malignant",
    )
    assert proc.returncode == 0, proc.stderr
    import featx.api as fx  # in-process: each CLI start imports torch again (seconds)

    fx.extract(tmp / "m.csv", "resnet18.ft-t1", tmp / "f.h5", models_dir=models)
    return tmp, proc


def test_outputs_curves_and_summaries(run):
    tmp, proc = run
    out = tmp / "ft"
    res = json.loads((out / "results.json").read_text())
    assert res["type"] == "finetune" and res["n_dev"] == 60 and res["n_test"] == 20
    ft = res["finetune"]
    assert ft["frozen_blocks"] == ["stem", "layer1"] and ft["input_size"] == 64
    runs = ft["runs"]
    assert [r["fold"] for r in runs] == [0, 1, 2, "all development rows"]  # 3 folds, then the final model
    for r in runs:
        assert [h["epoch"] for h in r["history"]] == [1, 2]
        assert {"train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "seconds"} <= set(
            r["history"][0]
        )
        s = r["summary"]
        assert s["best_acc"] == max(h["test_acc"] for h in r["history"])
        assert 1 <= s["first_epoch_reaching_mean"] <= 2 and s["seconds_per_epoch"] > 0
    assert json.loads((out / "curves.json").read_text())[0]["history"] == runs[0]["history"]
    assert res["outputs"]["curves_json"] == str(out / "curves.json") and "report" in res["outputs"]
    with open(out / "oof_predictions.csv", newline="") as fh:
        oof = list(csv.DictReader(fh))
    assert len(oof) == 60 and {"p_malignant", "p_normal_benign", "fold"} <= set(oof[0])
    assert len(list((out / "gradcam").glob("*.png"))) >= 6
    assert res["test"]["n"] == 20 and 0 <= res["cv"]["pooled"]["auc"] <= 1
    html = (out / "report.html").read_text()
    assert "Fine-tuning" in html and "mean acc after convergence" in html and (out / "curves.png").stat().st_size > 0
    assert "mean after convergence" in proc.stdout and "resnet18.ft-t1" in proc.stdout
    from typer.testing import CliRunner

    from featx.cli.app import app

    assert "resnet18.ft-t1" in CliRunner().invoke(app, ["backbones", "--models-dir", str(tmp / "models")]).stdout


def test_folds_are_fits_folds(run):
    tmp, _ = run
    proc = featx(
        "fit", "-s", tmp / "f.h5", "-f", "resnet18.ft-t1", "--cv", "3", "--bootstrap", "0", "--out", tmp / "fit"
    )
    assert proc.returncode == 0, proc.stderr
    assert "fine-tuned on" in proc.stderr  # features of a backbone trained on these rows: the leak is named
    fit_folds = json.loads((tmp / "fit" / "folds.json").read_text())
    ft_folds = json.loads((tmp / "ft" / "folds.json").read_text())
    assert fit_folds == ft_folds and fit_folds["grouped"]
    from featx.dataset.manifest import Manifest

    fold_of_subject = {}
    for s in Manifest.load(tmp / "m.csv"):
        if s.split != "test":  # a subject's images share one fold
            assert fold_of_subject.setdefault(s.subject, str(ft_folds["fold_of"][s.sample_id])) == str(
                ft_folds["fold_of"][s.sample_id]
            )
    assert len(set(fold_of_subject.values())) == 3


def test_exported_backbone_matches_torch_through_onnx_runtime(run):
    import torch

    from featx.dataset.manifest import Manifest
    from featx.finetune.data import ImageBank
    from featx.finetune.model import load_net

    tmp, _ = run
    with open_store(tmp / "f.h5") as st:
        fs = st.load("resnet18.ft-t1")
        prov = st.provenance("resnet18.ft-t1")
    assert prov["onnx_sha256"] and prov["provider"] == "CPUExecutionProvider"
    assert prov["spec"]["crop_size"] == 64 and prov["spec"]["weights_id"] == "finetune:t1"
    ln = load_net(tmp / "ft" / "model.pt")
    man = {s.sample_id: s for s in Manifest.load(tmp / "m.csv")}
    ids = list(fs.ids[:12])
    bank = ImageBank([man[i] for i in ids], ln.spec, cache_gb=0)
    with torch.inference_mode():
        ref = ln.net.features(torch.from_numpy(bank.batch(np.arange(len(ids))))).numpy()
    got = fs.X[:12]
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    # and the fine-tuned weights are not the random initialisation they started from
    from featx.backbones.weights import load_backbone

    _, start = load_backbone("resnet18", "random")
    assert not torch.equal(start.layer4[0].conv1.weight, ln.net.features.layer4[0].conv1.weight)
    assert torch.equal(start.layer1[0].conv1.weight, ln.net.features.layer1[0].conv1.weight)  # frozen


def test_bench_puts_the_finetuned_row_beside_the_frozen_ones(run):
    tmp, _ = run
    proc = featx(
        "bench",
        "-s",
        tmp / "f.h5",
        "-f",
        "resnet18.ft-t1",
        "--heads",
        "logreg",
        "--cv",
        "3",
        "--bootstrap",
        "0",
        "--finetuned",
        tmp / "ft",
        "--out",
        tmp / "bench",
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp / "bench" / "results.json").read_text())
    kinds = {c["feature_set"]: c["kind"] for c in res["cells"]}
    assert kinds == {"resnet18.ft-t1": "cnn", "resnet18.ft-freeze2": "finetune"}
    tuned = next(c for c in res["cells"] if c["kind"] == "finetune")
    ft = json.loads((tmp / "ft" / "results.json").read_text())
    assert tuned["cv"]["pooled"]["auc"] == pytest.approx(ft["cv"]["pooled"]["auc"])
    pair = {"resnet18.ft-freeze2 + fine-tuned", "resnet18.ft-t1 + logreg"}
    assert any({c["a"], c["b"]} == pair for c in res["comparisons"])  # here also the runner-up pair
    with open(tmp / "bench" / "oof_predictions.csv", newline="") as fh:
        assert "resnet18.ft-freeze2+fine-tuned:p_normal_benign" in next(csv.reader(fh))
    from featx.api import bench as run_bench
    from featx.errors import FitError

    with pytest.raises(FitError, match="not a 'featx finetune' output folder"):  # before any head is fitted
        run_bench(tmp / "f.h5", ["resnet18.ft-t1"], ["logreg"], cv=3, finetuned=[tmp / "nowhere"])
    with pytest.raises(FitError, match="fine-tuned on other folds.*--folds"):
        run_bench(tmp / "f.h5", ["resnet18.ft-t1"], ["logreg"], cv=2, bootstrap=0, finetuned=[tmp / "ft"])


def test_gradcam_command_for_finetuned_and_fit_models(run, demo_subset):
    import featx.api as fx
    from featx.errors import FeatxError

    tmp, _ = run
    imgs = tmp / "new"
    imgs.mkdir()
    for p in sorted((demo_subset / "images" / "test").rglob("*.png"))[:3]:
        (imgs / p.name).write_bytes(p.read_bytes())
    proc = featx("gradcam", "--model", tmp / "ft" / "model.pt", imgs, "--out", tmp / "cams")
    assert proc.returncode == 0, proc.stderr
    with open(tmp / "cams" / "gradcam.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and all((tmp / "cams").joinpath(r["overlay"]).exists() for r in rows)
    # frozen backbone + linear head: CAM through the head's weights (in-process: the CLI path is the same)
    fx.fit(tmp / "f.h5", "resnet18.ft-t1", head="logreg", cv=3, bootstrap=0, save=tmp / "lr.skops")
    rows = fx.gradcam(tmp / "lr.skops", imgs, tmp / "cams2", target="malignant", models_dir=tmp / "models")
    assert [r[2] for r in rows] == ["malignant"] * 3 and len(list((tmp / "cams2").glob("*.png"))) == 3
    fx.fit(tmp / "f.h5", "resnet18.ft-t1", head="knn", cv=3, bootstrap=0, save=tmp / "knn.skops")
    with pytest.raises(FeatxError, match="needs a linear head"):
        fx.gradcam(tmp / "knn.skops", imgs, tmp / "cams3", models_dir=tmp / "models")


def test_finetune_errors_are_one_line(run, tmp_path):
    from featx.backbones.finetuned import load_finetuned
    from featx.errors import BackboneError

    tmp, _ = run
    assert_one_line_error(
        featx(
            "finetune", "-m", tmp / "m.csv", "-b", "resnet18", "--weights", "random", "--freeze", "9", "--out", tmp_path
        ),
        "--freeze",
        "layer4",
    )
    with pytest.raises(BackboneError, match="No fine-tuned backbone.*--export"):
        load_finetuned("resnet18.ft-nope", tmp / "models")
