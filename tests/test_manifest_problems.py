"""Manifests a user really writes: ragged rows, other delimiters, duplicate ids, empty labels, paired subjects,
one image with several masks, float masks, DICOM series with a duplicated or missing slice."""

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SHARED
from helpers import featx
from PIL import Image

from featx.dataset.checks import check_manifest
from featx.dataset.ingest import build_from_volumes
from featx.dataset.manifest import Manifest, Sample
from featx.errors import ImageReadError, ManifestError
from featx.images.readers import read_volume
from featx.radiomics.case import CaseError, _check_label

MONAI = SHARED / "monai_testing"


def _images(folder, *names):
    for n in names:
        Image.fromarray(np.random.default_rng(len(n)).integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / n)


def test_a_ragged_row_names_its_line_and_the_cause(tmp_path):
    _images(tmp_path, "a.png", "b.png")
    (tmp_path / "m.csv").write_text('path,label,crop\na.png,x,10:50,20:60\nb.png,y,"1:5,2:6"\n')
    with pytest.raises(ManifestError, match=r"line 2: 4 cells for 3 columns \(an unquoted ',' inside a value"):
        Manifest.from_csv(tmp_path / "m.csv")
    proc = featx("manifest", "check", tmp_path / "m.csv")
    assert proc.returncode != 0 and "internal error" not in proc.stderr and "line 2" in proc.stdout + proc.stderr


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_separated_files_are_read(tmp_path, delimiter, caplog):
    _images(tmp_path, "a.png", "b.png")
    rows = [["path", "label", "subject"], ["a.png", "x", "p1"], ["b.png", "y", "p2"]]
    (tmp_path / "m.csv").write_text("".join(delimiter.join(r) + "\n" for r in rows))
    m = Manifest.from_csv(tmp_path / "m.csv")
    assert [(s.sample_id, s.label, s.subject) for s in m] == [("a.png", "x", "p1"), ("b.png", "y", "p2")]
    assert f"columns separated by {delimiter!r}" in caplog.text


def test_duplicate_ids_and_empty_labels_name_their_lines(tmp_path):
    _images(tmp_path, "a.png", "b.png", "c.png")
    (tmp_path / "m.csv").write_text("id,path,label\nk,a.png,x\nz,b.png,\nk,c.png,y\n")
    with pytest.raises(ManifestError, match=r"duplicate sample id\(s\): 'k' on lines 2, 4"):
        Manifest.from_csv(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("id,path,label\nk,a.png,x\nz,b.png,\nq,c.png,y\n")
    rep = check_manifest(tmp_path / "m.csv", cv=1, progress=False)
    assert any("1 row(s) without a label (line(s) 3)" in p for p in rep.problems)


def test_a_subject_with_two_labels_is_named_as_a_possible_paired_design(tmp_path):
    _images(tmp_path, "l.png", "r.png", "o.png", "p.png")
    (tmp_path / "m.csv").write_text("path,label,subject\nl.png,a,p1\nr.png,b,p1\no.png,a,p2\np.png,b,p3\n")
    rep = check_manifest(tmp_path / "m.csv", cv=1, progress=False)
    (w,) = [w for w in rep.warnings if "more than one label" in w]
    assert "p1: a, b" in w and "paired design" in w and "p2" not in w


def test_one_image_with_several_masks_gets_distinct_default_ids(tmp_path):
    """The same CT listed once per organ mask (one ROI each), as pyradiomics' batch CSV takes it."""
    ct = np.random.default_rng(0).normal(0, 50, (6, 20, 20)).astype(np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(ct), str(tmp_path / "ct.nii.gz"))
    rows = ["path,mask,label,subject"]
    for k, organ in enumerate(("liver", "spleen", "kidney")):
        m = np.zeros(ct.shape, np.uint8)
        m[1 + k : 4 + k, 5:10, 5:10] = 1
        (tmp_path / organ).mkdir()
        sitk.WriteImage(sitk.GetImageFromArray(m), str(tmp_path / organ / "mask.nii.gz"))  # same file names
        rows.append(f"ct.nii.gz,{organ}/mask.nii.gz,{organ},p1")
    (tmp_path / "v.csv").write_text("\n".join(rows) + "\n")
    vols = Manifest.from_csv(tmp_path / "v.csv")
    assert [s.sample_id for s in vols] == [f"ct.nii.gz@{o}/mask.nii.gz" for o in ("liver", "spleen", "kidney")]
    slices = build_from_volumes(tmp_path / "v.csv", "mask", tmp_path / "s.csv", progress=False)
    ids = [s.sample_id for s in slices]
    assert len(ids) == len(set(ids)) == 9 and "p1/ct.nii.gz@spleen/mask.nii.gz#2" in ids
    assert [s.sample_id for s in Manifest.from_csv(tmp_path / "s.csv")] == ids  # the written CSV reads back
    # an image listed once keeps its plain id
    (tmp_path / "one.csv").write_text("path,mask\nct.nii.gz,liver/mask.nii.gz\n")
    assert [s.sample_id for s in Manifest.from_csv(tmp_path / "one.csv")] == ["ct.nii.gz"]


def test_a_float_mask_is_said_not_to_be_a_label_map():
    soft = sitk.GetImageFromArray(np.array([[[0.0, 0.5], [0.5, 0.0]]], dtype=np.float32))
    with pytest.raises(CaseError, match=r"mask m.nii.gz is not a label map: it holds non-integer values \(0, 0.5\)"):
        _check_label(soft, 1, "m.nii.gz")
    whole = sitk.GetImageFromArray(np.array([[[0.0, 1.0]]], dtype=np.float32))  # 0/1 stored as float is fine
    _check_label(whole, 1, "m.nii.gz")


def test_dicom_series_with_a_duplicated_slice_is_refused_and_a_gap_named(tmp_path):
    series = tmp_path / "series"
    shutil.copytree(MONAI / "CT_DICOM", series)
    gap = read_volume(series).notes[0]
    assert "non-uniform slice spacing" in gap and "202.5 mm between 7106 and 7136" in gap and "missing slice?" in gap
    first = sorted(series.iterdir())[0]
    shutil.copyfile(first, series / "copy_of_first")
    with pytest.raises(ImageReadError, match="are the same slice .*a duplicated slice") as e:
        read_volume(series)
    assert first.name in str(e.value) and "copy_of_first" in str(e.value)


def test_3d_radiomics_refuses_an_irregular_series(tmp_path):
    from featx.radiomics.case import load_case

    vol = Sample(sample_id="ct", path=MONAI / "CT_DICOM", label="a")
    with pytest.raises(CaseError, match="3D radiomics needs a regular grid, and non-uniform slice spacing"):
        load_case(vol, "3d", "whole", 1)
