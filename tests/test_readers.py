import numpy as np
import pytest
from PIL import Image

from featx.errors import ImageReadError
from featx.images.raster import read_image


def test_grey_is_replicated(tmp_path):
    a = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(a).save(tmp_path / "g.png")
    rgb = np.asarray(read_image(tmp_path / "g.png"))
    assert rgb.shape == (8, 8, 3) and all((rgb[..., c] == a).all() for c in range(3))


def test_16bit_min_max_scaled(tmp_path):
    a = np.arange(16, dtype=np.uint16).reshape(4, 4) * 1000 + 500
    Image.fromarray(a).save(tmp_path / "g16.png")
    rgb = np.asarray(read_image(tmp_path / "g16.png"))
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and rgb.dtype == np.uint8


def test_rgba_palette_cmyk(tmp_path):
    Image.new("RGBA", (4, 4), (10, 20, 30, 0)).save(tmp_path / "a.png")
    Image.new("P", (4, 4), 3).save(tmp_path / "p.png")
    Image.new("CMYK", (4, 4), (0, 0, 0, 0)).save(tmp_path / "c.jpg")
    assert np.asarray(read_image(tmp_path / "a.png"))[0, 0].tolist() == [10, 20, 30]
    for f in ("p.png", "c.jpg"):
        assert read_image(tmp_path / f).mode == "RGB"


def test_truncated_and_empty_files(tmp_path):
    Image.new("L", (64, 64), 9).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="trunc.png: cannot decode image"):
        read_image(tmp_path / "trunc.png")
    with pytest.raises(ImageReadError, match="empty.png: not a readable image"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageReadError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")


def test_tiff_16bit_and_bmp(tmp_path):
    a = np.arange(100, dtype=np.uint16).reshape(10, 10) * 600
    Image.fromarray(a).save(tmp_path / "g16.tif")
    rgb = np.asarray(read_image(tmp_path / "g16.tif"))
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255
    Image.fromarray(np.full((5, 7, 3), (1, 2, 3), dtype=np.uint8)).save(tmp_path / "c.bmp")
    assert np.asarray(read_image(tmp_path / "c.bmp"))[0, 0].tolist() == [1, 2, 3]
