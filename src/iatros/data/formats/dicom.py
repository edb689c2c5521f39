"""DICOM with pydicom 3: pixel values in scanner units (Hounsfield units for CT), optional windowing.

Steps: decode the pixels (saying which package to install when a compressed transfer syntax has no
decoder), apply the modality LUT or RescaleSlope/RescaleIntercept, then either keep those values or
window them to [0, 1]. MONOCHROME1 (high = dark) is inverted so that high = bright everywhere.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iatros.data.formats.image import (
    WINDOW_PRESETS,
    ImageVolume,
    Window,
    apply_window,
    optional_import,
    resolve_window,
)
from iatros.errors import ConfigError, CorruptDataError, IatrosError

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# What pydicom raises on malformed files and pixel data (decoders raise RuntimeError / ValueError).
READ_ERRORS = (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, IndexError,
               NotImplementedError, RuntimeError, struct.error)


def _lookup(ds: Any, keyword: str, macro: str) -> Any:
    """`keyword` at the top level, else in the shared functional groups of an enhanced multi-frame."""
    if keyword in ds:
        return ds[keyword].value
    try:
        return ds.SharedFunctionalGroupsSequence[0][macro][0][keyword].value
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def _first(value: Any) -> float:
    """The first of a multi-valued element (WindowCenter may hold several), as a float."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = value[0]
    return float(value)


def _read_dataset(path: Path) -> Any:
    """The dataset; files without the Part 10 header are accepted only if they still hold an image."""
    pydicom = optional_import("pydicom", "pydicom", path)
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path)
    except InvalidDicomError as e:
        ds = _read_headerless(pydicom, path)
        if ds is None:
            raise CorruptDataError(f"{path}: not a DICOM file (no 'DICM' marker at byte 128 and no "
                                   f"image found when reading it as a raw dataset)") from e
        return ds
    except READ_ERRORS as e:
        raise CorruptDataError(f"{path}: cannot read as DICOM ({type(e).__name__}: {e}); the file "
                               f"may be truncated or corrupt") from e


def _read_headerless(pydicom: Any, path: Path) -> Any:
    """A legacy (ACR-NEMA style) dataset without preamble and file meta, or None if it is not one."""
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
            if "PixelData" not in ds or "Rows" not in ds or "Columns" not in ds:
                return None
            implicit, little = ds.original_encoding
    except Exception:  # force=True on a non-DICOM file fails in arbitrary ways: all mean "not DICOM"
        return None
    if "TransferSyntaxUID" not in ds.file_meta:
        syntax = ImplicitVRLittleEndian if implicit else (
            ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        ds.file_meta.TransferSyntaxUID = syntax
    return ds


def _decode(ds: Any, path: Path) -> np.ndarray:
    """The stored pixel values, with clear errors for missing, truncated or undecodable pixel data."""
    from pydicom.pixels import get_decoder
    from pydicom.pixels.utils import get_expected_length

    if not any(k in ds for k in PIXEL_KEYWORDS):
        what = ds.get("Modality") or ds.get("SOPClassUID", "unknown type")
        raise CorruptDataError(f"{path}: no pixel data (this DICOM object, {what}, holds no image)")
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        if keyword not in ds:
            raise CorruptDataError(f"{path}: pixel data but no {keyword} element; cannot shape the image")
    file_meta = getattr(ds, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if syntax is None:
        raise CorruptDataError(f"{path}: the file meta has no Transfer Syntax UID; cannot decode pixels")
    if "PixelData" in ds:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError as e:
            raise CorruptDataError(f"{path}: pixel data in transfer syntax {syntax.name} ({syntax}) "
                                   f"cannot be decoded by pydicom") from e
        if not decoder.is_available:
            raise CorruptDataError(
                f"{path}: pixel data compressed as {syntax.name} ({syntax}) and no decoder for it is "
                f"installed; install one of: {'; '.join(decoder.missing_dependencies)}")
        if not syntax.is_compressed:
            try:
                expected = get_expected_length(ds, "bytes")
            except READ_ERRORS:
                expected = None
            if expected is not None and len(ds.PixelData) < expected:
                raise CorruptDataError(f"{path}: truncated pixel data: expected {expected} bytes, "
                                       f"found {len(ds.PixelData)}")
    try:
        return np.asarray(ds.pixel_array)
    except READ_ERRORS as e:
        raise CorruptDataError(f"{path}: cannot decode the pixel data ({syntax.name}): "
                               f"{type(e).__name__}: {e}") from e


def _rescale(ds: Any) -> tuple[float, float] | None:
    """RescaleSlope/Intercept of an enhanced multi-frame (shared groups); classic files return None
    here because pydicom's apply_modality_lut reads their top-level elements itself."""
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        return None
    slope = _lookup(ds, "RescaleSlope", "PixelValueTransformationSequence")
    intercept = _lookup(ds, "RescaleIntercept", "PixelValueTransformationSequence")
    if slope is None or intercept is None:
        return None
    return float(slope), float(intercept)


def _modality(values: np.ndarray, ds: Any) -> np.ndarray:
    """Stored values -> scanner units (modality LUT, or rescale slope and intercept)."""
    from pydicom.pixels import apply_modality_lut

    shared = _rescale(ds)
    if shared is not None:
        return values.astype(np.float64) * shared[0] + shared[1]
    return np.asarray(apply_modality_lut(values, ds), dtype=np.float64)


def _stored_range(ds: Any) -> np.ndarray:
    """The smallest and largest storable value, from BitsStored and PixelRepresentation."""
    bits = int(ds.get("BitsStored", ds.BitsAllocated))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1], dtype=np.int64)
    return np.array([0, 2**bits - 1], dtype=np.int64)


def _dicom_window(values: np.ndarray, ds: Any, path: Path) -> tuple[np.ndarray, Any]:
    """The file's own VOI LUT or window (apply_voi_lut), scaled to [0, 1]."""
    from pydicom.pixels import apply_voi_lut

    if ds.get("VOILUTSequence"):
        descriptor = ds.VOILUTSequence[0].LUTDescriptor
        entries = np.arange(int(descriptor[1]), int(descriptor[1]) + (int(descriptor[0]) or 2**16))
        lut = np.asarray(apply_voi_lut(entries, ds), dtype=np.float64)
        out = np.asarray(apply_voi_lut(np.rint(values).astype(np.int64), ds), dtype=np.float64)
        low, high, used = lut.min(), lut.max(), "VOI LUT"
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        out = np.asarray(apply_voi_lut(values, ds), dtype=np.float64)
        low, high = np.asarray(apply_voi_lut(np.array([-1e12, 1e12]), ds), dtype=np.float64)
        used = (_first(ds.WindowCenter), _first(ds.WindowWidth))
    else:
        center = _lookup(ds, "WindowCenter", "FrameVOILUTSequence")
        width = _lookup(ds, "WindowWidth", "FrameVOILUTSequence")
        if center is None or width is None:
            raise ConfigError(f"window='dicom' but {path} has no WindowCenter/WindowWidth or VOI LUT; "
                              f"pass a preset ({', '.join(WINDOW_PRESETS)}) or a (center, width) pair")
        used = (_first(center), _first(width))
        return apply_window(values, *used), used
    if high <= low:
        return np.zeros(values.shape, np.float32), used
    return np.clip((out - low) / (high - low), 0.0, 1.0).astype(np.float32), used


def _spacing(ds: Any, ndim_spatial: int) -> tuple[tuple[float, ...] | None, str | None]:
    """(row, column) or (slice, row, column) spacing in mm, and which element it came from."""
    source = "PixelSpacing"
    pixel = _lookup(ds, "PixelSpacing", "PixelMeasuresSequence")
    if pixel is None:
        pixel, source = ds.get("ImagerPixelSpacing"), "ImagerPixelSpacing"
    if pixel is None or len(pixel) != 2:
        return None, None
    in_plane = (float(pixel[0]), float(pixel[1]))
    if ndim_spatial == 2:
        return in_plane, source
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        depth = _lookup(ds, keyword, "PixelMeasuresSequence")
        if depth not in (None, ""):
            return (float(depth), *in_plane), f"{keyword}+{source}"
    return None, None


def read_dicom(path: Path, *, window: Window = None, frame: int | None = None) -> ImageVolume:
    """Read one DICOM file: (H, W), (frames, H, W), or with a trailing RGB axis for colour images.

    pydicom parses elements lazily, so a damaged element fails wherever it is first read: any
    such failure becomes a CorruptDataError naming the file."""
    try:
        return _read_dicom(Path(path), window=window, frame=frame)
    except IatrosError:
        raise
    except Exception as e:  # noqa: BLE001 - the reader's boundary: a damaged file, not a bug here
        raise CorruptDataError(f"{path}: damaged DICOM ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}); the "
                               f"file is truncated or corrupt: export it again") from e


def _read_dicom(path: Path, *, window: Window = None, frame: int | None = None) -> ImageVolume:
    path = Path(path)
    resolved = resolve_window(window)
    ds = _read_dataset(path)
    raw = _decode(ds, path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1))
    modality = str(ds.get("Modality", "")).strip() or None
    meta: dict[str, Any] = {"photometric_interpretation": photometric, "frames": frames,
                            "transfer_syntax": ds.file_meta.TransferSyntaxUID.name,
                            "window": None, "inverted": False}
    if frame is not None:
        if frames > 1:
            if not -frames <= frame < frames:
                raise ConfigError(f"{path}: frame {frame} out of range; it has {frames} frames")
            raw, meta["frame"] = raw[frame], frame % frames
        elif frame not in (0, -1):
            raise ConfigError(f"{path}: frame {frame} requested but the file holds a single frame")
    color = photometric == "PALETTE COLOR" or samples == 3
    if color:
        if resolved is not None:
            raise ConfigError(f"{path}: windowing applies to grayscale images, this one is {photometric}")
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            raw = apply_color_lut(raw, ds)
            if int(ds.RedPaletteColorLookupTableDescriptor[2]) == 16:
                raw = raw / 257.0  # 16-bit palette entries -> the 0-255 range of other colour images
        array = np.asarray(raw, dtype=np.float32)
        meta["color_space"] = "RGB"  # pydicom converts YBR_FULL(_422) to RGB when decoding
    else:
        if isinstance(window, str) and window.lower() in WINDOW_PRESETS and modality not in (None, "CT"):
            warnings.warn(f"{path}: window preset {window!r} is in Hounsfield units (CT) but the file's "
                          f"modality is {modality}", stacklevel=3)
        values = _modality(raw, ds)
        if "ModalityLUTSequence" in ds:
            meta["modality_lut"] = True
        elif "RescaleSlope" in ds:
            meta["rescale"] = (float(ds.RescaleSlope), float(ds.get("RescaleIntercept", 0)))
        elif _rescale(ds) is not None:
            meta["rescale"] = _rescale(ds)
        if resolved is None:
            array = values
            if photometric == "MONOCHROME1":
                low, high = _modality(_stored_range(ds), ds)
                array = (low + high) - values
        else:
            if resolved == "dicom":
                array, meta["window"] = _dicom_window(values, ds, path)
            else:
                array, meta["window"] = apply_window(values, *resolved), resolved
            if photometric == "MONOCHROME1":
                array = 1.0 - array
        meta["inverted"] = photometric == "MONOCHROME1"
    ndim_spatial = array.ndim - (1 if color else 0)
    spacing, meta["spacing_from"] = _spacing(ds, ndim_spatial)
    if spacing is None:
        meta.pop("spacing_from")
    return ImageVolume(array, spacing, modality, str(path), meta, color=color)

