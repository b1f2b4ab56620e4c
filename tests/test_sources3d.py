"""3D sources as issue 19 tested the 2D ones: random weights saved in each source's own file format, loaded through
featx's real path, exported to ONNX (with parity) and run by featx's extraction on a real volume's lesion, against
the source's own forward on the source's own preprocessing of the same lesion (cosine >= 0.9999)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from featx.dataset.manifest import Manifest
from featx.dataset.sample import Sample
from featx.errors import WeightsError
from featx.extract.config import ExtractConfig
from featx.extract.run import run_extract
from featx.store.open import open_store

pytest.importorskip("monai")  # the 3d extra; installed by `make install`
pytestmark = pytest.mark.slow

BRAIN = Path(__file__).parent / "data" / "pyradiomics_brain"


def _cos(a, b) -> float:
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _featx(backbone: str, weights: str, tmp_path, models_dir, **kw) -> np.ndarray:
    """featx extract on brain1's lesion (its mask's centroid): the stored feature row."""
    man = Manifest([Sample("brain1", BRAIN / "brain1_image.nrrd", label="a", mask=BRAIN / "brain1_label.nrrd")])
    cfg = ExtractConfig(backbone=backbone, weights=weights, store=tmp_path / "f.h5", models_dir=models_dir, **kw)
    s = run_extract(cfg, man, progress=False)
    assert s.n_extracted == 1 and not s.failures
    with open_store(tmp_path / "f.h5") as st:
        prov = st.provenance(s.feature_set)
        assert prov["spec"]["volume"]["source"] and "mm cube around the point" in prov["preprocessing"]
        return st.load(s.feature_set).X[0]


def _centroid_lps() -> np.ndarray:
    import SimpleITK as sitk

    from featx.images.crop3d import mask_centroid

    return mask_centroid(sitk.ReadImage(str(BRAIN / "brain1_label.nrrd")))


def _nifti(tmp_path) -> str:
    """brain1 as NIfTI: MONAI's ITK reader needs the itk package; its nibabel reader reads the same volume."""
    import SimpleITK as sitk

    out = tmp_path / "brain1.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(BRAIN / "brain1_image.nrrd")), str(out))
    return str(out)


def _fmcib_load_model():
    """fmcib's LoadModel (fmcib.models.load_model), read without the package's __init__, which imports its IDC
    download helpers (pydicom-seg, pandas) that loading weights does not need."""
    import importlib.util

    import fmcib

    path = Path(fmcib.__file__).parent / "models" / "load_model.py"
    spec = importlib.util.spec_from_file_location("fmcib_load_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LoadModel


def test_fmcib_weights_file_against_fmcib_itself(tmp_path, models_dir, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("fmcib")
    import monai.transforms as mt
    from fmcib.preprocessing import get_transforms
    from monai.networks.nets import resnet50

    def trunk():
        return resnet50(
            pretrained=False,
            n_input_channels=1,
            widen_factor=2,
            conv1_t_stride=2,
            feed_forward=False,
            bias_downsample=True,
        )

    torch.manual_seed(3)
    path = tmp_path / "model_weights.torch"
    torch.save({"trunk_state_dict": trunk().state_dict()}, path)  # the published file's layout (VISSL)
    got = _featx("fmcib", str(path), tmp_path, models_dir)
    assert got.shape == (4096,)

    load = mt.LoadImaged
    monkeypatch.setattr(
        mt, "LoadImaged", lambda keys, image_only, reader: load(keys, image_only=image_only, reader="NibabelReader")
    )
    c = _centroid_lps()
    x = get_transforms()({"image_path": _nifti(tmp_path), "coordX": c[0], "coordY": c[1], "coordZ": c[2]})
    model = _fmcib_load_model()(trunk=trunk(), weights_path=path, heads=[]).eval()
    with torch.no_grad():
        want = model(x[None].float()).numpy()[0]
    assert _cos(got, want) >= 0.9999


def test_fmcib_without_weights_names_the_file_to_fetch(tmp_path, monkeypatch):
    from featx.backbones.resolve import resolve_backbone

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsError) as err:
        resolve_backbone("fmcib")
    msg = str(err.value)
    assert "\n" not in msg and "zenodo.org/records/10528450" in msg and "--weights FILE" in msg
    torch = pytest.importorskip("torch")
    torch.save({"trunk_state_dict": {"conv1.weight": torch.zeros(1)}}, tmp_path / "bad.torch")
    with pytest.raises(WeightsError, match="weights do not fit fmcib"):
        resolve_backbone("fmcib", str(tmp_path / "bad.torch"))


def _hf_cache(tmp_path, repo: str, files: dict) -> dict:
    snap = tmp_path / "hf" / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    for name, write in files.items():
        write(snap / name)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("0123abcd")
    return {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}


def test_medicalnet_from_the_hugging_face_cache_against_monais_loader(tmp_path, models_dir, monkeypatch):
    """A MedicalNet checkpoint ({'state_dict': {'module.*'}}) in the Hugging Face cache, where MONAI's own loader
    (resnet10(pretrained=True)) finds it: featx's features equal MONAI's model on featx's crop."""
    torch = pytest.importorskip("torch")
    from monai.networks.nets import resnet10

    from featx.images.lesion import LesionLoader

    torch.manual_seed(5)
    net = resnet10(n_input_channels=1, feed_forward=False, shortcut_type="B", bias_downsample=False)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    env = _hf_cache(
        tmp_path,
        "TencentMedicalNet/MedicalNet-Resnet10",
        {"resnet_10_23dataset.pth": lambda p: torch.save({"state_dict": state}, p)},
    )
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    got = _featx("medicalnet:resnet10", "imagenet", tmp_path, models_dir)
    monai_net = resnet10(
        pretrained=True, n_input_channels=1, feed_forward=False, shortcut_type="B", bias_downsample=False
    ).eval()
    spec_recipe = __import__("featx.backbones.volumetric", fromlist=["x"]).MEDICALNET_RECIPE
    x, *_ = LesionLoader(spec_recipe.to_dict())(
        Sample("b", BRAIN / "brain1_image.nrrd", mask=BRAIN / "brain1_label.nrrd")
    )
    with torch.no_grad():
        want = monai_net(torch.from_numpy(x[None])).numpy()[0]
    assert _cos(got, want) >= 0.9999
    nonzero = x[x != 0]
    assert abs(float(nonzero.mean())) < 3  # z-scored by the whole volume's non-zero voxels


def test_ct_fm_save_pretrained_folder_against_lighter_zoo(tmp_path, models_dir):
    """A CT-FM folder as lighter-zoo's save_pretrained writes it (config.json, model.safetensors): featx's features
    against lighter-zoo's own model on the model card's preprocessing (Orientation SPL, ScaleIntensityRange clipped),
    resampled to featx's 1 mm and cropped around the same lesion."""
    torch = pytest.importorskip("torch")
    lz = pytest.importorskip("lighter_zoo")
    import monai.transforms as mt

    torch.manual_seed(7)
    enc = lz.SegResEncoder(spatial_dims=3, in_channels=1, init_filters=32, blocks_down=(1, 2, 2, 4, 4))
    enc.save_pretrained(tmp_path / "ct_fm")
    got = _featx("ct_fm", str(tmp_path / "ct_fm"), tmp_path, models_dir)
    assert got.shape == (512,)

    card = mt.Compose(
        [
            mt.LoadImage(ensure_channel_first=True, reader="NibabelReader"),
            mt.EnsureType(),
            mt.Orientation(axcodes="SPL"),
            mt.ScaleIntensityRange(a_min=-1024, a_max=2048, b_min=0, b_max=1, clip=True),
            mt.Spacing(pixdim=1.0, mode="bilinear", align_corners=True),
        ]
    )
    vol = card(_nifti(tmp_path))
    centre = np.linalg.inv(np.asarray(vol.affine)) @ np.r_[_centroid_lps() * [-1, -1, 1], 1.0]
    x = mt.SpatialCrop(roi_center=[int(round(v)) for v in centre[:3]], roi_size=(64, 64, 64))(vol)
    x = mt.SpatialPad((64, 64, 64))(x).as_tensor()
    model = lz.SegResEncoder.from_pretrained(tmp_path / "ct_fm").eval()
    with torch.no_grad():
        want = torch.nn.functional.adaptive_avg_pool3d(model(x[None].float())[-1], 1).flatten().numpy()
    assert _cos(got, want) >= 0.9999
