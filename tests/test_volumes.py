"""Volume and DICOM readers on real files, windowing, axis choice and geometry checks."""

import shutil
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import SHARED
from pydicom.data import get_testdata_file

from featx.dataset.manifest import Sample
from featx.errors import ConfigError, ImageReadError, ManifestError
from featx.images.intensity import PRESETS, check_policy, choose_window
from featx.images.loader import SampleReader
from featx.images.readers import read_volume
from featx.images.volume import check_geometry, geometry_mismatch

BRAIN = SHARED / "pyradiomics_brain"
MONAI = SHARED / "monai_testing"
NIBABEL_DATA = Path(nibabel.__file__).parent / "tests" / "data"


def test_nrrd_volume_and_geometry():
    v = read_volume(BRAIN / "brain1_image.nrrd")
    ref = sitk.ReadImage(str(BRAIN / "brain1_image.nrrd"))
    assert v.size == (256, 256, 25) and v.array.shape == (25, 256, 256)
    np.testing.assert_array_equal(v.array, sitk.GetArrayFromImage(ref))
    assert v.spacing == ref.GetSpacing() and v.slice_axis("axial") == 0 and v.n_slices("axial") == 25
    assert v.slice_axis("sagittal") == 2 and v.slice_axis("coronal") == 1


def test_nifti_from_nibabel_wheel_matches_nibabel():
    v = read_volume(NIBABEL_DATA / "anatomical.nii")
    ref = np.asanyarray(nibabel.load(NIBABEL_DATA / "anatomical.nii").dataobj)  # (x, y, z)
    np.testing.assert_array_equal(v.array, np.transpose(ref, (2, 1, 0)))


def test_4d_nifti_refused_clearly():
    with pytest.raises(ImageReadError, match="example4d.nii.gz: 4D image; featx reads 2D and 3D volumes"):
        read_volume(NIBABEL_DATA / "example4d.nii.gz")


def test_axial_axis_follows_the_image_orientation(tmp_path):
    """A volume stored sagittally (index z along patient x): axial slices run along another array axis."""
    a = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    img = sitk.GetImageFromArray(a)
    img.SetDirection((0, 0, 1, 0, 1, 0, 1, 0, 0))  # index x -> physical z (S-I), index z -> physical x (L-R)
    sitk.WriteImage(img, str(tmp_path / "sag.nrrd"))
    v = read_volume(tmp_path / "sag.nrrd")
    assert v.slice_axis("axial") == 2 and v.slice_axis("sagittal") == 0
    np.testing.assert_array_equal(v.plane(3, "axial"), a[:, :, 3])


def test_dicom_series_extensionless_nonuniform():
    v = read_volume(MONAI / "CT_DICOM")
    files = sorted((MONAI / "CT_DICOM").iterdir(), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    expected = np.stack([pydicom.dcmread(f).pixel_array * 1.0 - 1024 for f in files])  # slope 1, intercept -1024
    np.testing.assert_array_equal(v.array, expected.astype(np.float32))
    assert v.file_window == (30.0, 100.0) and v.modality == "CT"
    assert v.spacing[2] == pytest.approx(1.25) and v.notes and "non-uniform" in v.notes[0]


def test_dicom_single_files_rescale_and_rle():
    ct = read_volume(get_testdata_file("CT_small.dcm"))
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    np.testing.assert_array_equal(ct.array[0], ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    mr, rle = read_volume(get_testdata_file("MR_small.dcm")), read_volume(get_testdata_file("MR_small_RLE.dcm"))
    np.testing.assert_array_equal(mr.array, rle.array)  # RLE decoded by pydicom's own handler


def test_dicom_monochrome1_is_inverted(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    raw = ds.pixel_array.astype(np.float32)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    v = read_volume(tmp_path / "m1.dcm")
    np.testing.assert_array_equal(v.array[0], raw.max() + raw.min() - raw)


def test_dicom_without_pixel_data(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    with pytest.raises(ImageReadError, match="nopix.dcm: DICOM file without pixel data"):
        read_volume(tmp_path / "nopix.dcm")


def test_compressed_dicom_where_a_handler_exists():
    """JPEG 2000 lossless decodes through Pillow's OpenJPEG and equals the uncompressed file."""
    raw = read_volume(get_testdata_file("MR_small.dcm"))
    np.testing.assert_array_equal(read_volume(get_testdata_file("MR_small_jp2klossless.dcm")).array, raw.array)


def test_compressed_dicom_without_handler_says_what_to_install():
    with pytest.raises(ImageReadError, match="MR_small_jpeg_ls_lossless.dcm: cannot decode pixel data .*pip install"):
        read_volume(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))


def test_two_series_in_one_folder(tmp_path):
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(get_testdata_file(name), tmp_path / name)
    with pytest.raises(ImageReadError, match="2 DICOM series in one folder"):
        read_volume(tmp_path)


def test_geometry_mismatch_names_files_and_fields(tmp_path):
    img = read_volume(BRAIN / "breast1_image.nrrd")
    lab = sitk.ReadImage(str(BRAIN / "breast1_label.nrrd"))
    assert geometry_mismatch(img, read_volume(BRAIN / "breast1_label.nrrd")) == []
    lab.SetOrigin(tuple(o + 0.5 for o in lab.GetOrigin()))
    sitk.WriteImage(lab, str(tmp_path / "shifted.nrrd"))
    diffs = geometry_mismatch(img, read_volume(tmp_path / "shifted.nrrd"))
    assert len(diffs) == 1 and diffs[0].startswith("origin (-116.5, -48.14, 9.45) vs (-116")
    with pytest.raises(ManifestError) as err:
        check_geometry(read_volume(BRAIN / "brain1_image.nrrd"), read_volume(MONAI / "anatomical_label.nii.gz"))
    msg = str(err.value)
    assert "anatomical_label.nii.gz" in msg and "brain1_image.nrrd" in msg
    assert "size (256, 256, 25) vs (33, 41, 25)" in msg and "spacing" in msg and "origin" in msg


def test_window_policies():
    a = np.linspace(-1000, 1000, 2001)
    c, w = PRESETS["lung"]
    lung = choose_window("lung", a, None, "x")
    assert (lung.lo, lung.hi) == (c - w / 2, c + w / 2)
    assert choose_window("auto", a, (30.0, 100.0), "x").lo == -20.0
    auto_no_file = choose_window("auto", a, None, "x")
    assert (auto_no_file.lo, auto_no_file.hi) == tuple(np.percentile(a, [0.5, 99.5]))
    out = choose_window("percentile:10:90", a, None, "x").apply(a)
    assert out.dtype == np.uint8 and out[0] == 0 and out[-1] == 255 and out[1000] in (127, 128)
    with pytest.raises(ConfigError, match="window: unknown value 'liver'. Choose auto, file"):
        check_policy("liver")
    with pytest.raises(ImageReadError, match="no WindowCenter/WindowWidth"):
        choose_window("file", a, None, "x.nrrd")
    sparse = np.zeros((28, 28, 28))  # a vessel segment: 0.2% of voxels at 255, so every percentile is 0
    sparse[14, 14, 10:20] = 255
    vessel = choose_window("auto", sparse, None, "x.nii.gz")
    assert (vessel.lo, vessel.hi) == (0.0, 255.0) and "min..max" in vessel.source and vessel.apply(sparse).max() == 255
    assert choose_window("auto", np.zeros(8), None, "x").hi == 0.0  # a constant volume stays constant (noted apart)


def test_sample_reader_volume_slice_and_crop():
    reader = SampleReader("minmax")
    s = Sample("b#15", BRAIN / "brain1_image.nrrd", slice=15, axis="axial", crop=(80, 120, 150, 210))
    im = reader(s)
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(BRAIN / "brain1_image.nrrd"))).astype(float)
    lo, hi = arr.min(), arr.max()
    expected = np.clip(np.round((arr[15, 80:120, 150:210] - lo) * 255 / (hi - lo)), 0, 255).astype(np.uint8)
    assert im.mode == "RGB" and im.size == (60, 40)
    np.testing.assert_array_equal(np.asarray(im)[..., 0], expected)
    with pytest.raises(ImageReadError, match="slice 99 out of range"):
        reader(Sample("b#99", BRAIN / "brain1_image.nrrd", slice=99))


def test_unicode_and_space_paths(tmp_path):
    d = tmp_path / "Patiënt 1 ü"
    d.mkdir()
    shutil.copy(BRAIN / "breast1_image.nrrd", d / "breast 1 ü.nrrd")
    assert read_volume(d / "breast 1 ü.nrrd").size == (45, 120, 21)
