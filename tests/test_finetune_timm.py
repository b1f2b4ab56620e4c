"""``featx finetune`` on timm backbones: timm's own parameter groups as the blocks, ViT Grad-CAM on the patch grid,
the saved model and the exported backbone rebuilt from their specs (random weights at small sizes: the plumbing)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import featx, stored

from featx.backbones.resolve import resolve_backbone
from featx.finetune.blocks import BlockMap, block_map, unmapped_parameters

pytestmark = pytest.mark.slow
VIT = "timm:vit_small_patch14_reg4_dinov2"  # register tokens: Grad-CAM must find the patch grid behind them


@pytest.fixture(scope="module")
def vit_run(demo_subset, tmp_path_factory):
    from featx.dataset.manifest import Manifest

    tmp = tmp_path_factory.mktemp("ftt")
    Manifest(list(Manifest.load(demo_subset / "subset.csv"))[:40]).to_csv(tmp / "m.csv")
    args = ["-m", tmp / "m.csv", "-b", VIT, "--weights", "random", "--input-size", "56", "--epochs", "1"]
    args += ["--cv", "2", "--freeze", "10", "--batch-size", "16", "--bootstrap", "20", "--out", tmp / "ft"]
    args += ["--export", "v1", "--models-dir", tmp / "models", "--gradcam", "2", "--positive", "malignant"]
    proc = featx("finetune", *args)
    assert proc.returncode == 0, proc.stderr
    return tmp


def test_blocks_are_timms_groups_and_the_frozen_ones_do_not_move(vit_run):
    res = json.loads((vit_run / "ft" / "results.json").read_text())
    assert res["finetune"]["frozen_blocks"] == ["stem"] + [f"blocks.{i}" for i in range(9)]
    saved = torch.load(vit_run / "ft" / "model.pt", weights_only=True)["state"]
    start = resolve_backbone(VIT, "random", input_size=56).model.state_dict()  # the seeded initial weights
    for name in ("m.cls_token", "m.patch_embed.proj.weight", "m.blocks.8.mlp.fc2.weight"):
        assert torch.equal(saved[f"features.{name}"], start[name]), name  # frozen: unchanged
    assert not torch.equal(saved["features.m.blocks.11.mlp.fc2.weight"], start["m.blocks.11.mlp.fc2.weight"])
    assert len(list((vit_run / "ft" / "gradcam").glob("*.png"))) == 2


def test_saved_model_and_exported_backbone_compute_the_trained_features(vit_run):
    from featx.finetune.model import load_net
    from featx.images.loader import SampleReader
    from featx.images.preprocess import Preprocessor

    loaded = load_net(vit_run / "ft" / "model.pt")
    name = f"{VIT}.ft-v1"
    store = vit_run / "f.h5"
    import featx.api as fx

    s = fx.extract(vit_run / "m.csv", name, store, models_dir=vit_run / "models")  # the ONNX export of the backbone
    assert s.n_extracted == 40 and s.feature_set == name
    X = stored(store, name).X[:4]
    from featx.dataset.manifest import Manifest

    samples = list(Manifest.load(vit_run / "m.csv"))[:4]
    prep, read = Preprocessor.from_spec(loaded.spec), SampleReader("auto", keep_grey=True)
    x = torch.from_numpy(np.stack([prep(read(s_)) for s_ in samples]))
    with torch.inference_mode():
        want = loaded.net.features(x).numpy()
    np.testing.assert_allclose(X, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("name", ["timm:convnext_atto", "timm:efficientnet_b0", "timm:resnet18"])
def test_cnn_block_maps_cover_the_network(name):
    r = resolve_backbone(name, "random")
    bmap = block_map(r.spec.arch, r.model)
    assert isinstance(bmap, BlockMap) and bmap.names[0] == "stem" and len(bmap.blocks) >= 5
    assert unmapped_parameters(r.model, bmap) == []
    r.model.get_submodule(bmap.gradcam_layer)  # a conv stage: Grad-CAM's layer exists
