"""featx's numpy preprocessing must equal torchvision's own transforms, value for value."""

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.models import get_weight

from featx.backbones import get_entry
from featx.images.preprocess import Preprocessor
from featx.images.raster import read_image


def _photos(demo_subset):
    grey_us = read_image(next((demo_subset / "images" / "test").rglob("*.png")))  # real 28x28 ultrasound, grey->RGB
    return {
        "chelsea (451x300 RGB photo)": Image.fromarray(skimage.data.chelsea()),
        "coffee (600x400 RGB photo)": Image.fromarray(skimage.data.coffee()),
        "portrait 300x451": Image.fromarray(skimage.data.chelsea()).transpose(Image.Transpose.ROTATE_90),
        "BreastMNIST 28x28 grey": grey_us,
    }


def test_equals_torchvision_weights_transforms(demo_subset):
    spec = get_entry("resnet18").spec()
    tv = get_weight("ResNet18_Weights.IMAGENET1K_V1").transforms()
    pre = Preprocessor.from_spec(spec)
    for name, im in _photos(demo_subset).items():
        ours = pre(im)
        ref = tv(im).numpy()
        assert ours.shape == ref.shape == (3, 224, 224), name
        np.testing.assert_array_equal(ours, ref, err_msg=name)


def test_lite0_bicubic_equals_torchvision_pipeline(demo_subset):
    spec = get_entry("efficientnet_lite0").spec()
    tv = T.Compose(
        [
            T.Resize(spec.resize_size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(spec.crop_size),
            T.PILToTensor(),
            T.ConvertImageDtype(torch.float32),
            T.Normalize(spec.mean, spec.std),
        ]
    )
    pre = Preprocessor.from_spec(spec)
    for name, im in _photos(demo_subset).items():
        np.testing.assert_array_equal(pre(im), tv(im).numpy(), err_msg=name)


def test_crop_larger_than_image_pads_like_torchvision():
    im = Image.fromarray(skimage.data.chelsea()[:40, :70])
    tv = T.Compose(
        [
            T.Resize(21),
            T.CenterCrop(32),
            T.PILToTensor(),
            T.ConvertImageDtype(torch.float32),
            T.Normalize([0.5] * 3, [0.25] * 3),
        ]
    )
    ours = Preprocessor(21, 32, "bilinear", [0.5] * 3, [0.25] * 3)(im)
    np.testing.assert_array_equal(ours, tv(im).numpy())


def test_rejects_modes_other_than_rgb_and_grey():
    with pytest.raises(ValueError, match="expected an RGB or L \\(grey\\) image, got mode RGBA"):
        Preprocessor(8, 8, "bilinear", [0] * 3, [1] * 3)(Image.new("RGBA", (8, 8)))


@pytest.mark.parametrize("interp", ["bilinear", "bicubic"])
@pytest.mark.parametrize("shape", [(512, 512), (37, 53), (500, 120), (100, 1000)])
def test_grey_in_l_mode_equals_rgb_replication(interp, shape):
    """extract resamples grey images once in L mode: the numbers must be those of RGB replication."""
    im = Image.fromarray(np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8), "L")
    for resize, crop in ((256, 224), (342, 299), (224, 224)):
        p = Preprocessor(resize, crop, interp, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        np.testing.assert_array_equal(p(im), p(im.convert("RGB")))
