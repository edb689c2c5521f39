"""NIfTI-1/2 with nibabel, returned in the same axis order as DICOM volumes.

Axis order: nibabel indexes voxels (i, j, k), usually (X, Y, Z) = (left-right, posterior-anterior,
inferior-superior). We reverse the axes, so a volume is (k, j, i) = (D, H, W) = (Z, Y, X) and a 2D
image is (j, i) = (H, W); `spacing` and `meta["axcodes"]` are reversed to match. The voxel-to-world
`meta["affine"]` is nibabel's, i.e. still for (i, j, k) order. Values have the header's scl_slope and
scl_inter applied (Hounsfield units for CT volumes converted from DICOM).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from iatros.data.formats.image import ImageVolume, Window, apply_window, optional_import, resolve_window
from iatros.errors import ConfigError, CorruptDataError


def read_nifti(path: Path, *, window: Window = None, frame: int | None = None) -> ImageVolume:
    """Read a .nii / .nii.gz file: (H, W) or (D, H, W); a 4D file needs `frame` (e.g. a time point)."""
    path = Path(path)
    resolved = resolve_window(window)
    if resolved == "dicom":
        raise ConfigError(f"{path}: window='dicom' uses a DICOM file's own window; for NIfTI pass a "
                          f"preset name or a (center, width) pair")
    nib = optional_import("nibabel", "nibabel", path)
    from nibabel.filebasedimages import ImageFileError

    errors = (ImageFileError, OSError, EOFError, ValueError, zlib.error, struct.error)
    try:
        img = nib.load(path)
        shape = tuple(int(n) for n in img.shape)
        zooms = tuple(float(z) for z in img.header.get_zooms())
        axcodes = tuple(nib.aff2axcodes(img.affine)) if img.affine is not None else None
    except errors as e:
        raise CorruptDataError(f"{path}: cannot read as NIfTI ({type(e).__name__}: {e})") from e
    dims = list(shape)
    while len(dims) > 3 and dims[-1] == 1:  # (X, Y, Z, 1) is a 3D volume
        dims.pop()
    if len(dims) < 2 or len(dims) > 4:
        raise ConfigError(f"{path}: a {len(dims)}D NIfTI of shape {shape} is not supported "
                          f"(expected a 2D image, a 3D volume or a 4D series)")
    index: tuple[Any, ...] = (slice(None),) * min(len(dims), 3)
    meta: dict[str, Any] = {"original_shape": shape, "affine": np.asarray(img.affine), "window": None}
    if len(dims) == 4:
        if frame is None:
            raise ConfigError(f"{path} is 4D {shape} (e.g. a time series): pass frame=i, "
                              f"0 <= i < {dims[3]}, to read one 3D volume")
        if not -dims[3] <= frame < dims[3]:
            raise ConfigError(f"{path}: frame {frame} out of range; it has {dims[3]} volumes")
        meta["frame"] = frame % dims[3]
        index += (meta["frame"],)
    elif frame not in (None, 0, -1):
        raise ConfigError(f"{path}: frame {frame} requested but the file holds a single {len(dims)}D image")
    if len(dims) >= 3 and dims[2] == 1:  # a single slice stored as (X, Y, 1) is a 2D image
        index = index[:2] + (0,) + index[3:]
    index += (0,) * (len(shape) - len(index))
    try:
        data = np.asarray(img.dataobj[index], dtype=np.float32)
    except errors as e:
        raise CorruptDataError(f"{path}: cannot read the NIfTI voxels ({type(e).__name__}: {e}); the "
                               f"file may be truncated or corrupt") from e
    array = data.T  # (i, j[, k]) -> ([k,] j, i)
    spatial = array.ndim
    spacing = tuple(reversed(zooms[:spatial])) if len(zooms) >= spatial else None
    if axcodes is not None:
        meta["axcodes"] = tuple(reversed(axcodes[:spatial]))
    if resolved is not None:
        array, meta["window"] = apply_window(array, *resolved), resolved
    return ImageVolume(np.ascontiguousarray(array), spacing, None, str(path), meta)
