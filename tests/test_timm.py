"""timm: sources, offline, with random weights saved into real files: a save_for_hf folder (DINOv2 ViT-S built at
224, ConvNeXt, EfficientNet) loads through --weights DIR and featx's stored features equal timm's own forward on
timm's own create_transform of the same real images; ONNX parity; ViT pooling; --input-size; --fit pad; the Hugging
Face cache offline; a missing-weights error that names what to fetch."""

import shutil

import numpy as np
import pytest
import timm
import torch
from helpers import assert_one_line_error, featx_process
from PIL import Image

from featx.api import extract
from featx.backbones.resolve import resolve_backbone
from featx.dataset.manifest import Manifest
from featx.errors import ConfigError
from featx.images.preprocess import Preprocessor
from featx.store.open import open_store

MODELS = {  # name -> create_model arguments of the saved model
    "vit_small_patch14_dinov2": {"img_size": 224},
    "convnext_atto": {},
    "efficientnet_b0": {},
}


@pytest.fixture(scope="session")
def timm_folders(tmp_path_factory):
    """One save_for_hf folder per model, seeded random weights (real files, the real offline path)."""
    from timm.models import save_for_hf

    root = tmp_path_factory.mktemp("timm")
    out = {}
    for name, kw in MODELS.items():
        torch.manual_seed(3)
        model = timm.create_model(name, pretrained=False, num_classes=0, **kw).eval()
        save_for_hf(model, str(root / name), model_args=kw, safe_serialization=True)
        out[name] = root / name
    return out


def _timm_reference(folder, images):
    """timm's own: the model from the folder, its data config, create_transform, forward."""
    model = timm.create_model(f"local-dir:{folder}", pretrained=True, num_classes=0).eval()
    tf = timm.data.create_transform(**timm.data.resolve_model_data_config(model), is_training=False)
    with torch.inference_mode():
        return np.stack([model(tf(Image.open(p).convert("RGB"))[None])[0].numpy() for p in images])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_stored_features_equal_timms_own_forward_on_its_own_transform(
    name, timm_folders, demo_subset, models_dir, tmp_path
):
    man = Manifest.load(demo_subset / "subset.csv")
    man = Manifest(list(man)[:6])
    s = extract(man, f"timm:{name}", tmp_path / "f.h5", weights=str(timm_folders[name]), models_dir=models_dir)
    assert s.n_extracted == 6 and s.failures == []
    with open_store(tmp_path / "f.h5") as st:
        fs = st.load(s.feature_set)
        prov = st.provenance(s.feature_set)
    ref = _timm_reference(timm_folders[name], [smp.path for smp in man])
    cos = (fs.X * ref).sum(1) / np.linalg.norm(fs.X, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.9999, cos
    spec = prov["spec"]
    assert spec["source"] == "timm" and spec["weights_id"] == f"dir:{name}" and len(spec["weights_sha256"]) == 64
    assert prov["onnx_file"] and s.provider == "CPUExecutionProvider"  # features came through the ONNX export
    if name.startswith("vit"):  # the model as built (224), not the pretrained config's 518
        assert (spec["crop_size"], spec["resize_size"], spec["pool"], spec["feature_dim"]) == (224, 224, "cls", 384)
    else:
        assert (spec["crop_size"], spec["resize_size"], spec["interpolation"]) == (224, 256, "bicubic")


def test_vit_pools_give_the_documented_shapes_and_register_tokens_are_left_out(timm_folders):
    folder = timm_folders["vit_small_patch14_dinov2"]
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32))
    out = {}
    for pool in ("cls", "mean", "cls+mean"):
        r = resolve_backbone("timm:vit_small_patch14_dinov2", str(folder), pool=pool)
        with torch.inference_mode():
            out[pool] = r.model(x).numpy()
        assert r.spec.feature_dim == out[pool].shape[1] == (768 if pool == "cls+mean" else 384)
        assert r.spec.pool == pool and ("@" in r.spec.name) == (pool != "cls")
    np.testing.assert_allclose(out["cls+mean"], np.concatenate([out["cls"], out["mean"]], 1), atol=1e-6)
    # DINOv2 with 4 register tokens: mean pools the 256 patch tokens only
    reg = resolve_backbone("timm:vit_small_patch14_reg4_dinov2", "random", pool="mean", input_size=56)
    m = reg.model.m
    assert m.num_prefix_tokens == 5
    with torch.inference_mode():
        tokens = m.forward_features(x[:, :, :56, :56])
        np.testing.assert_allclose(reg.model(x[:, :, :56, :56]), tokens[:, 5:].mean(1), atol=1e-6)
    with pytest.raises(ConfigError, match="a transformer: choose cls, mean or cls"):
        resolve_backbone("timm:vit_small_patch14_dinov2", str(folder), pool="avg")
    with pytest.raises(ConfigError, match="a CNN: its pool is avg"):
        resolve_backbone("timm:convnext_atto", str(timm_folders["convnext_atto"]), pool="cls")
    with pytest.raises(ConfigError, match="applies to timm: backbones"):
        resolve_backbone("resnet18", "random", pool="cls")


def test_input_size_builds_the_vit_at_that_side_and_names_it():
    r = resolve_backbone("timm:vit_small_patch14_dinov2", "random", input_size=98)
    assert (r.spec.crop_size, r.spec.name) == (98, "timm:vit_small_patch14_dinov2.random-98")
    with torch.inference_mode():
        assert r.model(torch.zeros(1, 3, 98, 98)).shape == (1, 384)


def test_fit_pad_keeps_the_whole_image_and_crop_does_not():
    wide = np.full((50, 200, 3), 128, np.uint8)
    wide[:, :10] = 255  # a lesion at the left border
    im = Image.fromarray(wide)
    mean, std = (0.0,) * 3, (1.0,) * 3
    crop = Preprocessor(64, 64, "bilinear", mean, std).crop(im)
    pad = Preprocessor(64, 64, "bilinear", mean, std, fit="pad").crop(im)
    stretch = Preprocessor(64, 64, "bilinear", mean, std, fit="stretch").crop(im)
    assert crop.shape == pad.shape == stretch.shape == (64, 64, 3)
    assert crop.max() < 200  # the border column is cropped away
    assert pad[32, 0].min() > 200 and pad[0].max() == 0 and pad[-1].max() == 0  # whole image, black bars
    rows = np.flatnonzero(pad[:, 32, 0] > 0)
    assert len(rows) == 16  # 200x50 -> 64x16: the aspect kept
    assert stretch[:, 0].min() > 200 and stretch.min() > 0  # whole image, no bars, aspect lost


def test_fit_is_part_of_the_feature_sets_identity(demo_subset, models_dir, lite0, tmp_path):
    man = Manifest(list(Manifest.load(demo_subset / "subset.csv"))[:4])
    a = extract(man, "efficientnet_lite0", tmp_path / "f.h5", models_dir=models_dir)
    b = extract(man, "efficientnet_lite0", tmp_path / "f.h5", models_dir=models_dir, fit="pad")
    assert (a.feature_set, b.feature_set) == ("efficientnet_lite0", "efficientnet_lite0~pad")
    with open_store(tmp_path / "f.h5") as st:
        assert not np.allclose(st.load(a.feature_set).X, st.load(b.feature_set).X)
        assert "letterboxed with black to 224 x 224" in st.provenance(b.feature_set)["preprocessing"]


def test_the_hugging_face_cache_works_offline(timm_folders, tmp_path):
    """Weights in the standard cache layout (as 'huggingface-cli download' leaves them), HF_HUB_OFFLINE=1."""
    repo = "timm/convnext_atto.d2_in1k"
    snap = tmp_path / "hf" / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    for f in ("model.safetensors", "config.json"):
        shutil.copyfile(timm_folders["convnext_atto"] / f, snap / f)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("0123abcd")
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "onnx"
    proc = featx_process("export", "-b", "timm:convnext_atto.d2_in1k", "--models-dir", out, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "timm-convnext_atto.d2_in1k.onnx" in proc.stdout and "parity max" in proc.stdout


def test_missing_weights_offline_name_what_to_fetch_and_where(tmp_path):
    env = {"HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"}
    proc = featx_process("export", "-b", "timm:vit_small_patch14_dinov2.lvd142m", "--models-dir", tmp_path, env=env)
    assert_one_line_error(
        proc,
        "the pretrained weights are not on this machine",
        "timm/vit_small_patch14_dinov2.lvd142m",
        "huggingface-cli download",
        str(tmp_path / "empty" / "hub"),
        "--weights DIR",
    )
    assert not any(p.suffix == ".onnx" for p in tmp_path.iterdir())  # never random weights instead


def test_a_folder_of_another_architecture_is_refused(timm_folders):
    from featx.errors import WeightsError

    with pytest.raises(WeightsError, match="holds a convnext_atto model, not efficientnet_b0"):
        resolve_backbone("timm:efficientnet_b0", str(timm_folders["convnext_atto"]))
    with pytest.raises(ConfigError, match="timm has no model 'convnext_attto'"):
        resolve_backbone("timm:convnext_attto", "random")


def test_backbones_search_and_describe():
    from helpers import featx

    found = featx("backbones", "--search", "small_patch14_dinov2")
    assert found.returncode == 0, found.stderr
    text = " ".join(found.stdout.split())
    assert "lvd142m" in text and "timm:vit_small" in text
    assert "518" in text and "384" in text and "apache-2.0" in text
    shown = featx(
        "backbones", "--describe", "timm:vit_small_patch14_dinov2", "--weights", "random", "--input-size", "112"
    )
    assert shown.returncode == 0, shown.stderr
    assert (
        '"crop_size": 112' in shown.stdout and '"pool": "cls"' in shown.stdout and '"feature_dim": 384' in shown.stdout
    )
    assert featx("backbones", "--search", "no_such_model_xyz").returncode == 2
    from featx.backbones.open_clip_source import search_open_clip

    clip = {(r["name"], r["weights"]): r for r in search_open_clip("laion2b_s34b_b88k")}
    row = clip[("open_clip:ViT-B-16", "--weights laion2b_s34b_b88k")]  # matched by its tag
    assert row["input"] == 224 and row["dim"] == 512


def test_layers_on_a_vit_concatenate_the_pooled_tokens_of_those_blocks(timm_folders):
    folder = timm_folders["vit_small_patch14_dinov2"]
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32))
    four = resolve_backbone("timm:vit_small_patch14_dinov2", str(folder), layer="-4:")
    one = resolve_backbone("timm:vit_small_patch14_dinov2", str(folder))
    assert four.spec.feature_dim == 4 * 384 and four.spec.name.endswith("@blocks8-11")
    assert four.spec.cut_layer == "blocks [8, 9, 10, 11] (cls)"
    with torch.inference_mode():
        v, last = four.model(x).numpy(), one.model(x).numpy()
        m = four.model.m  # the blocks run by hand: each chosen block's output, normed, its class token
        t = m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x))))
        want = []
        for i, blk in enumerate(m.blocks):
            t = blk(t)
            if i >= 8:
                want.append(m.norm(t)[:, 0].numpy())
    np.testing.assert_allclose(v, np.concatenate(want, 1), atol=1e-5)
    np.testing.assert_allclose(v[:, -384:], last, atol=1e-5)  # the last block, normed: the model's own output
    both = resolve_backbone("timm:vit_small_patch14_dinov2", str(folder), layer="8,11", pool="cls+mean")
    assert both.spec.feature_dim == 2 * 768 and both.spec.name.endswith("@cls+mean@blocks8+11")
    with pytest.raises(ConfigError, match="give block indices of the 12 blocks"):
        resolve_backbone("timm:vit_small_patch14_dinov2", str(folder), layer="12")
    with pytest.raises(ConfigError, match="this is a CNN"):
        resolve_backbone("timm:convnext_atto", str(timm_folders["convnext_atto"]), layer="-2:")


@pytest.fixture(scope="session")
def clip_file(tmp_path_factory):
    """A whole OpenCLIP ViT-S-32 (seeded random weights) saved as a checkpoint file."""
    import open_clip

    torch.manual_seed(5)
    model = open_clip.create_model("ViT-S-32", pretrained=None)
    path = tmp_path_factory.mktemp("clip") / "vit_s_32.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.slow
def test_open_clip_tower_features_equal_open_clips_own_and_export(clip_file, demo_subset, models_dir, tmp_path):
    import open_clip

    man = Manifest(list(Manifest.load(demo_subset / "subset.csv"))[:4])
    s = extract(man, "open_clip:ViT-S-32", tmp_path / "f.h5", weights=str(clip_file), models_dir=models_dir)
    assert s.n_extracted == 4 and s.provider == "CPUExecutionProvider"
    with open_store(tmp_path / "f.h5") as st:
        fs, prov = st.load(s.feature_set), st.provenance(s.feature_set)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-S-32", pretrained=str(clip_file))
    with torch.inference_mode():
        ref = np.stack(
            [model.eval().encode_image(preprocess(Image.open(p))[None])[0].numpy() for p in [x.path for x in man]]
        )
    cos = (fs.X * ref).sum(1) / np.linalg.norm(fs.X, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.9999, cos
    spec = prov["spec"]
    assert spec["source"] == "open_clip" and spec["feature_dim"] == 384 and spec["mean"][0] == pytest.approx(0.48145466)
    with pytest.raises(Exception, match="not a pretrained tag of ViT-S-32"):
        resolve_backbone("open_clip:ViT-S-32", "no_such_tag")
    with pytest.raises(ConfigError, match="OpenCLIP has no model 'ViT-Q-99'"):
        resolve_backbone("open_clip:ViT-Q-99", "random")


@pytest.fixture(scope="session")
def rad_dino_like(tmp_path_factory):
    """A small transformers Dinov2 model (RAD-DINO's class) with 2 register tokens and RAD-DINO's kind of image
    processor, saved with save_pretrained: seeded random weights in real files."""
    from transformers import BitImageProcessor, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    cfg = Dinov2WithRegistersConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        image_size=112,
        patch_size=14,
        num_register_tokens=2,
    )
    torch.manual_seed(7)
    folder = tmp_path_factory.mktemp("hf") / "rad-dino-like"
    Dinov2WithRegistersModel(cfg).eval().save_pretrained(folder)
    BitImageProcessor(
        size={"shortest_edge": 128},
        crop_size={"height": 112, "width": 112},
        do_center_crop=True,
        resample=3,
        image_mean=[0.5307, 0.5307, 0.5307],
        image_std=[0.2583, 0.2583, 0.2583],
    ).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_hf_model_features_equal_transformers_own_forward_on_its_processor(
    rad_dino_like, demo_subset, models_dir, tmp_path
):
    from transformers import AutoImageProcessor, AutoModel

    man = Manifest(list(Manifest.load(demo_subset / "subset.csv"))[:4])
    s = extract(man, "hf:microsoft/rad-dino", tmp_path / "f.h5", weights=str(rad_dino_like), models_dir=models_dir)
    assert s.n_extracted == 4 and s.provider == "CPUExecutionProvider"
    with open_store(tmp_path / "f.h5") as st:
        fs, spec = st.load(s.feature_set), st.provenance(s.feature_set)["spec"]
    model, proc = AutoModel.from_pretrained(rad_dino_like).eval(), AutoImageProcessor.from_pretrained(rad_dino_like)
    with torch.inference_mode():
        ref = np.stack(
            [
                model(**proc(Image.open(x.path).convert("RGB"), return_tensors="pt")).pooler_output[0].numpy()
                for x in man
            ]
        )
    cos = (fs.X * ref).sum(1) / np.linalg.norm(fs.X, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.9999, cos
    assert (spec["resize_size"], spec["crop_size"], spec["interpolation"], spec["pool"]) == (128, 112, "bicubic", "cls")
    assert spec["mean"] == [0.5307] * 3 and spec["source"] == "hf"
    mean = resolve_backbone("hf:microsoft/rad-dino", str(rad_dino_like), pool="mean")
    x = torch.zeros(1, 3, 112, 112)
    with torch.inference_mode():
        h = model(pixel_values=x).last_hidden_state
        np.testing.assert_allclose(mean.model(x), h[:, 3:].mean(1), atol=1e-6)  # cls + 2 registers left out


def test_hf_model_missing_offline_names_what_to_fetch(tmp_path):
    env = {"HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"}
    proc = featx_process("export", "-b", "hf:microsoft/rad-dino", "--models-dir", tmp_path, env=env)
    assert_one_line_error(
        proc, "hf:microsoft/rad-dino: the model is not on this machine", "huggingface-cli download microsoft/rad-dino"
    )


def test_a_broken_weights_file_is_named_for_every_source(tmp_path, rad_dino_like):
    from featx.errors import WeightsError

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(WeightsError, match="bad.safetensors: not readable weights for timm convnext_atto"):
        resolve_backbone("timm:convnext_atto", str(bad))
    with pytest.raises(WeightsError, match="bad.safetensors: not readable weights for OpenCLIP ViT-S-32"):
        resolve_backbone("open_clip:ViT-S-32", str(bad))
    broken = tmp_path / "broken"
    shutil.copytree(rad_dino_like, broken)
    (broken / "model.safetensors").write_bytes(b"cut")
    with pytest.raises(WeightsError, match="broken: not readable weights for microsoft/rad-dino"):
        resolve_backbone("hf:microsoft/rad-dino", str(broken))
