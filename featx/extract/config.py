"""``ExtractConfig``: every setting of ``featx extract``, validated once, recorded whole in the provenance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from featx.backbones.sources import POOLS
from featx.config import Choice, Config, setting
from featx.engines.fidelity import DEFAULT_MIN_FIDELITY, check_min_fidelity
from featx.engines.runtime import PRECISIONS, PROVIDERS, RUNTIMES
from featx.errors import ConfigError, FeatxError
from featx.extract.pipeline import DEFAULT_LOOKAHEAD
from featx.failures import DEFAULT_MAX_FAILURES, check_max_failures
from featx.images.intensity import check_policy
from featx.images.planes import DEFAULT_PLANE_MM, PLANES
from featx.images.preprocess import FITS, INTERPOLATIONS
from featx.store.open import check_shard

TTA = Choice("test-time augmentation", ("none", "hflip"))
DECODE = Choice("decoding worker kind", ("thread", "process"))


@dataclass(frozen=True)
class ExtractConfig(Config):
    """How ``featx extract`` computes a feature set (``featx.toml`` section ``[extract]``).

    Settings marked *identity* change the numbers: they are part of the feature set's identity, a
    rerun with other values under the same name is refused, and ``featx predict`` repeats them.
    """

    section = "extract"
    manifest: Path | None = setting(
        None, "Manifest CSV (columns path,label[,subject,split,id]) or a folder of class sub-folders."
    )
    backbone: str | None = setting(
        None,
        "Backbone: a registered name (see 'featx backbones'), timm:NAME, open_clip:NAME, hf:REPO, xrv:NAME, "
        "onnx:PATH or ARCH.ft-RUN.",
        identity=True,
    )
    store: Path | None = setting(None, "HDF5 feature store (created if missing).")
    weights: str = setting(
        "imagenet",
        "'imagenet'/'pretrained' (the standard cache: $TORCH_HOME, the Hugging Face cache), 'random' (tests "
        "only), a weights file, or (timm:) a folder written by save_for_hf or a Hugging Face snapshot.",
        identity=True,
    )
    name: str | None = setting(None, "Feature-set name in the store (default: the backbone name).")
    batch_size: int = setting(32, "Images per inference batch.", minimum=1)
    workers: int | None = setting(None, "Image decoding workers (default: CPU count, max 8).", minimum=1)
    decode: str = setting("thread", "Decoding workers: thread (measured faster) or process.", choice=DECODE)
    provider: str = setting(
        "auto",
        "ONNX Runtime provider: auto (TensorRT, CUDA, CPU: the first that works), cpu, cuda, tensorrt.",
        choice=PROVIDERS,
    )
    runtime: str = setting(
        "auto",
        "auto (ONNX Runtime; OpenVINO for bf16/int8 on a CPU; torch on a GPU whose ONNX Runtime lacks GPU "
        "providers), onnx, openvino or torch.",
        choice=RUNTIMES,
    )
    precision: str = setting(
        "fp32",
        "fp32; fp16 (TensorRT, or torch on a GPU); bf16 (OpenVINO on CPUs with native bf16, or torch); int8 "
        "(calibrated on the manifest's images; OpenVINO or ONNX Runtime); auto: the fastest that passes the "
        "fidelity gate on this machine.",
        choice=PRECISIONS,
        identity=True,
    )
    calibration: int = setting(
        128, "int8: images of the manifest its quantization is calibrated on (spread evenly).", minimum=8
    )
    min_fidelity: float = setting(
        DEFAULT_MIN_FIDELITY,
        "fp16/bf16 gate: the mean cosine to fp32's features on 32 calibration images that the reduced "
        "precision must reach (every image: 1 - 10 x the shortfall; 0.99 -> 0.9), else it is refused.",
        check=check_min_fidelity,
    )
    compile: bool = setting(False, "torch.compile the model (torch runtime; large GPU jobs).")
    models_dir: Path = setting(Path("models_onnx"), "Folder of cached ONNX exports.")
    overwrite: bool = setting(False, "Recompute all rows (and replace a feature set made with other settings).")
    max_failures: str = setting(
        DEFAULT_MAX_FAILURES, "Abort after more than N (or P%) unreadable images.", check=check_max_failures
    )
    window: str = setting(
        "auto",
        "Intensity window for volumes/DICOM: auto, file, brain, lung, abdomen, bone, percentile[:LO:HI], minmax.",
        check=check_policy,
        identity=True,
    )
    layer: str | None = setting(
        None,
        "Where to cut the backbone (see 'featx backbones'): e.g. pool5 for VGG, or "
        "layer2+layer3+layer4 for pooled multi-layer features.",
        identity=True,
    )
    tta: str = setting(
        "none",
        "Test-time augmentation: none, or hflip (mean of the image's and its mirror's features).",
        choice=TTA,
        identity=True,
    )
    interpolation: str | None = setting(
        None, "Resize filter instead of the weights' own: bilinear or bicubic.", choice=INTERPOLATIONS, identity=True
    )
    pool: str | None = setting(
        None,
        "How a transformer's tokens become the vector: cls, mean (patch tokens), cls+mean (DINOv2's linear "
        "probe); avg for CNNs (default: the source's own).",
        choice=Choice("pool", POOLS),
        identity=True,
    )
    input_size: int | None = setting(
        None,
        "Build the model at this input side (a ViT's position embeddings are interpolated by timm; timm: only).",
        minimum=32,
        identity=True,
    )
    fit: str | None = setting(
        None,
        "How an image meets the square input: crop (resize + centre crop, the weights' own), pad (the whole "
        "image letterboxed, aspect kept: lesions at the border stay) or stretch.",
        choice=FITS,
        identity=True,
    )
    resize_to_input: bool = setting(
        False,
        "Resize the short side straight to the input size (e.g. 299) instead of the weights' resize + centre crop.",
        identity=True,
    )
    jpeg_draft: bool = setting(
        False,
        "Decode JPEG files at a reduced scale (1/2, 1/4, 1/8: the DCT's own) that still covers the resize: "
        "several times faster for large photos, slightly other numbers (its own feature set, NAME~draft).",
        identity=True,
    )
    planes: str = setting(
        "none",
        "2.5D for 2D backbones: orthogonal (axial, coronal, sagittal planes through each lesion's centre) or "
        "adjacent (slices k-1, k, k+1) as the three channels.",
        choice=PLANES,
        identity=True,
    )
    plane_mm: float = setting(
        DEFAULT_PLANE_MM,
        "--planes orthogonal: each plane's side in mm (isotropic pixels of the volume's finest spacing).",
        minimum=1,
        identity=True,
    )
    ray: str | None = setting(
        None,
        "Run on a Ray cluster: auto (the running cluster, or $RAY_ADDRESS), local (start one "
        "here) or ray://head:10001. Needs featx[ray].",
    )
    shard: str | None = setting(
        None,
        "Compute block I of N of the manifest (I/N, 0 <= I < N), or 'slurm': this job's block in a SLURM job "
        "array. The jobs write one store at once; a rerun of a killed job resumes its block.",
        check=check_shard,
    )
    lookahead: int = setting(DEFAULT_LOOKAHEAD, "Batches decoded ahead of the model (bounds memory).", minimum=1)

    def validate(self) -> None:
        if self.ray is not None and (self.runtime in ("torch", "openvino") or self.precision in ("int8", "auto")):
            raise ConfigError(
                "runs the backbone on ONNX Runtime in Ray actors, at fp32 or fp16; use runtime onnx (or auto) and "
                "one of those precisions with it.",
                "ray",
            )
        if self.precision == "bf16" and self.runtime == "onnx":
            raise ConfigError("bf16 runs on OpenVINO or torch; choose runtime openvino or torch.", "precision")
        if self.precision == "int8" and self.runtime == "torch":
            raise ConfigError("int8 runs on ONNX Runtime or OpenVINO; choose runtime onnx or openvino.", "precision")

    @classmethod
    def from_provenance(cls, prov: dict, **overrides) -> ExtractConfig:
        """The config that made a feature set (its provenance's ``config``; ``args`` for sets made before configs
        were recorded), with only the settings that change the numbers, plus ``overrides``.

        Raises
        ------
        FeatxError
            When the provenance records neither (made by a featx too old to repeat).
        """
        if prov.get("config"):
            values = prov["config"].get("values") or {}
        elif prov.get("args"):
            values = prov["args"]
        else:
            raise FeatxError(
                f"the feature set's provenance does not record how it was extracted (made by featx "
                f"{prov.get('featx_version')}); re-extract and refit with this featx version."
            )
        identity = {k: values.get(k) for k in cls.identity_fields()}
        return cls.resolve(("argument", overrides), ("provenance", identity))

    @property
    def identity_values(self) -> dict:
        return {k: getattr(self, k) for k in self.identity_fields()}
