"""Read a medical or ordinary image file into one `ImageVolume`, choosing the reader by suffix.

DICOM (`dicom.py`) and NIfTI (`nifti.py`) readers are imported only when such a file is read, so
pydicom and nibabel stay optional; PNG, JPEG and TIFF are read here with Pillow.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from iatros.errors import ConfigError, CorruptDataError, MissingDataError

DICOM_SUFFIXES = (".dcm", ".dicom")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SUPPORTED_SUFFIXES: tuple[str, ...] = DICOM_SUFFIXES + NIFTI_SUFFIXES + PILLOW_SUFFIXES

# CT display windows as (center, width) in Hounsfield units.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "abdomen": (40.0, 400.0),
}

Window = str | tuple[float, float] | None


@dataclass
class ImageVolume:
    """Pixels as float32 plus what is needed to interpret them.

    `array` is (H, W) for a 2D image, (D, H, W) for a volume (DICOM frames, NIfTI slices), with a
    trailing RGB axis of 3 when `color` is True: (H, W, 3) or (D, H, W, 3). `spacing` is in mm and
    follows the spatial axes of `array` ((row, column) or (slice, row, column)); None when unknown.
    """

    array: np.ndarray
    spacing: tuple[float, ...] | None
    modality: str | None
    source: str
    meta: dict[str, Any] = field(default_factory=dict)
    color: bool = False

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array, dtype=np.float32)
        spatial = self.array.ndim - (1 if self.color else 0)
        if spatial not in (2, 3) or (self.color and self.array.shape[-1] != 3):
            raise CorruptDataError(f"{self.source}: unexpected image shape {self.array.shape} "
                                   f"(color={self.color}); expected (H, W[, 3]) or (D, H, W[, 3])")
        if self.spacing is not None:
            self.spacing = tuple(float(s) for s in self.spacing)

    @property
    def ndim_spatial(self) -> int:
        """2 for an image, 3 for a volume."""
        return self.array.ndim - (1 if self.color else 0)

    @property
    def channels(self) -> int:
        """3 for RGB, 1 for grayscale."""
        return int(self.array.shape[-1]) if self.color else 1


def resolve_window(window: Window) -> tuple[float, float] | str | None:
    """A preset name or (center, width) as (center, width); "dicom" stays as is; bad values raise."""
    if window is None:
        return None
    if isinstance(window, str):
        name = window.lower()
        if name == "dicom":
            return "dicom"
        if name in WINDOW_PRESETS:
            return WINDOW_PRESETS[name]
        raise ConfigError(f"unknown window {window!r}: use one of {', '.join(WINDOW_PRESETS)}, "
                          f"'dicom' (the file's own window) or a (center, width) tuple")
    try:
        center, width = (float(v) for v in window)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"window {window!r} must be a preset name or a (center, width) pair") from e
    if not (np.isfinite(center) and np.isfinite(width)) or width <= 0:
        raise ConfigError(f"window {window!r}: the width must be a positive number")
    return center, width


def apply_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map [center - width/2, center + width/2] linearly onto [0, 1], clipping outside it."""
    low = center - width / 2.0
    return np.clip((np.asarray(values, dtype=np.float64) - low) / width, 0.0, 1.0).astype(np.float32)


def suffix_of(path: Path) -> str:
    """The lower-case suffix, counting `.nii.gz` as one."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def has_dicom_preamble(path: Path) -> bool:
    """True when bytes 128-131 read 'DICM', the marker of a DICOM Part 10 file."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def optional_import(module: str, package: str, path: Path) -> ModuleType:
    """Import an optional dependency, or say which package reading `path` needs."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"reading {path} needs the {package!r} package: pip install {package}") from e


def read_image(path: str | Path, *, window: Window = None, frame: int | None = None) -> ImageVolume:
    """Read a DICOM, NIfTI, PNG, JPEG or TIFF file into an `ImageVolume`.

    `window` (DICOM and NIfTI only) is a CT preset ("lung", "mediastinum", "bone", "brain",
    "abdomen"), a (center, width) pair, or "dicom" for the file's own window; windowed values are in
    [0, 1]. Without it values stay in scanner units (Hounsfield units for CT). `frame` picks one
    frame of a 4D NIfTI, a multi-frame DICOM or a multi-page TIFF.
    """
    path = Path(path)
    if not path.exists():
        raise MissingDataError(f"image file {path} not found")
    if not path.is_file():
        raise ConfigError(f"{path} is not a file")
    resolved = resolve_window(window)
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, (int, np.integer))):
        raise ConfigError(f"frame must be an integer index, not {frame!r}")
    suffix = suffix_of(path)
    if suffix in DICOM_SUFFIXES or (suffix not in SUPPORTED_SUFFIXES and has_dicom_preamble(path)):
        from iatros.data.formats import dicom

        return dicom.read_dicom(path, window=window, frame=frame)
    if suffix in NIFTI_SUFFIXES:
        from iatros.data.formats import nifti

        return nifti.read_nifti(path, window=window, frame=frame)
    if suffix in PILLOW_SUFFIXES:
        if resolved is not None:
            raise ConfigError(f"{path}: windowing applies to DICOM and NIfTI values in scanner units, "
                              f"not to {suffix} images whose values are already display levels")
        return read_pillow(path, frame=frame)
    raise ConfigError(f"{path}: unsupported image type {suffix or '(no suffix)'!r}; supported are "
                      f"{', '.join(SUPPORTED_SUFFIXES)} and DICOM files with a 'DICM' preamble")


_GRAY_MODES = {"1", "L", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"}


def read_pillow(path: Path, *, frame: int | None = None) -> ImageVolume:
    """PNG / JPEG / TIFF: grayscale as (H, W), everything else as RGB (H, W, 3) with alpha dropped."""
    pil = optional_import("PIL.Image", "pillow", path)
    errors = (OSError, ValueError, SyntaxError, EOFError, pil.DecompressionBombError)
    try:
        with pil.open(path) as img:
            n_frames = int(getattr(img, "n_frames", 1))
            if frame is not None:
                if not -n_frames <= frame < n_frames:
                    raise ConfigError(f"{path}: frame {frame} out of range; it has {n_frames} frame(s)")
                img.seek(frame % n_frames)
            img.load()
            mode, fmt = img.mode, img.format
            if mode in _GRAY_MODES:
                array = np.asarray(img.convert("L") if mode == "1" else img)
            elif mode in ("LA", "La"):
                array = np.asarray(img.getchannel("L"))
            else:
                array = np.asarray(img.convert("RGB"))
    except ConfigError:
        raise
    except errors as e:  # UnidentifiedImageError is an OSError
        raise CorruptDataError(f"{path}: cannot read as an image ({type(e).__name__}: {e}); "
                               f"the file may be truncated or corrupt") from e
    return ImageVolume(array, None, None, str(path), {"format": fmt, "mode": mode, "frames": n_frames},
                       color=array.ndim == 3)
