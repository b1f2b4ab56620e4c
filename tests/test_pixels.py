"""No silently wrong pixels: a crop outside the image and a volume row without a slice are refused naming the
row; animated, tiny and constant images are noted by name (summary, store, CLI); an image over Pillow's
decompression-bomb limit says how to allow it."""

import os
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import featx
from PIL import Image

from featx.api import extract
from featx.dataset.manifest import Manifest, Sample
from featx.errors import ImageReadError
from featx.extract.pipeline import SampleLoader
from featx.images.loader import SampleReader
from featx.images.preprocess import Preprocessor
from featx.store.open import open_store

LITE0 = "efficientnet_lite0"


def _png(path, array):
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def _noise(shape=(40, 60), seed=0):
    return np.random.default_rng(seed).integers(0, 255, shape)


def test_a_crop_outside_the_image_is_refused_naming_the_row(tmp_path):
    img = _png(tmp_path / "x.png", _noise())  # 40 rows x 60 columns
    read = SampleReader()
    inside = read(Sample(sample_id="ok", path=img, crop=(10, 40, 0, 60)))
    assert inside.size == (60, 30)
    with pytest.raises(ImageReadError, match=r"crop of row 'far' \(rows 50:80, columns 0:10\) reaches outside") as e:
        read(Sample(sample_id="far", path=img, crop=(50, 80, 0, 10)))
    assert "(40 rows x 60 columns)" in str(e.value) and "fix the row's 'crop'" in str(e.value)
    with pytest.raises(ImageReadError, match="row 'edge'"):  # partly outside: Pillow would pad it black
        read(Sample(sample_id="edge", path=img, crop=(0, 41, 0, 60)))
    vol = tmp_path / "v.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(_noise((3, 20, 30)).astype(np.int16)), str(vol))
    with pytest.raises(ImageReadError, match="crop of row 'v' .* outside the image \\(20 rows x 30 columns\\)"):
        read(Sample(sample_id="v", path=vol, slice=1, crop=(0, 10, 25, 31)))


def test_an_empty_crop_box_is_a_manifest_error(tmp_path):
    _png(tmp_path / "x.png", _noise())
    (tmp_path / "m.csv").write_text('path,crop\nx.png,"10:5,0:3"\n')
    proc = featx("manifest", "check", tmp_path / "m.csv")
    assert proc.returncode != 0 and "empty or negative box" in proc.stdout + proc.stderr


def test_a_multi_slice_volume_row_without_slice_is_refused(tmp_path):
    vol = tmp_path / "v.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(_noise((5, 20, 30)).astype(np.int16)), str(vol))
    read = SampleReader()
    with pytest.raises(ImageReadError, match=r"volume of 5 axial slices and row 'v' names no 'slice'.*0\.\.4"):
        read(Sample(sample_id="v", path=vol))
    assert read(Sample(sample_id="v2", path=vol, slice=2)).size == (30, 20)
    flat = tmp_path / "flat.nii.gz"  # a single-slice volume has only one plane: no slice needed
    sitk.WriteImage(sitk.GetImageFromArray(_noise((1, 20, 30)).astype(np.int16)), str(flat))
    assert read(Sample(sample_id="f", path=flat)).size == (30, 20)


def test_animated_tiny_and_constant_images_are_noted_by_name(tmp_path):
    frames = [Image.fromarray(_noise(seed=i).astype(np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "cine.gif", save_all=True, append_images=frames[1:])
    _png(tmp_path / "dot.png", [[7]])
    _png(tmp_path / "blank.png", np.full((32, 32), 0))
    Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / "red.png")
    _png(tmp_path / "fine.png", _noise())
    load = SampleLoader(SampleReader(keep_grey=True), Preprocessor(32, 32, "bilinear", (0.5,) * 3, (0.5,) * 3))
    note = {n: load(Sample(sample_id=n, path=tmp_path / n))[2] for n in ("cine.gif", "dot.png", "blank.png", "red.png")}
    assert "cine.gif has 3 frames: only the first is used" in note["cine.gif"]
    assert "dot.png is 1x1 pixels" in note["dot.png"] and "constant image" in note["dot.png"]
    assert "every pixel of blank.png is 0: a constant image" in note["blank.png"]
    assert "every pixel of red.png is (200, 10, 10)" in note["red.png"]
    assert load(Sample(sample_id="fine", path=tmp_path / "fine.png"))[2] == ""


def test_notes_reach_the_summary_the_store_and_the_cli(tmp_path, models_dir, lite0):
    _png(tmp_path / "blank.png", np.full((32, 32), 9))
    _png(tmp_path / "fine.png", _noise())
    (tmp_path / "m.csv").write_text("path,label\nblank.png,a\nfine.png,b\n")
    proc = featx("extract", "-m", tmp_path / "m.csv", "-b", LITE0, "-s", tmp_path / "f.h5", "--models-dir", models_dir)
    assert proc.returncode == 0, proc.stderr
    assert "1 with a note" in proc.stdout and "note blank.png: every pixel of blank.png is 9" in proc.stdout
    with open_store(tmp_path / "f.h5") as st:
        notes = dict(zip(st.sample_ids(), st.notes(LITE0)))
        assert notes["fine.png"] == "" and "constant image" in notes["blank.png"]
        assert st.load(LITE0).X.shape[0] == 2  # noted rows are computed and kept
    s = extract(Manifest.load(tmp_path / "m.csv"), LITE0, tmp_path / "g.h5", models_dir=models_dir)
    assert [sid for sid, _ in s.notes] == ["blank.png"]


_BOMB = """
import sys
from PIL import Image
from featx.errors import ImageReadError
from featx.images.loader import SampleReader
from featx.dataset.manifest import Sample
try:
    print(SampleReader()(Sample(sample_id="big", path=sys.argv[1])).size)
except ImageReadError as exc:
    print("refused:", exc)
"""


def test_an_image_over_the_decompression_bomb_limit_says_how_to_allow_it(tmp_path):
    Image.new("L", (3000, 3000)).save(tmp_path / "big.png")  # 9 Mpx; the limit is lowered to 1 Mpx here
    env = {**os.environ, "FEATX_MAX_IMAGE_PIXELS": "1000000"}

    def run(e):
        return subprocess.run(
            [sys.executable, "-c", _BOMB, tmp_path / "big.png"], env=e, text=True, capture_output=True
        )

    refused = run(env).stdout
    assert refused.startswith("refused:") and "big.png" in refused and "decompression bomb" in refused
    assert "set FEATX_MAX_IMAGE_PIXELS to a larger number of pixels (0: no limit)" in refused
    assert run({**env, "FEATX_MAX_IMAGE_PIXELS": "0"}).stdout.strip() == "(3000, 3000)"
