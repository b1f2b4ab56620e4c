"""The readers, in one table keyed by format (as MONAI's ``SUPPORTED_READERS``): which file is what, read how.

Every file featx reads goes through :func:`reader_for`: by suffix (``.nii.gz`` before ``.gz``), and by
content where suffixes say nothing (a folder or an extension-less file with the ``DICM`` marker is
DICOM); any other file is handed to Pillow (GIF, WebP ...), which names what it cannot decode. A 2D
raster file has an ``image`` reader (8-bit, for the networks); every format has a ``volume`` reader
(stored values with geometry, for masks, slicing and radiomics).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from featx.errors import ImageReadError
from featx.images.dicom import is_dicom_file, read_dicom
from featx.images.raster import read_image, read_values
from featx.images.sitk import read_sitk
from featx.images.volume import Volume

IMAGE, VOLUME = "image", "volume"


@dataclass(frozen=True)
class Reader:
    """How one format is read.

    Attributes
    ----------
    format : str
        The format's name, for messages.
    kind : {'image', 'volume'}
        A 2D raster image (one sample per file) or a volume (samples are its slices).
    suffixes : tuple of str
        Lower-case file name endings.
    volume : callable
        ``path -> Volume`` of the stored values.
    image : callable, optional
        ``(path, keep_grey, draft) -> PIL image`` (8-bit), for 2D raster formats.
    """

    format: str
    kind: str
    suffixes: tuple[str, ...]
    volume: Callable[[Path], Volume]
    image: Callable | None = None


SUPPORTED_READERS: dict[str, Reader] = {
    "png": Reader("PNG", IMAGE, (".png",), read_sitk, read_image),
    "jpeg": Reader("JPEG", IMAGE, (".jpg", ".jpeg"), read_sitk, read_image),
    "tiff": Reader("TIFF", IMAGE, (".tif", ".tiff"), read_sitk, read_image),
    "bmp": Reader("BMP", IMAGE, (".bmp",), read_sitk, read_image),
    "nifti": Reader("NIfTI", VOLUME, (".nii", ".nii.gz"), read_sitk),
    "nrrd": Reader("NRRD", VOLUME, (".nrrd", ".nhdr"), read_sitk),
    "metaimage": Reader("MetaImage", VOLUME, (".mha", ".mhd"), read_sitk),
    "dicom": Reader("DICOM", VOLUME, (".dcm",), read_dicom),
}
#: Files no suffix or marker identifies: whatever Pillow can open, as a 2D image
PILLOW = Reader("image (Pillow)", IMAGE, (), read_values, read_image)


def suffixes(kind: str | None = None) -> tuple[str, ...]:
    """Every known suffix (of one ``kind`` only, when given)."""
    return tuple(s for r in SUPPORTED_READERS.values() if kind in (None, r.kind) for s in r.suffixes)


def reader_for(path: str | Path) -> Reader:
    """The reader of ``path``: by suffix, DICOM by content (a folder, or the ``DICM`` marker), else Pillow's."""
    path = Path(path)
    name = path.name.lower()
    for reader in sorted(SUPPORTED_READERS.values(), key=lambda r: -max(len(s) for s in r.suffixes)):
        if name.endswith(reader.suffixes):
            return reader
    if path.is_dir() or (path.is_file() and is_dicom_file(path)):
        return SUPPORTED_READERS["dicom"]
    return PILLOW


def is_volume_path(path: str | Path) -> bool:
    """True for volume files and DICOM (a file or a series folder), whose samples are slices."""
    return reader_for(path).kind == VOLUME


def read_volume(path: str | Path) -> Volume:
    """Any supported file (or DICOM series folder) as a :class:`Volume` of its stored values.

    Raises
    ------
    ImageReadError
        Missing, unsupported or unreadable file, with the reason.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    return reader_for(path).volume(path)


def read_2d_image(path: str | Path, keep_grey: bool = False, draft: int | None = None):
    """A 2D raster file as an 8-bit RGB (or grey ``L``) PIL image (``draft``: :func:`~featx.images.raster.read_image`)."""
    reader = reader_for(path)
    if reader.image is None:
        raise ImageReadError(f"{path}: a {reader.format} volume has no single 2D image; give a slice index.")
    return reader.image(path, keep_grey, draft)
