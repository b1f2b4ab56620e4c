"""Lesion crops in physical space: a blob planted at a known world point of a volume with anisotropic spacing and
rotated direction cosines lands at the crop's centre, whatever the seed's convention; the axes point where the
recipe says; a mask's centroid gives the seed's crop; a seed outside the volume is one line naming the row."""

from __future__ import annotations

import numpy as np
import pytest

from featx.dataset.manifest import Manifest
from featx.dataset.sample import Sample
from featx.errors import ImageReadError, ManifestError
from featx.images.crop3d import VolumeRecipe, crop, mask_centroid, to_lps
from featx.images.lesion import LesionLoader

SIZE = (21, 21, 21)  # odd: the centre is a voxel
RECIPE = VolumeRecipe(SIZE, (1.0, 1.0, 1.0), "SPL", None, pad=0.0)
LESION = np.array([12.0, -31.0, 47.0])  # LPS mm
LEFT, UP = np.array([8.0, 0.0, 0.0]), np.array([0.0, 0.0, 6.0])  # 8 mm to the patient's left, 6 mm superior


def _rotation(deg_z: float, deg_x: float) -> np.ndarray:
    a, b = np.radians(deg_z), np.radians(deg_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A NIfTI volume (0.7 x 1.3 x 2.5 mm, rotated 30 deg about z and 20 deg about x) with Gaussian blobs at
    LESION (bright), LESION + LEFT and LESION + UP (dimmer), and a mask file of a ball around LESION."""
    import SimpleITK as sitk

    size, spacing = (80, 60, 40), (0.7, 1.3, 2.5)
    direction = _rotation(30, 20)
    origin = LESION - direction @ (np.array(spacing) * np.array([37.3, 28.6, 19.2]))  # off-grid lesion
    img = sitk.Image(size, sitk.sitkFloat32)
    img.SetSpacing(spacing), img.SetOrigin(tuple(origin)), img.SetDirection(tuple(direction.flatten()))
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), -1).reshape(-1, 3).astype(float)
    world = origin + (idx * spacing) @ direction.T
    val = np.zeros(len(world))
    for centre, peak in ((LESION, 1000.0), (LESION + LEFT, 400.0), (LESION + UP, 200.0)):
        val += peak * np.exp(-np.sum((world - centre) ** 2, axis=1) / (2 * 1.5**2))
    arr = val.reshape(size).transpose(2, 1, 0).astype(np.float32)  # (z, y, x)
    image = sitk.GetImageFromArray(arr)
    image.CopyInformation(img)
    ball = (np.sum((world - LESION) ** 2, axis=1) <= 4.0**2).reshape(size).transpose(2, 1, 0).astype(np.uint8) * 3
    mask = sitk.GetImageFromArray(ball)
    mask.CopyInformation(img)
    d = tmp_path_factory.mktemp("planted")
    sitk.WriteImage(image, str(d / "ct.nii.gz"))
    sitk.WriteImage(mask, str(d / "mask.nii.gz"))
    return d, sitk.ReadImage(str(d / "ct.nii.gz")), sitk.ReadImage(str(d / "mask.nii.gz"))


def _peak(x: np.ndarray) -> tuple:
    return tuple(int(v) for v in np.unravel_index(np.argmax(x), x.shape))


@pytest.mark.parametrize("space", ["lps", "ras", "voxel"])
def test_the_blob_is_at_the_crops_centre_for_seeds_in_every_convention(planted, space):
    _, image, _ = planted
    seed = {
        "lps": LESION,
        "ras": LESION * [-1, -1, 1],
        "voxel": np.asarray(image.TransformPhysicalPointToContinuousIndex(tuple(LESION))),
    }[space]
    x = crop(image, RECIPE, to_lps(seed, space, image))[0]
    assert x.shape == SIZE
    assert _peak(x) == (10, 10, 10)
    np.testing.assert_allclose(x, crop(image, RECIPE, LESION)[0], atol=1e-3)


def test_the_axes_point_where_the_recipe_says(planted):
    """SPL: array axis 0 grows to the superior, 2 to the patient's left; RAS flips axes 1 and 2 (and reads x, y, z
    in the other order: axis 0 is R-L)."""
    _, image, _ = planted
    x = crop(image, RECIPE, LESION)[0]
    assert x[10, 10, 18] > 100 and x[10, 10, 2] < 5  # the left blob: +8 mm along axis 2
    assert x[16, 10, 10] > 50 and x[4, 10, 10] < 5  # the upper blob: +6 mm along axis 0
    ras = crop(image, VolumeRecipe(SIZE, (1.0, 1.0, 1.0), "RAS"), LESION)[0]
    assert ras[2, 10, 10] > 100 and ras[10, 10, 16] > 50  # left is lower R; up is higher S


def test_a_mask_centroid_gives_the_crop_of_the_same_seed(planted):
    d, image, mask = planted
    centre = mask_centroid(mask, 3)
    assert np.linalg.norm(centre - LESION) < 0.5  # a voxelised ball: its centroid is the lesion, within a voxel
    assert mask_centroid(mask, 7) is None
    loader = LesionLoader(RECIPE.to_dict())
    by_mask = Sample("m", d / "ct.nii.gz", mask=d / "mask.nii.gz", mask_label=3)
    by_seed = Sample("s", d / "ct.nii.gz", seed=tuple(centre * [-1, -1, 1]), seed_space="ras")
    xm, (sha, mask_sha), *_ = loader(by_mask)
    xs, (_, no_mask), *_ = loader(by_seed)
    np.testing.assert_allclose(xm, xs, atol=1e-4)
    assert _peak(xm[0]) == (10, 10, 10) and mask_sha and not no_mask
    with pytest.raises(ImageReadError, match=r"no voxel of value 7 for row 'm'.*mask_label"):
        loader(Sample("m", d / "ct.nii.gz", mask=d / "mask.nii.gz", mask_label=7))


def test_a_seed_outside_the_volume_is_one_line_naming_the_row(planted):
    d, *_ = planted
    loader = LesionLoader(RECIPE.to_dict())
    with pytest.raises(ImageReadError) as err:
        loader(Sample("lesion-7", d / "ct.nii.gz", seed=(500.0, 0.0, 0.0), seed_space="lps"))
    msg = str(err.value)
    assert "\n" not in msg and "row 'lesion-7'" in msg and "outside the volume" in msg and "seed_space" in msg


def test_padding_outside_the_volume_and_the_intensity_recipe(planted):
    _, image, _ = planted
    corner = np.asarray(image.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, 0.0)))
    ct = VolumeRecipe(
        SIZE, (1.0, 1.0, 1.0), "SPL", {"kind": "linear", "subtract": -1024, "divide": 3072, "clip": None}, pad=-1024.0
    )
    x = crop(image, ct, corner)[0]
    assert np.isclose(x.min(), 0.0)  # -1024 HU outside the volume -> 0 after (v + 1024) / 3072
    assert np.isclose(x.max(), 1024 / 3072, atol=1e-3) or x.max() < 1024 / 3072
    z = VolumeRecipe(SIZE, (1.0, 1.0, 1.0), "SPL", {"kind": "zscore", "nonzero": False})
    arr = np.asarray([1.0, 2.0, 3.0])
    from featx.images.crop3d import apply_intensity, volume_stats

    np.testing.assert_allclose(
        apply_intensity(arr, z.intensity, volume_stats(arr, z.intensity)), [-1.2247, 0, 1.2247], atol=1e-4
    )


def test_a_seed_needs_its_convention_in_the_manifest(tmp_path):
    (tmp_path / "v.nii.gz").write_bytes(b"")
    (tmp_path / "m.csv").write_text("path,seed,seed_space\nv.nii.gz,1;2;3,\nv.nii.gz,1;2,lps\nv.nii.gz,1 2 3,RAS\n")
    with pytest.raises(ManifestError) as err:
        Manifest.load(tmp_path / "m.csv")
    msg = str(err.value)
    assert "line 2: a 'seed' needs a 'seed_space' of lps, ras or voxel" in msg and "never guesses" in msg
    assert "line 3: 'seed' must be three numbers" in msg and "line 4" not in msg
    (tmp_path / "m.csv").write_text("id,path,seed,seed_space,mask_label\na,v.nii.gz,1 2 3,RAS,2\n")
    s = Manifest.load(tmp_path / "m.csv")[0]
    assert (s.seed, s.seed_space, s.mask_label, s.lesion) == ((1.0, 2.0, 3.0), "ras", 2, True)
    Manifest([s]).to_csv(tmp_path / "out.csv")
    assert Manifest.load(tmp_path / "out.csv")[0] == s


def test_orthogonal_planes_are_square_in_mm_and_read_as_radiologists_do(planted):
    """R, G, B = axial, coronal, sagittal planes through the lesion: the lesion at the centre of each; the left blob
    on the right of the axial and coronal images (radiological convention), the upper blob above the centre of the
    coronal and sagittal images."""
    from featx.images.planes import PlaneReader

    d, *_ = planted
    im = PlaneReader("orthogonal", window="minmax", plane_mm=30)(
        Sample("l", d / "ct.nii.gz", seed=tuple(LESION), seed_space="lps")
    )
    step = 0.7  # the finest spacing: isotropic pixels
    n = round(30 / step)
    assert im.size == (n, n) and im.mode == "RGB"
    axial, coronal, sagittal = (np.asarray(im)[..., c].astype(float) for c in range(3))
    c = (n - 1) / 2
    for plane in (axial, coronal, sagittal):
        r, col = np.unravel_index(np.argmax(plane), plane.shape)
        assert abs(r - c) <= 1 and abs(col - c) <= 1
    left = round(c + 8 / step)
    up = round(c - 6 / step)
    assert axial[round(c), left] > 60 and axial[round(c), round(c - 8 / step)] < 10
    assert coronal[round(c), left] > 60 and coronal[up, round(c)] > 30 and coronal[round(c + 6 / step), round(c)] < 10
    assert sagittal[up, round(c)] > 30


def test_adjacent_slices_are_the_three_channels(tmp_path):
    import SimpleITK as sitk

    from featx.images.planes import PlaneReader

    arr = np.stack([np.full((6, 5), 10 * (k + 1), np.int16) for k in range(4)])  # slice k holds 10 (k + 1)
    arr[:, 0, 0] = 0
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "v.nii.gz"))
    reader = PlaneReader("adjacent", window="minmax")
    mid = np.asarray(reader(Sample("a", tmp_path / "v.nii.gz", slice=1)))
    end = np.asarray(reader(Sample("b", tmp_path / "v.nii.gz", slice=3)))
    window = lambda v: round(v * 255 / 40)  # noqa: E731 - minmax over 0..40
    assert mid.shape == (6, 5, 3) and [int(mid[3, 3, ch]) for ch in range(3)] == [window(10), window(20), window(30)]
    assert [int(end[3, 3, ch]) for ch in range(3)] == [window(30), window(40), window(40)]  # the border repeated
