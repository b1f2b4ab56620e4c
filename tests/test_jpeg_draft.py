"""``--jpeg-draft``: JPEG files decoded at a DCT scale that still covers the resize, as their own feature set."""

from __future__ import annotations

import numpy as np
from helpers import stored
from PIL import Image

from featx.dataset.manifest import Manifest, Sample
from featx.extract.config import ExtractConfig
from featx.extract.run import run_extract
from featx.images.loader import SampleReader
from featx.images.raster import read_image


def _jpeg(path, w, h, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 64, w // 64, 3), dtype=np.uint8)
    Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).save(path, quality=90)
    return path


def test_draft_decodes_at_the_smallest_scale_covering_the_size(tmp_path):
    jpg = _jpeg(tmp_path / "a.jpg", 1024, 768)
    assert read_image(jpg).size == (1024, 768)
    assert read_image(jpg, draft=256).size == (512, 384)  # 1/4 would leave 192 rows < 256
    assert read_image(jpg, draft=100).size == (256, 192)
    png = tmp_path / "a.png"
    Image.open(jpg).save(png)
    assert read_image(png, draft=256).size == (1024, 768)  # PNG has no DCT scales: decoded whole


def test_a_crop_box_is_cut_from_the_full_size_image(tmp_path):
    jpg = _jpeg(tmp_path / "a.jpg", 1024, 768)
    reader = SampleReader(draft=256)
    whole = reader(Sample(sample_id="a", path=jpg))
    cropped = reader(Sample(sample_id="b", path=jpg, crop=(100, 700, 200, 1000)))
    assert whole.size == (512, 384) and cropped.size == (800, 600)
    assert np.array_equal(np.asarray(cropped), np.asarray(read_image(jpg).crop((200, 100, 1000, 700))))


def test_extract_with_draft_is_its_own_feature_set(demo_subset, models_dir, lite0, tmp_path):
    rows = []
    for s in list(Manifest.load(demo_subset / "subset.csv"))[:8]:
        path = tmp_path / f"{s.sample_id}.jpg"
        Image.open(s.path).convert("RGB").resize((1024, 1024), Image.Resampling.BICUBIC).save(path, quality=92)
        rows.append(Sample(sample_id=s.sample_id, path=path, label=s.label))
    Manifest(rows).to_csv(tmp_path / "m.csv")
    store = tmp_path / "s.h5"

    def extract(**kw):
        cfg = ExtractConfig(
            manifest=tmp_path / "m.csv", backbone="efficientnet_lite0", store=store, models_dir=models_dir, **kw
        )
        return run_extract(cfg, progress=False)

    exact, drafted = extract(), extract(jpeg_draft=True)
    assert (exact.feature_set, drafted.feature_set) == ("efficientnet_lite0", "efficientnet_lite0~draft")
    assert drafted.n_extracted == 8
    a, b = stored(store, "efficientnet_lite0"), stored(store, "efficientnet_lite0~draft")
    assert a.attrs["identity"] != b.attrs["identity"]
    prov = b.provenance
    X, Y = a.X, b.X
    assert "Pillow draft" in prov["preprocessing"] and prov["config"]["values"]["jpeg_draft"] is True
    cos = (X * Y).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(Y, axis=1)
    assert not np.array_equal(X, Y) and cos.min() > 0.95  # other pixels, the same picture
