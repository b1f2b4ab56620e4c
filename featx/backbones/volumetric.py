"""3D backbones: networks that embed a lesion crop of a volume, with the input recipe their sources publish.

- ``fmcib``: the CT foundation model for cancer imaging biomarkers (Pai et al., Nature Machine Intelligence 2024;
  PyPI ``foundation-cancer-image-biomarker``): MONAI's 3D ResNet-50 (widen factor 2) on a 50 mm cube at 1 mm
  around the lesion, 4,096 features. Weights: its ``model_weights.torch`` (Zenodo record 10528450), found in the
  working folder (where ``fmcib`` downloads it) or the torch hub folder, or named with ``--weights FILE``.
- ``ct_fm``: CT-FM's feature extractor (``project-lighter/ct_fm_feature_extractor`` on Hugging Face; the
  ``lighter-zoo`` wrapper of MONAI's SegResNet encoder): the last stage's map, averaged, 512 features. The
  standard Hugging Face cache, or ``--weights DIR`` (a ``save_pretrained`` folder).
- ``medicalnet:resnetN`` (N in 10, 18, 34, 50, 101, 152, 200): Tencent's MedicalNet (Med3D) 3D ResNets in MONAI,
  from ``TencentMedicalNet/MedicalNet-ResnetN`` on Hugging Face (MONAI's own loader), or a MedicalNet ``.pth``.

Each recipe (:class:`~featx.images.crop3d.VolumeRecipe`) states where it comes from; it enters the spec, so the
provenance and the feature set's identity. Needs the ``3d`` extra (``pip install "featx[3d]"``: MONAI).
"""

from __future__ import annotations

import json
from pathlib import Path

from featx.backbones.hub import offline_unless_reachable
from featx.backbones.sources import hf_fetch_hint, load_user_weights
from featx.backbones.spec import BackboneSpec
from featx.backbones.weights import RANDOM_SEED, seeded_random, sha256_file
from featx.errors import ConfigError, UnknownBackboneError, WeightsError, did_you_mean
from featx.images.crop3d import VolumeRecipe

FMCIB_URL = "https://zenodo.org/records/10528450/files/model_weights.torch"
FMCIB_FILE = "model_weights.torch"
CT_FM_REPO = "project-lighter/ct_fm_feature_extractor"
MEDICALNET_REPO = "TencentMedicalNet/MedicalNet-Resnet{depth}"
MEDICALNET_DEPTHS = (10, 18, 34, 50, 101, 152, 200)

#: fmcib.preprocessing.get_transforms: (v + 1024) / 3072 (no clip), 1 mm linear, LPS, a 50^3 crop, then
#: transposed to (z, y, x); zeros (-1024 HU) outside the volume
FMCIB_RECIPE = VolumeRecipe(
    size=(50, 50, 50),
    spacing=(1.0, 1.0, 1.0),
    axcodes="SPL",
    intensity={"kind": "linear", "subtract": -1024.0, "divide": 3072.0, "clip": None},
    pad=-1024.0,
    source="fmcib.preprocessing.get_transforms (foundation-cancer-image-biomarker 1.0)",
)
#: CT-FM's model card: Orientation SPL, ScaleIntensityRange(-1024..2048 -> 0..1, clip); it publishes no lesion crop,
#: so the cube (64 mm at 1 mm) is featx's
CT_FM_RECIPE = VolumeRecipe(
    size=(64, 64, 64),
    spacing=(1.0, 1.0, 1.0),
    axcodes="SPL",
    intensity={"kind": "linear", "subtract": -1024.0, "divide": 3072.0, "clip": [0.0, 1.0]},
    pad=-1024.0,
    source="CT-FM model card (orientation, intensity); featx's 64 mm cube at 1 mm",
)
#: MedicalNet's loader: z-score over the volume's non-zero voxels (its training noise left out), nibabel's array
#: order of a RAS volume; it publishes no crop or spacing, so the cube (64 mm at 1 mm) is featx's
MEDICALNET_RECIPE = VolumeRecipe(
    size=(64, 64, 64),
    spacing=(1.0, 1.0, 1.0),
    axcodes="RAS",
    intensity={"kind": "zscore", "nonzero": True},
    pad=0.0,
    source="MedicalNet's data loader (intensity, array order); featx's 64 mm cube at 1 mm",
)

SOURCES = ("fmcib", "ct_fm", *(f"medicalnet:resnet{d}" for d in MEDICALNET_DEPTHS))
#: each source's (input recipe, feature width)
RECIPES = {
    "fmcib": (FMCIB_RECIPE, 4096),
    "ct_fm": (CT_FM_RECIPE, 512),
    **{f"medicalnet:resnet{d}": (MEDICALNET_RECIPE, 512 if d in (10, 18, 34) else 2048) for d in MEDICALNET_DEPTHS},
}


def is_volumetric_ref(name: str) -> bool:
    return name in ("fmcib", "ct_fm") or name.startswith("medicalnet:")


def check_volumetric_name(name: str) -> None:
    """Refuse an unknown ``medicalnet:`` depth before any data is read."""
    if name not in SOURCES:
        raise UnknownBackboneError(
            f"unknown 3D backbone {name!r}.{did_you_mean(name, SOURCES)} 3D backbones: {', '.join(SOURCES)}."
        )


def load_volumetric(name: str, weights: str = "imagenet"):
    """(spec, feature module in eval mode) of a 3D source (see the module docstring)."""
    check_volumetric_name(name)
    try:
        import monai  # noqa: F401
    except ImportError:
        raise ConfigError(f"{name} is a 3D backbone: it needs MONAI (pip install 'featx[3d]').", "backbone") from None
    if name == "fmcib":
        return _fmcib(weights)
    if name == "ct_fm":
        return _ct_fm(weights)
    return _medicalnet(int(name.split("resnet")[1]), weights)


def _spec(name, arch, weights_id, sha, dim, recipe: VolumeRecipe, source: str, cut: str) -> BackboneSpec:
    side = int(recipe.size[-1])
    return BackboneSpec(
        name=name,
        arch=arch,
        weights_id=weights_id,
        resize_size=side,
        crop_size=side,
        interpolation=recipe.interpolation,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        cut_layer=cut,
        feature_dim=dim,
        channel_policy="3D: one channel, the volume's stored values (HU for CT)",
        weights_sha256=sha,
        source=source,
        volume=recipe.to_dict(),
    )


def _finish(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# --- fmcib ------------------------------------------------------------------------------------------------------


def _fmcib_trunk():
    from monai.networks.nets import resnet50

    return resnet50(
        pretrained=False, n_input_channels=1, widen_factor=2, conv1_t_stride=2, feed_forward=False, bias_downsample=True
    )


def fmcib_weights_file(weights: str) -> Path:
    """The fmcib weights file: ``weights`` when it names one, else ``model_weights.torch`` in the working folder
    (where ``fmcib`` downloads it) or in the torch hub folder; a WeightsError naming what to fetch otherwise."""
    import torch

    if weights not in ("imagenet", "pretrained"):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: no such fmcib weights file (its {FMCIB_FILE}, from {FMCIB_URL}).")
        return path
    places = [Path.cwd() / FMCIB_FILE, Path(torch.hub.get_dir()) / "fmcib" / FMCIB_FILE]
    for p in places:
        if p.is_file():
            return p
    raise WeightsError(
        f"fmcib: the weights are not on this machine: fetch {FMCIB_URL} and pass it as --weights FILE (or put "
        f"{FMCIB_FILE} in {places[1].parent})."
    )


def _fmcib(weights: str):
    import torch

    if weights == "random":
        model = seeded_random(_fmcib_trunk, "fmcib")
        spec = _spec(
            "fmcib.random",
            "fmcib_resnet50",
            f"random(seed={RANDOM_SEED})",
            None,
            4096,
            FMCIB_RECIPE,
            "fmcib",
            "avgpool",
        )
        return spec, _finish(model)
    path = fmcib_weights_file(weights)
    trunk = _fmcib_trunk()

    def load():
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if "trunk_state_dict" in ckpt:  # the published file (VISSL)
            state = ckpt["trunk_state_dict"]
        elif "state_dict" in ckpt:  # a checkpoint of fmcib's own training
            state = {k.replace("model.trunk.", ""): v for k, v in ckpt["state_dict"].items() if "heads." not in k}
        else:
            raise WeightsError(f"{path}: no trunk_state_dict or state_dict: not an fmcib weights file.")
        trunk.load_state_dict(state, strict=True)  # fmcib loads leniently; featx never runs half-random weights

    load_user_weights(load, path, "fmcib's 3D ResNet-50")
    spec = _spec(
        "fmcib", "fmcib_resnet50", f"file:{path.name}", sha256_file(path), 4096, FMCIB_RECIPE, "fmcib", "avgpool"
    )
    return spec, _finish(trunk)


# --- CT-FM ------------------------------------------------------------------------------------------------------


def _pooled_encoder(encoder):
    """A SegResNet encoder whose last stage's map is averaged to one vector (CT-FM's feature recipe)."""
    import torch

    class PooledEncoder(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, x):
            return torch.nn.functional.adaptive_avg_pool3d(self.encoder(x)[-1], 1).flatten(1)

    return PooledEncoder(encoder)


def _ct_fm_encoder(config: dict):
    import inspect

    from monai.networks.nets.segresnet_ds import SegResEncoder

    known = inspect.signature(SegResEncoder).parameters
    return SegResEncoder(**{k: v for k, v in config.items() if k in known})


def _ct_fm(weights: str):
    folder = None
    if weights == "random":
        config = {"blocks_down": [1, 2, 2, 4, 4], "in_channels": 1, "init_filters": 32, "spatial_dims": 3}
        model = seeded_random(lambda: _pooled_encoder(_ct_fm_encoder(config)), "ct_fm")
        spec = _spec(
            "ct_fm.random",
            "ct_fm_segresenc",
            f"random(seed={RANDOM_SEED})",
            None,
            512,
            CT_FM_RECIPE,
            "ct_fm",
            "encoder[-1]+avgpool",
        )
        return spec, _finish(model)
    if weights not in ("imagenet", "pretrained"):
        folder = Path(weights).expanduser()
        if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
            raise WeightsError(
                f"{folder}: not a CT-FM folder (it needs config.json and model.safetensors, as save_pretrained or "
                f"'huggingface-cli download {CT_FM_REPO}' write them)."
            )
        config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    else:
        offline_unless_reachable()
        from huggingface_hub import hf_hub_download

        try:
            config_path = Path(hf_hub_download(CT_FM_REPO, "config.json"))
            weights_path = Path(hf_hub_download(CT_FM_REPO, "model.safetensors"))
        except Exception as exc:  # noqa: BLE001 - offline misses, gated or moved repos: one line
            first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)[:120]
            raise WeightsError(
                f"ct_fm: the weights are not on this machine ({first}). To run offline, "
                f"{hf_fetch_hint(CT_FM_REPO, 'config.json, model.safetensors')}, or pass the folder as --weights DIR."
            ) from None
    config = json.loads(config_path.read_text())
    encoder = _ct_fm_encoder(config)

    def load():
        from safetensors.torch import load_file

        encoder.load_state_dict(load_file(str(weights_path)), strict=True)

    load_user_weights(load, weights_path, "CT-FM's SegResNet encoder")
    dim = int(config.get("init_filters", 32)) * 2 ** (len(config.get("blocks_down", [1] * 5)) - 1)
    where = f"file:{folder.name}" if folder is not None else f"hf:{CT_FM_REPO}"
    spec = _spec(
        "ct_fm", "ct_fm_segresenc", where, sha256_file(weights_path), dim, CT_FM_RECIPE, "ct_fm", "encoder[-1]+avgpool"
    )
    return spec, _finish(_pooled_encoder(encoder))


# --- MedicalNet ------------------------------------------------------------------------------------------------


def _medicalnet_net(depth: int):
    from monai.networks.nets import resnet

    bias_downsample, shortcut = resnet.get_medicalnet_pretrained_resnet_args(depth)
    build = getattr(resnet, f"resnet{depth}")
    return build(
        pretrained=False,
        spatial_dims=3,
        n_input_channels=1,
        feed_forward=False,
        shortcut_type=shortcut,
        bias_downsample=bias_downsample,
    )


def medicalnet_weights_file(depth: int, weights: str) -> Path:
    """A MedicalNet ``.pth``: the named file, or the Hugging Face cache's (``resnet_N_23dataset.pth``, else
    ``resnet_N.pth``, the files MONAI's loader takes)."""
    if weights not in ("imagenet", "pretrained"):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: no such MedicalNet weights file (a resnet_{depth}.pth from MedicalNet).")
        return path
    offline_unless_reachable()
    from huggingface_hub import hf_hub_download

    repo = MEDICALNET_REPO.format(depth=depth)
    last = None
    for filename in (f"resnet_{depth}_23dataset.pth", f"resnet_{depth}.pth"):
        try:
            return Path(hf_hub_download(repo, filename))
        except Exception as exc:  # noqa: BLE001 - try the other file, then say what to fetch
            last = exc
    first = next((ln.strip() for ln in str(last).splitlines() if ln.strip()), type(last).__name__)[:120]
    raise WeightsError(
        f"medicalnet:resnet{depth}: the weights are not on this machine ({first}). To run offline, "
        f"{hf_fetch_hint(repo, f'resnet_{depth}_23dataset.pth or resnet_{depth}.pth')}, or pass the .pth as "
        "--weights FILE."
    )


def _medicalnet(depth: int, weights: str):
    import torch

    name, arch = f"medicalnet:resnet{depth}", f"medicalnet_resnet{depth}"
    dim = RECIPES[name][1]
    if weights == "random":
        model = seeded_random(lambda: _medicalnet_net(depth), name)
        spec = _spec(
            f"{name}.random", arch, f"random(seed={RANDOM_SEED})", None, dim, MEDICALNET_RECIPE, "medicalnet", "avgpool"
        )
        return spec, _finish(model)
    path = medicalnet_weights_file(depth, weights)
    net = _medicalnet_net(depth)

    def load():
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt.get("state_dict", ckpt)
        state = {
            k.replace("module.", ""): v
            for k, v in state.items()
            if not k.replace("module.", "").startswith(("conv_seg", "fc."))
        }  # the segmentation head and classifier are not features
        net.load_state_dict(state, strict=True)

    load_user_weights(load, path, f"MedicalNet's 3D ResNet-{depth}")
    spec = _spec(name, arch, f"file:{path.name}", sha256_file(path), dim, MEDICALNET_RECIPE, "medicalnet", "avgpool")
    return spec, _finish(net)


def weights_hint(name: str) -> str:
    """Where a 3D source's weights come from, for ``featx backbones``."""
    if name == "fmcib":
        return f"{FMCIB_FILE} ({FMCIB_URL}), --weights FILE"
    if name == "ct_fm":
        return f"Hugging Face {CT_FM_REPO}, or --weights DIR"
    return f"Hugging Face {MEDICALNET_REPO.format(depth=name.split('resnet')[1])}, or --weights FILE.pth"
