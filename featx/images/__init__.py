"""Image reading and preprocessing (no torch: runs in light worker threads/processes)."""
from featx.images.preprocess import Preprocessor
from featx.images.readers import read_image

__all__ = ["Preprocessor", "read_image"]
