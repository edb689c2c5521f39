"""Image file readers: DICOM, NIfTI, PNG/JPEG/TIFF into one `ImageVolume` (float32 + spacing + meta)."""

from iatros.data.formats.image import SUPPORTED_SUFFIXES, WINDOW_PRESETS, ImageVolume, read_image

__all__ = ["SUPPORTED_SUFFIXES", "WINDOW_PRESETS", "ImageVolume", "read_image"]
