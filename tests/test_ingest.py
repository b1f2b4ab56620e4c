"""Volumes + masks -> slice manifests: policies on brain1, geometry and mask errors, CLI build -> extract."""

import csv
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SHARED
from helpers import assert_one_line_error, assert_usage_error, featx, stored

from featx.dataset.ingest import expand_volumes
from featx.dataset.manifest import Manifest
from featx.errors import ConfigError, ManifestError
from featx.images.slicing import parse_policy, select_slices

BRAIN = SHARED / "pyradiomics_brain"
MONAI = SHARED / "monai_testing"

# brain1_label.nrrd lesion pixels per axial slice, counted independently with SimpleITK below
BRAIN1_SELECTIONS = {
    "all": list(range(25)),
    "mask": [11, 12, 13, 14, 15, 16, 17],
    "top:3": [13, 15, 16],
    "min-area:600": [13, 15, 16],
    "min-area:50%": [12, 13, 15, 16, 17],
    "around-max:4": [14, 15, 16, 17],
    "around-max:20": list(range(5, 25)),  # centred on slice 16, shifted to stay inside 25 slices
}


def _volumes_csv(tmp_path, rows, name="volumes.csv"):
    path = tmp_path / name
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "mask", "label", "subject", "sequence"])
        w.writerows(rows)
    return path


def test_brain1_areas_are_what_the_policies_see():
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(BRAIN / "brain1_label.nrrd")))
    areas = (lab != 0).sum(axis=(1, 2))
    assert (
        int(np.argmax(areas)) == 16 and areas[16] == 984 and np.flatnonzero(areas).tolist() == BRAIN1_SELECTIONS["mask"]
    )
    for policy, expected in BRAIN1_SELECTIONS.items():
        assert select_slices(parse_policy(policy), 25, areas) == expected, policy


@pytest.mark.parametrize("policy", sorted(BRAIN1_SELECTIONS))
def test_expand_brain1_slice_indices(tmp_path, policy):
    vols = Manifest.from_csv(
        _volumes_csv(tmp_path, [[BRAIN / "brain1_image.nrrd", BRAIN / "brain1_label.nrrd", "hgg", "p1", "T1"]])
    )
    slices = expand_volumes(vols, policy, progress=False)
    assert [s.slice for s in slices] == BRAIN1_SELECTIONS[policy]
    assert slices[0].sample_id == f"p1/T1/brain1_image.nrrd#{BRAIN1_SELECTIONS[policy][0]}"
    assert all(s.mask == BRAIN / "brain1_label.nrrd" and s.axis == "axial" and s.label == "hgg" for s in slices)


def test_crop_to_lesion_with_margin(tmp_path):
    vols = Manifest.from_csv(
        _volumes_csv(tmp_path, [[BRAIN / "brain1_image.nrrd", BRAIN / "brain1_label.nrrd", "hgg", "p1", "T1"]])
    )
    s16 = [s for s in expand_volumes(vols, "mask", crop_margin=5, progress=False) if s.slice == 16][0]
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(BRAIN / "brain1_label.nrrd")))[16] != 0
    rows, cols = np.flatnonzero(lab.any(1)), np.flatnonzero(lab.any(0))
    assert s16.crop == (rows[0] - 5, rows[-1] + 6, cols[0] - 5, cols[-1] + 6)


def test_bad_policies():
    for bad in ("top", "top:0", "around-max:x", "min-area:150%", "mask:3", "largest"):
        with pytest.raises(ConfigError, match="slices: "):
            parse_policy(bad)


def test_every_volume_problem_in_one_error(tmp_path):
    empty = sitk.ReadImage(str(BRAIN / "breast1_label.nrrd")) * 0
    sitk.WriteImage(empty, str(tmp_path / "empty_label.nrrd"))
    for i in (2, 3):
        shutil.copy(BRAIN / "breast1_image.nrrd", tmp_path / f"breast{i}.nrrd")
    rows = [
        [BRAIN / "brain1_image.nrrd", MONAI / "anatomical_label.nii.gz", "a", "p1", "T1"],  # wrong grid
        [tmp_path / "breast2.nrrd", tmp_path / "empty_label.nrrd", "b", "p2", "T1"],  # empty
        [tmp_path / "breast3.nrrd", "", "b", "p3", "T1"],  # no mask
        [BRAIN / "breast1_image.nrrd", BRAIN / "breast1_label.nrrd", "b", "p4", "T1"],  # fine
    ]
    vols = Manifest.from_csv(_volumes_csv(tmp_path, rows))
    with pytest.raises(ManifestError) as err:
        expand_volumes(vols, "mask", progress=False)
    msg = str(err.value)
    assert msg.startswith("3 volume(s) cannot be sliced")
    assert "anatomical_label.nii.gz does not match image" in msg and "size (256, 256, 25) vs (33, 41, 25)" in msg
    assert "empty_label.nrrd: empty mask" in msg and "needs a mask, and this row has none" in msg
    assert len(expand_volumes(vols.subset([False, False, True, True]), "all", progress=False)) == 42


def test_cli_build_volumes_then_extract(tmp_path, models_dir, resnet18_random):
    d = tmp_path / "Daten ü"  # unicode and spaces all the way through
    d.mkdir()
    for f in ("brain1_image.nrrd", "brain1_label.nrrd", "breast1_image.nrrd", "breast1_label.nrrd"):
        shutil.copy(BRAIN / f, d / f.replace("_", " "))
    vols = _volumes_csv(
        d,
        [
            ["brain1 image.nrrd", "brain1 label.nrrd", "hgg", "p1", "T1"],
            ["breast1 image.nrrd", "breast1 label.nrrd", "lgg", "p2", "T1"],
        ],
    )
    proc = featx(
        "manifest", "build", "--volumes", vols, "--slices", "top:3", "--crop-margin", "4", "--out", d / "slices.csv"
    )
    assert proc.returncode == 0, proc.stderr
    assert "6 samples (hgg: 3, lgg: 3)" in proc.stdout
    slices = Manifest.from_csv(d / "slices.csv")
    assert [s.slice for s in slices][:3] == [13, 15, 16] and all(s.crop for s in slices)
    assert "brain1 image.nrrd,hgg" in (d / "slices.csv").read_text()  # relative to the CSV's folder
    store = tmp_path / "v.h5"
    proc = featx(
        "extract",
        "-m",
        d / "slices.csv",
        "-b",
        "resnet18",
        "--weights",
        "random",
        "-s",
        store,
        "--models-dir",
        models_dir,
    )
    assert proc.returncode == 0, proc.stderr
    got = stored(store, "resnet18.random")
    assert got.filled.all()
    assert got.ids[0] == "p1/T1/brain1 image.nrrd#13"
    assert got.slices.tolist() == [13, 15, 16, 8, 9, 10]
    assert "window 'auto'" in got.provenance["intensity"]


def test_cli_build_dicom_series(tmp_path):
    vols = tmp_path / "v.csv"
    vols.write_text(f"path,label,subject\n{MONAI / 'CT_DICOM'},ct,s1\n")
    proc = featx("manifest", "build", "--volumes", vols, "--slices", "all", "--out", tmp_path / "s.csv")
    assert proc.returncode == 0, proc.stderr
    assert "non-uniform slice spacing" in proc.stderr
    assert [s.sample_id for s in Manifest.from_csv(tmp_path / "s.csv")] == [f"s1/CT_DICOM#{i}" for i in range(4)]
    # the series folder itself, given directly
    proc = featx("manifest", "build", "--volumes", MONAI / "CT_DICOM", "--slices", "all", "--out", tmp_path / "d.csv")
    assert proc.returncode == 0, proc.stderr
    assert [s.sample_id for s in Manifest.from_csv(tmp_path / "d.csv")] == [f"CT_DICOM/CT_DICOM#{i}" for i in range(4)]


def test_cli_build_folder_and_errors(tmp_path, demo_subset):
    proc = featx("manifest", "build", "--folder", demo_subset / "images" / "val", "--out", tmp_path / "m.csv")
    assert proc.returncode == 0 and "78 samples (malignant: 21, normal_benign: 57)" in proc.stdout
    assert_usage_error(featx("manifest", "build", "--out", tmp_path / "x.csv"), "exactly one of --folder")
    vols = _volumes_csv(tmp_path, [[BRAIN / "brain1_image.nrrd", BRAIN / "brain1_label.nrrd", "a", "p", "T1"]])
    assert_usage_error(
        featx("manifest", "build", "--volumes", vols, "--slices", "biggest", "--out", tmp_path / "x.csv"),
        "--slices: unknown slice policy 'biggest'",
        "around-max:N",
    )


def test_folder_of_volumes_pairs_masks_by_name(tmp_path):
    from featx.dataset.ingest import volumes_from_folder

    (tmp_path / "hgg").mkdir()
    (tmp_path / "lgg").mkdir()
    for f in ("brain1_image.nrrd", "brain1_label.nrrd"):
        shutil.copy(BRAIN / f, tmp_path / "hgg" / f)
    shutil.copy(MONAI / "anatomical.nii", tmp_path / "lgg" / "anatomical.nii")
    shutil.copy(MONAI / "anatomical_label.nii.gz", tmp_path / "lgg" / "anatomical_label.nii.gz")
    shutil.copytree(MONAI / "CT_DICOM", tmp_path / "lgg" / "ct_series")
    rows = {s.sample_id: s for s in volumes_from_folder(tmp_path)}
    assert sorted(rows) == ["hgg/brain1_image.nrrd", "lgg/anatomical.nii", "lgg/ct_series"]
    assert (
        rows["hgg/brain1_image.nrrd"].mask.name == "brain1_label.nrrd" and rows["hgg/brain1_image.nrrd"].label == "hgg"
    )
    assert (
        rows["lgg/anatomical.nii"].mask.name == "anatomical_label.nii.gz"
        and rows["lgg/anatomical.nii"].subject == "anatomical"
    )
    assert rows["lgg/ct_series"].mask is None and rows["lgg/ct_series"].subject == "ct_series"
    # the series has no mask: refused as a whole, or skipped and recorded when asked
    proc = featx("manifest", "build", "--volumes", tmp_path, "--slices", "mask", "--out", tmp_path / "s.csv")
    assert_one_line_error(proc, "1 volume(s) cannot be sliced", "ct_series", "needs a mask")
    proc = featx(
        "manifest", "build", "--volumes", tmp_path, "--slices", "mask", "--out", tmp_path / "s.csv", "--skip-bad"
    )
    assert proc.returncode == 0, proc.stderr
    skipped = (tmp_path / "s.skipped.csv").read_text().splitlines()
    assert len(skipped) == 2 and "ct_series" in skipped[1] and "needs a mask" in skipped[1]
    ids = [s.sample_id for s in Manifest.from_csv(tmp_path / "s.csv")]
    assert ids[:7] == [f"brain1/brain1_image.nrrd#{i}" for i in BRAIN1_SELECTIONS["mask"]]
