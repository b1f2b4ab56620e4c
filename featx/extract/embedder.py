"""``FeatxEmbedder``: a featx backbone (ONNX Runtime) as a scikit-learn transformer for a user's own Pipeline.

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = make_pipeline(FeatxEmbedder("resnet18"), LogisticRegression(max_iter=1000))
    >>> model.fit(["a.png", "b.png", ...], ["benign", "malignant", ...])

Inputs are image paths (PNG/JPEG/TIFF, DICOM; a volume file gives its first slice
unless a ``(path, slice)`` pair is given), PIL images, or uint8 arrays ``(H, W)`` /
``(H, W, 3)``. Reading, intensity windowing and
preprocessing are exactly those of ``featx extract``, so the features equal the
store's. ``fit`` learns nothing from the data: it loads the weights and exports
(or reuses) the ONNX model; the runtime session is rebuilt after unpickling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from featx.backbones.export import export_onnx
from featx.backbones.resolve import resolve_backbone
from featx.dataset.manifest import Sample
from featx.engines.runtime import OrtRuntime
from featx.errors import FeatxError
from featx.images.loader import SampleReader
from featx.images.preprocess import Preprocessor


class FeatxEmbedder(TransformerMixin, BaseEstimator):
    """Frozen-backbone embeddings as a transformer.

    Parameters
    ----------
    backbone : str
        A registered backbone (``featx backbones``), e.g. ``resnet18``, ``efficientnet_lite0``.
    weights : str
        ``imagenet`` (downloaded and cached the torchvision way), a local ``.pth`` file, or
        ``random`` (tests only: the features carry no ImageNet knowledge).
    layer : str, optional
        Where to cut the network (default: the pooled penultimate layer).
    window : str
        Intensity policy for volumes and DICOM (as ``featx extract --window``).
    provider : str
        ONNX Runtime provider: ``auto``, ``cpu``, ``cuda``, ``tensorrt``.
    batch_size : int
    models_dir : str
        Cache folder of ONNX exports.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        weights: str = "imagenet",
        layer: str | None = None,
        window: str = "auto",
        provider: str = "auto",
        batch_size: int = 32,
        models_dir: str = "models_onnx",
    ):
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.window = window
        self.provider = provider
        self.batch_size = batch_size
        self.models_dir = models_dir

    def fit(self, X=None, y=None):
        """Load the backbone and export (or reuse) its ONNX model; ``X`` and ``y`` are not used."""
        resolved = resolve_backbone(self.backbone, self.weights, self.layer, self.models_dir)
        spec = resolved.spec
        exported = resolved.exported or export_onnx(spec, resolved.model, self.models_dir)
        self.spec_ = spec
        self.onnx_path_ = str(exported.onnx_path)
        self.onnx_sha256_ = exported.onnx_sha256
        self.n_features_out_ = spec.feature_dim
        self._session = None
        return self

    def _runtime(self):
        if getattr(self, "_session", None) is None:
            self._session = OrtRuntime(self.onnx_path_, provider=self.provider)
        return self._session

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_session"] = None  # an ONNX Runtime session is not picklable; rebuilt on first use
        return state

    def transform(self, X) -> np.ndarray:
        """Embeddings ``(n, D)`` float32 of the images in ``X`` (paths, PIL images or uint8 arrays)."""
        check_is_fitted(self, "onnx_path_")
        pre, reader = Preprocessor.from_spec(self.spec_), SampleReader(self.window, keep_grey=True)
        items = list(X)
        out = np.empty((len(items), self.n_features_out_), np.float32)
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            batch = np.stack([pre(self._image(x, reader, start + i)) for i, x in enumerate(chunk)])
            out[start : start + len(chunk)] = self._runtime().run(batch)
        return out

    @staticmethod
    def _image(x, reader, i: int):
        if isinstance(x, Image.Image):
            return x if x.mode in ("RGB", "L") else x.convert("RGB")
        if isinstance(x, np.ndarray):
            if x.dtype != np.uint8 or x.ndim not in (2, 3):
                raise FeatxError(
                    f"input {i}: arrays must be uint8 (H, W) or (H, W, 3), got {x.dtype} {x.shape}; "
                    "window other data to 0-255 first, or pass the file path."
                )
            return Image.fromarray(x)
        path, slice_ = x if isinstance(x, tuple) else (x, None)
        path = Path(path)
        if not path.exists():
            raise FeatxError(f"input {i}: {path} does not exist.")
        return reader(Sample(sample_id=str(i), path=path, slice=slice_))

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "onnx_path_")
        return np.array([f"{self.spec_.name}_{i}" for i in range(self.n_features_out_)], dtype=object)
