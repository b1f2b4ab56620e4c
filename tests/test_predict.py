"""featx predict on real EfficientNet-Lite0 features: reproduces the fit's test predictions; refuses other weights."""

import csv
import shutil

import pytest
from helpers import assert_one_line_error, featx

from featx.dataset.manifest import Manifest


@pytest.fixture(scope="module")
def saved(demo_subset, models_dir, lite0, tmp_path_factory):
    """(fit output folder, model path, test manifest CSV) of logreg on 80 images, 40 held out."""
    tmp = tmp_path_factory.mktemp("pred")
    store = tmp / "f.h5"
    proc = featx(
        "extract", "-m", demo_subset / "subset.csv", "-b", "efficientnet_lite0", "-s", store, "--models-dir", models_dir
    )
    assert proc.returncode == 0, proc.stderr
    proc = featx(
        "fit",
        "-s",
        store,
        "-f",
        "efficientnet_lite0",
        "--cv",
        "5",
        "--bootstrap",
        "0",
        "--out",
        tmp / "res",
        "--save",
        tmp / "model.skops",
        "--positive",
        "malignant",
    )
    assert proc.returncode == 0, proc.stderr
    assert f"model: {tmp / 'model.skops'}" in proc.stdout
    man = Manifest.from_csv(demo_subset / "subset.csv")
    test_csv = tmp / "test.csv"
    Manifest([s for s in man if s.split == "test"]).to_csv(test_csv)
    return tmp / "res", tmp / "model.skops", test_csv


def _rows(path, key="id"):
    with open(path) as fh:
        return {r[key]: r for r in csv.DictReader(fh)}


@pytest.mark.slow
def test_predict_reproduces_the_held_out_predictions(saved, models_dir, tmp_path):
    res, model, test_csv = saved
    proc = featx("predict", test_csv, "--model", model, "--out", tmp_path / "p.csv", "--models-dir", models_dir)
    assert proc.returncode == 0, proc.stderr
    assert "40 input(s), 40 predicted" in proc.stdout and "0 failed" in proc.stdout
    want, got = _rows(res / "test_predictions.csv"), _rows(tmp_path / "p.csv")
    assert set(want) == set(got)
    for k in want:
        assert abs(float(want[k]["p_malignant"]) - float(got[k]["p_malignant"])) < 2e-6
        assert want[k]["predicted"] == got[k]["predicted"] and got[k]["label"] == want[k]["label"]


@pytest.mark.slow
def test_predict_a_folder_with_a_broken_image_reports_it_and_goes_on(saved, models_dir, tmp_path):
    _, model, test_csv = saved
    folder = tmp_path / "new"
    folder.mkdir()
    for s in list(Manifest.from_csv(test_csv))[:3]:
        shutil.copy(s.path, folder / s.path.name)
    (folder / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    proc = featx("predict", folder, "--model", model, "--out", tmp_path / "p.csv", "--models-dir", models_dir)
    assert proc.returncode == 0, proc.stderr
    assert "4 input(s), 3 predicted" in proc.stdout and "1 failed" in proc.stdout and "zz_broken.png" in proc.stdout
    rows = _rows(tmp_path / "p.csv")
    assert rows["zz_broken.png"]["predicted"] == "" and rows["zz_broken.png"]["error"]
    assert all(rows[k]["predicted"] in ("malignant", "normal_benign") for k in rows if k != "zz_broken.png")


def _tampered(model, out, **changes):
    """A copy of the saved model whose provenance claims other weights / another export."""
    import json

    import skops.io as sio

    obj = sio.load(model, trusted=sio.get_untrusted_types(file=model))
    meta = json.loads(obj["meta_json"])
    for key, value in changes.items():
        if key == "weights_sha256":
            meta["provenance"]["spec"][key] = value
        elif value is None:
            meta["provenance"].pop(key)
        else:
            meta["provenance"][key] = value
    obj["meta_json"] = json.dumps(meta)
    sio.dump(obj, out)
    return out


@pytest.mark.slow
def test_predict_refuses_other_weights_and_another_export(saved, models_dir, tmp_path):
    _, model, test_csv = saved
    other = _tampered(model, tmp_path / "other.skops", weights_sha256="0" * 64)
    proc = featx("predict", test_csv, "--model", other, "--out", tmp_path / "p.csv", "--models-dir", models_dir)
    assert_one_line_error(proc, "The backbone weights differ from those", "Use the training weights")
    moved = _tampered(model, tmp_path / "moved.skops", onnx_sha256="f" * 64)
    proc = featx("predict", test_csv, "--model", moved, "--out", tmp_path / "p.csv", "--models-dir", models_dir)
    assert_one_line_error(proc, "ONNX export here", "differs from the one", "--allow-export-change")
    proc = featx(
        "predict",
        test_csv,
        "--model",
        moved,
        "--out",
        tmp_path / "p.csv",
        "--models-dir",
        models_dir,
        "--allow-export-change",
    )
    assert proc.returncode == 0 and "40 predicted" in proc.stdout and "accepted by --allow-export-change" in proc.stderr


@pytest.mark.slow
def test_predict_rebuilds_the_extraction_of_a_model_saved_before_configs_were_recorded(saved, models_dir, tmp_path):
    """A model saved by featx 0.1.0 recorded the extraction as 'args', not as a config: still predicted alike."""
    res, model, test_csv = saved
    import json

    import skops.io as sio

    meta = json.loads(sio.load(model, trusted=sio.get_untrusted_types(file=model))["meta_json"])
    recorded = meta["provenance"]["config"]["values"]
    assert (
        recorded["backbone"] == "efficientnet_lite0"
        and meta["provenance"]["config"]["sources"]["backbone"] == "command line"
    )
    args = {
        k: recorded[k] for k in ("backbone", "weights", "layer", "window", "tta", "interpolation", "resize_to_input")
    }
    old = _tampered(model, tmp_path / "old.skops", config=None, args=args)
    proc = featx("predict", test_csv, "--model", old, "--out", tmp_path / "p.csv", "--models-dir", models_dir)
    assert proc.returncode == 0, proc.stderr
    want, got = _rows(res / "test_predictions.csv"), _rows(tmp_path / "p.csv")
    assert max(abs(float(want[k]["p_malignant"]) - float(got[k]["p_malignant"])) for k in want) < 2e-6
    neither = _tampered(model, tmp_path / "neither.skops", config=None)
    assert_one_line_error(
        featx("predict", test_csv, "--model", neither, "--out", tmp_path / "q.csv"),
        "does not record how it was extracted",
        "re-extract and refit",
    )
