"""The `featx` command line end to end on BreastMNIST images, and its error messages.

Most calls run the app in-process (``helpers.featx``); the real console script runs where the
interpreter's own start is part of what is tested (the first extraction, the help of every command).
"""

import json

import h5py
import numpy as np
import pytest
from helpers import assert_one_line_error, assert_usage_error, featx, featx_process, stored


@pytest.fixture(scope="module")
def extracted(demo_subset, models_dir, lite0, tmp_path_factory):
    """`featx extract` with real EfficientNet-Lite0 weights on 120 BreastMNIST images."""
    store = tmp_path_factory.mktemp("cli") / "features.h5"
    proc = featx_process(
        "extract",
        "--manifest",
        demo_subset / "subset.csv",
        "--backbone",
        "efficientnet_lite0",
        "--store",
        store,
        "--models-dir",
        models_dir,
    )
    assert proc.returncode == 0, proc.stderr
    return store, proc


def test_extract_fills_store_with_provenance(extracted, lite0):
    store, proc = extracted
    assert "120 samples, 120 extracted, 0 already in the store, 0 failed" in proc.stdout
    got = stored(store, "efficientnet_lite0")
    assert got.X.shape == (120, 1280) and got.filled.all()
    prov = got.provenance
    assert prov["spec"]["weights_sha256"] == lite0[0].weights_sha256
    assert prov["onnx_sha256"] == lite0[2].onnx_sha256 and prov["provider"] == "CPUExecutionProvider"
    with h5py.File(store) as h5:  # the index is plain HDF5: the samples table
        ids = h5["samples/id"].asstr()[:]
        assert sorted(set(h5["samples/split"].asstr()[:])) == ["test", "train", "val"] and len(set(ids)) == 120


def test_extract_rerun_resumes_and_matches(extracted, demo_subset, models_dir):
    store, _ = extracted
    before = stored(store, "efficientnet_lite0").X
    proc = featx(
        "extract", "-m", demo_subset / "subset.csv", "-b", "efficientnet_lite0", "-s", store, "--models-dir", models_dir
    )
    assert proc.returncode == 0 and "0 extracted, 120 already in the store" in proc.stdout
    np.testing.assert_array_equal(stored(store, "efficientnet_lite0").X, before)


def test_fit_writes_results_and_report(extracted, tmp_path):
    store, _ = extracted
    proc = featx(
        "fit",
        "--store",
        store,
        "--features",
        "efficientnet_lite0",
        "--head",
        "logreg",
        "--cv",
        "5",
        "--out",
        tmp_path / "res",
        "--positive",
        "malignant",
    )
    assert proc.returncode == 0, proc.stderr
    assert "AUC" in proc.stdout and "report:" in proc.stdout
    res = json.loads((tmp_path / "res" / "results.json").read_text())
    assert res["n_dev"] == 80 and res["n_test"] == 40 and res["protocol"]["splitter"] == "StratifiedKFold"
    assert res["cv"]["pooled"]["positive"] == "malignant"
    # real ImageNet features separate malignant from benign well above chance even on 80 images
    assert res["cv"]["pooled"]["auc"] > 0.7 and res["test"]["auc"] > 0.7
    assert len(res["folds"]["fold_of"]) == 80
    for f in ("report.html", "roc.png", "confusion.png", "oof_predictions.csv", "test_predictions.csv"):
        assert (tmp_path / "res" / f).stat().st_size > 0
    page = (tmp_path / "res" / "report.html").read_text()
    assert "efficientnet_lite0.tf_in1k" in page and res["provenance"]["spec"]["weights_sha256"] in page
    assert "data:image/png;base64," in page and "seed 0" in page
    oof = (tmp_path / "res" / "oof_predictions.csv").read_text().splitlines()
    assert oof[0] == "id,label,subject,sequence,repeat,fold,predicted,p_malignant,p_normal_benign" and len(oof) == 81
    assert {r.split(",")[0] for r in oof[1:]} == set(res["folds"]["fold_of"])  # folds keyed by sample id


def test_grouped_cv_with_subjects_and_corrupt_image(demo_subset, models_dir, resnet18_random, tmp_path):
    """Subject-grouped folds end to end; an undecodable image is recorded and the run goes on."""
    lines = (demo_subset / "subset.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:81]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = [header + ",subject"] + [f"{r},pat{i // 3}" for i, r in enumerate(rows)]
    out.append(f"broken,{bad},malignant,train,pat99")
    csv = demo_subset / "grouped.csv"
    csv.write_text("\n".join(out) + "\n")
    store = tmp_path / "g.h5"
    proc = featx("extract", "-m", csv, "-b", "resnet18", "--weights", "random", "-s", store, "--models-dir", models_dir)
    assert proc.returncode == 0, proc.stderr
    assert "81 samples, 80 extracted" in proc.stdout and "1 failed" in proc.stdout and "broken.png" in proc.stdout
    got = stored(store, "resnet18.random")
    assert got.error[-1].startswith(str(bad)) and not got.filled[-1]
    proc = featx("fit", "-s", store, "-f", "resnet18.random", "--cv", "4", "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["protocol"]["grouped_by_subject"] and res["protocol"]["splitter"] == "StratifiedGroupKFold"
    fold_of = res["folds"]["fold_of"]
    subject_of = {r.split(",")[0]: f"pat{i // 3}" for i, r in enumerate(rows)}
    by_subject = {}
    for sid, (fold,) in fold_of.items():  # one repeat: one fold per sample
        by_subject.setdefault(subject_of[sid], set()).add(fold)
    assert all(len(f) == 1 for f in by_subject.values())


def test_max_failures_aborts_but_keeps_rows(demo_subset, models_dir, resnet18_random, tmp_path):
    rows = (demo_subset / "subset.csv").read_text().splitlines()
    csv = demo_subset / "maxfail.csv"  # relative image paths resolve against the CSV's folder
    (tmp_path / "bad.png").write_bytes(b"")
    csv.write_text("\n".join(rows[:41]) + f"\nzz_bad,{tmp_path / 'bad.png'},malignant,train\n")
    store = tmp_path / "s.h5"
    proc = featx(
        "extract",
        "-m",
        csv,
        "-b",
        "resnet18",
        "--weights",
        "random",
        "-s",
        store,
        "--models-dir",
        models_dir,
        "--max-failures",
        "0",
        "--batch-size",
        "8",
    )
    assert_one_line_error(proc, "1 sample(s) failed, more than --max-failures allows (0)", "bad.png", "rerun to resume")
    assert stored(store, "resnet18.random").filled.sum() == 40


def test_bad_inputs_give_one_line_errors(demo_subset, extracted, tmp_path):
    store, _ = extracted
    assert_one_line_error(
        featx("extract", "-m", tmp_path / "nope.csv", "-b", "resnet18", "-s", tmp_path / "s.h5"),
        "Manifest not found",
        "nope.csv",
    )
    (tmp_path / "m.csv").write_text("path,label\nmissing.png,a\n")
    assert_one_line_error(
        featx("extract", "-m", tmp_path / "m.csv", "-b", "resnet18", "-s", tmp_path / "s.h5"),
        "1 file(s) not found",
        "missing.png",
    )
    assert_usage_error(  # a usage error, found before the manifest (which does not exist) is read
        featx("extract", "-m", tmp_path / "nope.csv", "-b", "resnet181", "-s", tmp_path / "s.h5"),
        "--backbone",
        "Unknown backbone 'resnet181'",
        "Did you mean 'resnet18'",
        "featx backbones",
    )
    assert_one_line_error(featx("fit", "-s", store, "-f", "vgg16"), "no feature set 'vgg16'", "efficientnet_lite0")
    assert_one_line_error(featx("fit", "-s", tmp_path / "none.h5", "-f", "x"), "Store not found")
    assert_usage_error(
        featx("fit", "-s", store, "-f", "efficientnet_lite0", "--head", "svm"),
        "'--head'",
        "unknown value 'svm'",
        "Did you mean 'svr' or 'svm-rbf'?",
        "svm-linear",
    )
    # one-class labels: a copy of the store (one file, to share) whose malignant samples are relabelled
    s2 = tmp_path / "one.h5"
    assert featx("store", "compact", store, "--out", s2).returncode == 0
    with h5py.File(s2, "a") as h5:
        labels = h5["samples/label"].asstr()[:]
        h5["samples/label"][:] = np.where(labels == "malignant", "normal_benign", labels).astype(object)
    assert_one_line_error(featx("fit", "-s", s2, "-f", "efficientnet_lite0"), "Only one class ('normal_benign')")


def test_backbones_lists_and_help():
    proc = featx("backbones")
    assert proc.returncode == 0 and "efficientnet_lite0" in proc.stdout and "resnet18" in proc.stdout
    for cmd in (
        "extract",
        "radiomics",
        "fit",
        "bench",
        "finetune",
        "predict",
        "gradcam",
        "compare",
        "report",
        "demo",
        "export",
        "backbones",
    ):
        h = featx(cmd, "--help")
        assert h.returncode == 0 and "Example" in h.stdout, cmd
    h = featx_process(
        "fit", "--help", env={"COLUMNS": "250"}
    )  # the console script; the choices of a setting are listed
    assert (
        h.returncode == 0
        and "[abmil|coxnet|coxph|gbs|knn|lda|logreg|mlp|rf|ridge|rsf|simpleshot|svm-linear|svm-rbf|svr|xgb]" in h.stdout
    )
    assert "[cv|fixed]" in h.stdout and "--config" in h.stdout
