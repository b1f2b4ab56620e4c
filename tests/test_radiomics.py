"""featx radiomics: values equal pyradiomics' own extractor bit for bit (3D volumes, 2D slices chosen by the
ingestion policies, 8-bit images), failures recorded per case, NaN named, resume, CLI, fit end to end."""

import csv
import hashlib
import json
import logging

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SHARED
from helpers import assert_one_line_error, assert_usage_error, featx
from helpers import stored as stored_set
from PIL import Image

from featx.api import radiomics as run_radiomics
from featx.dataset.ingest import expand_volumes
from featx.dataset.manifest import Manifest, Sample
from featx.errors import ExtractionAborted, FeatxError
from featx.evaluate.models.saved import load_model
from featx.radiomics.params import load_params, preset_path
from featx.store.open import open_store
from featx.store.store import ABSENT, FAILED, OK

BRAIN = SHARED / "pyradiomics_brain"
CASES = ("brain1", "breast1")


def pyradiomics_reference(params_file, image, mask) -> dict:
    """What pyradiomics' own extractor returns (features only), from files or SimpleITK images."""
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    radiomics.setVerbosity(logging.ERROR)
    out = RadiomicsFeatureExtractor(str(params_file)).execute(image, mask)
    return {k: float(v) for k, v in out.items() if not k.startswith("diagnostics_")}


def stored(store, name):
    got = stored_set(store, name)
    return list(got.ids), got.X, got.feature_names, got


def assert_bit_equal(ref: dict, names: list, row: np.ndarray):
    assert list(ref) == names  # same features, same order
    got = dict(zip(names, row.tolist()))
    differing = [n for n in names if not (got[n] == ref[n] or (np.isnan(got[n]) and np.isnan(ref[n])))]
    assert not differing, [(n, got[n], ref[n]) for n in differing[:5]]


def volumes_manifest(tmp_path, cases=CASES, labels=("a", "b")) -> Manifest:
    samples = [
        Sample(sample_id=c, path=BRAIN / f"{c}_image.nrrd", mask=BRAIN / f"{c}_label.nrrd", label=lab, subject=c)
        for c, lab in zip(cases, labels)
    ]
    return Manifest.from_csv(Manifest(samples).to_csv(tmp_path / "volumes.csv"))


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["default", "ct-3d"])
def test_3d_values_equal_pyradiomics_extractor_to_the_last_bit(tmp_path, preset):
    man = volumes_manifest(tmp_path)
    s = run_radiomics(man, tmp_path / "f.h5", params=preset, jobs=2)
    assert (s.mode, s.n_computed, s.failures, s.feature_set) == ("3d", 2, [], f"radiomics.{preset}")
    ids, X, names, _ = stored(tmp_path / "f.h5", s.feature_set)
    assert X.dtype == np.float64 and len(names) == s.n_features
    for case in CASES:
        ref = pyradiomics_reference(
            preset_path(preset), str(BRAIN / f"{case}_image.nrrd"), str(BRAIN / f"{case}_label.nrrd")
        )
        assert_bit_equal(ref, names, X[ids.index(case)])
    # provenance: pyradiomics version, the full settings, image and mask hashes
    import radiomics

    with open_store(tmp_path / "f.h5") as st:
        prov = st.provenance(s.feature_set)
        sha = dict(zip(st.sample_ids(), st.sources(s.feature_set)["sha256"]))
        mask_sha = dict(zip(st.sample_ids(), st.sources(s.feature_set)["mask_sha256"]))
    assert prov["versions"]["pyradiomics"] == radiomics.__version__ and prov["params"]["mode"] == "3d"
    assert prov["params"]["setting"]["binWidth"] == 25 and "Original" in prov["params"]["imageType"]
    for case in CASES:
        assert sha[case] == hashlib.sha256((BRAIN / f"{case}_image.nrrd").read_bytes()).hexdigest()
        assert mask_sha[case] == hashlib.sha256((BRAIN / f"{case}_label.nrrd").read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("policy,axis", [("top:3", "axial"), ("around-max:2", "coronal")])
def test_2d_slices_from_ingestion_policies_equal_pyradiomics_on_the_same_slices(tmp_path, policy, axis):
    slices = expand_volumes(volumes_manifest(tmp_path), policy, axis=axis)
    assert len(slices) >= 4
    s = run_radiomics(slices, tmp_path / "f.h5", params="mr-2d", jobs=2)
    assert (s.mode, s.n_computed, s.failures) == ("2d", len(slices), [])
    ids, X, names, _ = stored(tmp_path / "f.h5", s.feature_set)
    assert any(n.startswith("original_shape2D_") for n in names) and not any("_shape_" in n for n in names)
    for sample in slices:
        image, mask = sitk.ReadImage(str(sample.path)), sitk.ReadImage(str(sample.mask))
        cut = (slice(None), slice(None), sample.slice) if axis == "axial" else (slice(None), sample.slice, slice(None))
        ref = pyradiomics_reference(preset_path("mr-2d"), image[cut], mask[cut])  # SimpleITK's own 2D slice
        assert_bit_equal(ref, names, X[ids.index(sample.sample_id)])


def test_8bit_images_are_widened_so_binning_cannot_overflow(tmp_path):
    """pyradiomics on a uint8 image whose maximum nears 255 wraps its bin edges and gives wrong texture values."""
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "img.png")
    man = Manifest([Sample(sample_id="x", path=tmp_path / "img.png")])
    s = run_radiomics(man, tmp_path / "f.h5", auto_mask="whole", jobs=1)
    assert s.mode == "2d" and s.n_computed == 1
    _, X, names, _ = stored(tmp_path / "f.h5", s.feature_set)
    whole = sitk.GetImageFromArray(np.ones((32, 32), np.int32))
    widened = pyradiomics_reference(preset_path("default"), sitk.GetImageFromArray(arr.astype(np.int32)), whole)
    wrapped = pyradiomics_reference(preset_path("default"), sitk.GetImageFromArray(arr), whole)
    assert_bit_equal({k: v for k, v in widened.items() if "_shape_" not in k}, names, X[0])
    assert wrapped["original_firstorder_Entropy"] < widened["original_firstorder_Entropy"] / 2  # 256 levels, few bins


def _write_like(reference: sitk.Image, array: np.ndarray, path, spacing=None):
    img = sitk.GetImageFromArray(array)
    img.CopyInformation(reference)
    if spacing is not None:
        img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))
    return path


def broken_cohort(tmp_path) -> Manifest:
    """One good volume and four that fail for different reasons."""
    image = BRAIN / "breast1_image.nrrd"
    lab = sitk.ReadImage(str(BRAIN / "breast1_label.nrrd"))
    arr = sitk.GetArrayFromImage(lab)
    empty = _write_like(lab, arr * 0, tmp_path / "empty.nrrd")
    shifted = _write_like(lab, arr, tmp_path / "spacing.nrrd", spacing=(0.7, 0.7, 2.1))
    other = _write_like(lab, arr * 2, tmp_path / "label2.nrrd")
    rows = [
        ("good", image, BRAIN / "breast1_label.nrrd"),
        ("empty", image, empty),
        ("geometry", image, shifted),
        ("label2", image, other),
        ("missing", tmp_path / "nowhere.nrrd", BRAIN / "breast1_label.nrrd"),
    ]
    return Manifest([Sample(sample_id=i, path=p, mask=m, label="x") for i, p, m in rows])


def test_failing_cases_are_recorded_with_their_reason_and_the_run_goes_on(tmp_path):
    s = run_radiomics(broken_cohort(tmp_path), tmp_path / "f.h5", jobs=2, max_failures="100%")
    assert s.n_computed == 1
    why = dict(s.failures)
    assert sorted(why) == ["empty", "geometry", "label2", "missing"]
    assert "empty.nrrd has no voxel labelled 1" in why["empty"] and "it is empty" in why["empty"]
    assert "spacing.nrrd does not match image" in why["geometry"] and "spacing (0.6641" in why["geometry"]
    assert "label2.nrrd has no voxel labelled 1" in why["label2"] and "--label 2" in why["label2"]
    assert "nowhere.nrrd" in why["missing"] and "not found" in why["missing"]
    with open_store(tmp_path / "f.h5") as st:
        status = dict(zip(st.sample_ids(), st.status(s.feature_set)))
        errors = dict(zip(st.sample_ids(), st.errors(s.feature_set)))
    assert status["good"] == OK and all(status[k] == FAILED for k in why)
    assert errors["geometry"] == why["geometry"] and errors["good"] == ""


def test_max_failures_stops_the_run_keeps_computed_rows_and_a_rerun_resumes(tmp_path):
    man = broken_cohort(tmp_path)
    with pytest.raises(ExtractionAborted, match="more than --max-failures allows"):
        run_radiomics(man, tmp_path / "f.h5", jobs=1, max_failures=0)
    good_only = Manifest(
        [s for s in man if s.sample_id == "good"]
        + [Sample(sample_id="brain1", path=BRAIN / "brain1_image.nrrd", mask=BRAIN / "brain1_label.nrrd", label="y")]
    )
    s = run_radiomics(good_only, tmp_path / "f.h5", jobs=1)
    assert s.n_already + s.n_computed == 2 and s.failures == []
    again = run_radiomics(good_only, tmp_path / "f.h5", jobs=1)
    assert (again.n_already, again.n_computed) == (2, 0)  # nothing recomputed
    with open_store(tmp_path / "f.h5") as st:
        assert st.load("radiomics.default").X.shape == (2, s.n_features)


def test_nan_values_are_named_in_the_note_and_a_raising_feature_fails_the_case(monkeypatch):
    """pyradiomics turns a feature's exception into NaN and logs it: featx makes both visible."""
    from radiomics.glcm import RadiomicsGLCM

    from featx.radiomics.case import CaseComputer, CaseError, to_row
    from featx.radiomics.params import probe_names

    p = load_params("default", "3d")
    p.names = probe_names(p)
    sample = Sample(sample_id="breast1", path=BRAIN / "breast1_image.nrrd", mask=BRAIN / "breast1_label.nrrd")
    monkeypatch.setattr(RadiomicsGLCM, "getContrastFeatureValue", lambda self: np.float64("nan"), raising=True)
    result = to_row(CaseComputer(p)(sample), p.names)
    assert np.isnan(result.values[p.names.index("original_glcm_Contrast")])
    assert result.note == "pyradiomics returned NaN/inf for 1 feature(s): original_glcm_Contrast"

    def boom(self):
        raise ZeroDivisionError("division by zero in a test")

    monkeypatch.setattr(RadiomicsGLCM, "getContrastFeatureValue", boom, raising=True)
    with pytest.raises(
        CaseError,
        match=r"breast1 .* raised while computing original_glcm_Contrast: "
        r"ZeroDivisionError: division by zero in a test",
    ):
        to_row(CaseComputer(p)(sample), p.names)


def test_fit_leaves_out_columns_with_nan_and_says_which(tmp_path, caplog):
    from featx.api import fit as run_fit
    from featx.store.writer import store_writer

    rng = np.random.default_rng(0)
    man = Manifest([Sample(sample_id=f"s{i}", path=tmp_path / f"{i}.png", label="ab"[i % 2]) for i in range(40)])
    X = rng.normal(size=(40, 3)) + np.array([[0, 0, 1]]) * (np.arange(40) % 2)[:, None]
    X[3, 1] = np.nan
    with store_writer(tmp_path / "f.h5") as w, w.transaction() as st:
        rows = st.add_samples(man)
        st.create_feature_set(
            "r", 3, {"kind": "radiomics"}, "id", kind="radiomics", dtype="float64", feature_names=["a", "b", "c"]
        )
        st.write("r", rows, X)
    with caplog.at_level(logging.WARNING, logger="featx"):
        res = run_fit(tmp_path / "f.h5", "r", cv=4)
    assert res.dropped_features == ("b",) and res.n_features == 2
    assert "left out 1 feature(s) that are NaN/inf in some rows (b)" in caplog.text


def test_a_worker_that_dies_fails_only_its_case(tmp_path):
    from featx.radiomics.pool import run_cases

    got, failed = [], []
    todo = [(i, Sample(sample_id=f"s{i}", path=tmp_path / f"{i}")) for i in range(6)]
    run_cases(
        todo,
        _dies_on_s3,
        lambda r, s, res, why: (got if why is None else failed).append((s.sample_id, why)),
        jobs=2,
        limit=10,
        label="t",
    )
    assert sorted(g[0] for g in got) == ["s0", "s1", "s2", "s4", "s5"]
    assert len(failed) == 1 and failed[0][0] == "s3" and "the worker process died" in failed[0][1]


def _dies_on_s3(sample):
    import os

    if sample.sample_id == "s3":
        os._exit(9)  # as the OS's out-of-memory killer would
    return sample.sample_id


def _synthetic_cohort(tmp_path, n=12) -> Manifest:
    """Volumes with a spherical lesion; class 'rough' has a noisier lesion than 'smooth'."""
    rng = np.random.default_rng(1)
    z, y, x = np.indices((12, 32, 32))
    ball = ((z - 6) / 4) ** 2 + ((y - 16) / 8) ** 2 + ((x - 16) / 8) ** 2 < 1
    rows = []
    for i in range(n):
        label = "rough" if i % 2 else "smooth"
        arr = rng.normal(100, 10, ball.shape) + ball * rng.normal(80, 40 if label == "rough" else 5, ball.shape)
        img = sitk.GetImageFromArray(arr.astype(np.int16))
        img.SetSpacing((0.8, 0.8, 3.0))
        m = sitk.GetImageFromArray(ball.astype(np.uint8))
        m.CopyInformation(img)
        sitk.WriteImage(img, str(tmp_path / f"p{i}.nii.gz"))
        sitk.WriteImage(m, str(tmp_path / f"p{i}_mask.nii.gz"))
        rows.append([f"p{i}.nii.gz", f"p{i}_mask.nii.gz", label, f"p{i}"])
    with open(tmp_path / "volumes.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "mask", "label", "subject"], *rows])
    return tmp_path / "volumes.csv"


@pytest.mark.slow
def test_cli_radiomics_then_fit_end_to_end_on_volumes_with_masks(tmp_path):
    volumes = _synthetic_cohort(tmp_path)
    store = tmp_path / "features.h5"
    proc = featx("radiomics", "--manifest", volumes, "--store", store, "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    assert "radiomics.default (107 features, 3d, 2 job(s)): 12 samples, 12 computed" in proc.stdout
    model = tmp_path / "model.skops"
    proc = featx(
        "fit",
        "--store",
        store,
        "--features",
        "radiomics.default",
        "--head",
        "logreg",
        "--cv",
        "3",
        "--out",
        tmp_path / "res",
        "--save",
        model,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "res" / "results.json").read_text())
    assert res["protocol"]["grouped_by_subject"] and res["cv"]["pooled"]["auc"] > 0.9
    assert res["provenance"]["kind"] == "radiomics"
    page = (tmp_path / "res" / "report.html").read_text()
    assert "pyradiomics (" in page and "pyradiomics v3" in page and "binWidth" in page and "efficientnet" not in page
    info = featx("store", "info", store)
    assert "radiomics.default (radiomics, 107-d, pyradiomics" in info.stdout and "12 ok" in info.stdout
    # predict computes the features again from the images, with the training settings read from the model
    proc = featx("predict", volumes, "--model", model, "--out", tmp_path / "p.csv")
    assert proc.returncode == 0, proc.stderr
    assert "12 input(s), 12 predicted" in proc.stdout and "0 failed" in proc.stdout
    with open_store(store) as st:
        want = load_model(model).predict(st.load("radiomics.default"))
    with open(tmp_path / "p.csv", newline="") as fh:
        got = {r["id"]: r for r in csv.DictReader(fh)}
    for sid, p in zip(want.ids, want.proba):
        assert [float(got[str(sid)][f"p_{c}"]) for c in want.classes] == pytest.approx(p.tolist(), abs=1e-6)


def test_cli_errors_are_one_line(tmp_path):
    volumes = _synthetic_cohort(tmp_path, n=2)
    store = tmp_path / "f.h5"
    (tmp_path / "bad.yaml").write_text("setting:\n  binWidht: 25\n")
    assert_one_line_error(
        featx("radiomics", "-m", volumes, "-s", store, "--params", tmp_path / "bad.yaml"),
        "bad.yaml: not a valid pyradiomics parameter file",
        "Key 'binWidht' was not defined",
    )
    assert_one_line_error(
        featx("radiomics", "-m", volumes, "-s", store, "--params", "ct3d"), "neither a preset (default, mr-2d, ct-3d)"
    )
    no_masks = Manifest([Sample(sample_id="a", path=tmp_path / "p0.nii.gz")]).to_csv(tmp_path / "nomask.csv")
    assert_one_line_error(
        featx("radiomics", "-m", no_masks, "-s", store), "1 sample(s) have no mask (a)", "--auto-mask whole"
    )
    slices = Manifest(
        [Sample(sample_id="a", path=tmp_path / "p0.nii.gz", mask=tmp_path / "p0_mask.nii.gz", slice=3)]
    ).to_csv(tmp_path / "slices.csv")
    assert_usage_error(
        featx("radiomics", "-m", slices, "-s", store, "--mode", "3d"),
        "--mode: 3d computes one vector per volume",
        "use mode 2d",
    )
    assert_usage_error(
        featx("radiomics", "-m", volumes, "-s", store, "--auto-mask", "blob"),
        "'--auto-mask'",
        "unknown value 'blob'",
        "whole, otsu",
    )
    assert not store.exists()  # nothing started


def test_params_file_gets_a_hash_name_and_other_settings_under_one_name_are_refused(tmp_path):
    man = volumes_manifest(tmp_path, cases=("breast1",), labels=("a",))
    custom = tmp_path / "mine.yaml"
    custom.write_text(preset_path("default").read_text().replace("binWidth: 25", "binWidth: 10"))
    s = run_radiomics(man, tmp_path / "f.h5", params=str(custom), jobs=1)
    assert s.feature_set.startswith("radiomics.") and len(s.feature_set) == len("radiomics.") + 8
    with pytest.raises(FeatxError, match=r"made with different settings \(params.setting"):
        run_radiomics(man, tmp_path / "f.h5", params="default", name=s.feature_set, jobs=1)
    # a new set over a store that holds other samples: those rows are 'absent', not 'removed'
    other = volumes_manifest(tmp_path, cases=("brain1",), labels=("b",))
    s2 = run_radiomics(other, tmp_path / "f.h5", jobs=1)
    assert s2.n_removed == 0
    with open_store(tmp_path / "f.h5") as st:
        assert sorted(st.status("radiomics.default").tolist()) == [OK, ABSENT]
