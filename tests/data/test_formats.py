"""Image readers on real files: pydicom's and nibabel's test data, Pillow-written PNG/JPEG/TIFF."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iatros.data.formats import SUPPORTED_SUFFIXES, ImageVolume, read_image
from iatros.errors import ConfigError, CorruptDataError, MissingDataError


def dicom_file(*names: str) -> Path:
    """The first of `names` that pydicom has on disk (never downloads); skip the test if none is."""
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    for name in names:
        path = get_testdata_file(name, download=False)
        if path is not None:
            return Path(path)
    pytest.skip(f"pydicom test file(s) {', '.join(names)} not available offline")


def nifti_file(name: str) -> Path:
    pytest.importorskip("nibabel")
    from nibabel.testing import data_path

    path = Path(data_path) / name
    if not path.is_file():
        pytest.skip(f"nibabel test file {name} not installed")
    return path


def dcmread(path: Path):
    import pydicom

    return pydicom.dcmread(path)


# ---- DICOM -------------------------------------------------------------------------------------

def test_ct_rescale_gives_hounsfield_units():
    path = dicom_file("CT_small.dcm")
    from pydicom.pixels import apply_modality_lut

    ds = dcmread(path)
    image = read_image(path)
    expected = apply_modality_lut(ds.pixel_array, ds)
    np.testing.assert_allclose(image.array, expected)
    assert image.array.dtype == np.float32 and image.array.shape == (ds.Rows, ds.Columns)
    assert image.array.min() < -800 and image.array.min() == pytest.approx(
        ds.pixel_array.min() * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    assert image.modality == "CT" and image.ndim_spatial == 2 and image.channels == 1
    assert image.spacing == pytest.approx(tuple(float(s) for s in ds.PixelSpacing))
    assert image.meta["rescale"] == (1.0, -1024.0) and image.source == str(path)


def test_ct_windows_scale_to_unit_range_and_differ():
    path = dicom_file("CT_small.dcm")
    hu = read_image(path).array
    lung, bone = read_image(path, window="lung").array, read_image(path, window="bone").array
    for windowed in (lung, bone):
        assert windowed.min() >= 0.0 and windowed.max() <= 1.0
    assert not np.allclose(lung, bone)
    np.testing.assert_allclose(lung, np.clip((hu - (-600 - 750)) / 1500, 0, 1), atol=1e-6)
    np.testing.assert_allclose(read_image(path, window="mediastinum").array,
                               read_image(path, window=(50, 350)).array)
    assert read_image(path, window="lung").meta["window"] == (-600.0, 1500.0)


def test_dicom_window_uses_the_files_window():
    path = dicom_file("MR_small.dcm")
    ds = dcmread(path)
    image = read_image(path, window="dicom")
    assert image.meta["window"] == (float(ds.WindowCenter), float(ds.WindowWidth))
    assert image.array.min() >= 0.0 and image.array.max() <= 1.0 and image.array.max() > 0.5
    with pytest.raises(ConfigError, match="no WindowCenter"):
        read_image(dicom_file("CT_small.dcm"), window="dicom")


def test_bad_windows_are_config_errors():
    path = dicom_file("CT_small.dcm")
    with pytest.raises(ConfigError, match="lung"):
        read_image(path, window="liver")
    with pytest.raises(ConfigError, match="width"):
        read_image(path, window=(40, 0))


def test_monochrome1_is_inverted_relative_to_raw_pixels():
    path = dicom_file("6278")  # a MONOCHROME1 CR image from pydicom's dicomdirtests
    ds = dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    raw = ds.pixel_array.astype(float).ravel()
    for image in (read_image(path), read_image(path, window="dicom")):
        assert image.meta["inverted"] is True
        values = image.array.ravel()
        assert np.corrcoef(raw, values)[0, 1] < -0.99
        assert np.argmax(values) == np.argmin(raw)
    windowed = read_image(path, window="dicom").array
    assert windowed.min() >= 0.0 and windowed.max() <= 1.0


def test_multiframe_gives_a_volume_and_frame_picks_one():
    path = dicom_file("emri_small.dcm", "rtdose.dcm")
    ds = dcmread(path)
    volume = read_image(path)
    assert volume.array.shape == (int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    assert volume.ndim_spatial == 3 and volume.channels == 1 and volume.meta["frames"] == ds.NumberOfFrames
    one = read_image(path, frame=2)
    assert one.ndim_spatial == 2
    np.testing.assert_array_equal(one.array, volume.array[2])
    with pytest.raises(ConfigError, match="out of range"):
        read_image(path, frame=int(ds.NumberOfFrames))


def test_rgb_dicom_is_height_width_3():
    path = dicom_file("SC_rgb.dcm", "examples_rgb_color.dcm")
    ds = dcmread(path)
    image = read_image(path)
    assert image.array.shape == (ds.Rows, ds.Columns, 3)
    assert image.channels == 3 and image.ndim_spatial == 2 and image.color
    np.testing.assert_array_equal(image.array, ds.pixel_array)
    with pytest.raises(ConfigError, match="grayscale"):
        read_image(path, window="lung")


def test_truncated_dicom_is_corrupt_and_named(tmp_path):
    data = dicom_file("CT_small.dcm").read_bytes()
    path = tmp_path / "half.dcm"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDataError, match="truncated pixel data: expected 32768 bytes") as e:
        read_image(path)
    assert str(path) in str(e.value)


def test_text_file_named_dcm_is_corrupt(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("patient notes, not an image\n" * 20)
    with pytest.raises(CorruptDataError, match="not a DICOM file") as e:
        read_image(path)
    assert str(path) in str(e.value)


def test_dicom_without_pixels_is_corrupt():
    with pytest.raises(CorruptDataError, match="no pixel data"):
        read_image(dicom_file("rtplan.dcm"))


def test_missing_decoder_names_transfer_syntax_and_package():
    path = dicom_file("MR_small_jpeg_ls_lossless.dcm")
    from pydicom.pixels import get_decoder

    if get_decoder(dcmread(path).file_meta.TransferSyntaxUID).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    with pytest.raises(CorruptDataError, match="JPEG-LS Lossless") as e:
        read_image(path)
    assert "pylibjpeg" in str(e.value) and str(path) in str(e.value)


def test_dicom_found_by_preamble_without_suffix_and_legacy_headerless(tmp_path):
    source = dicom_file("CT_small.dcm")
    import pydicom

    expected = read_image(source).array
    for name in ("IM0001", "1.2.840.113619.2.55"):  # no suffix, and a UID-like name (".55")
        shutil.copy(source, tmp_path / name)
        np.testing.assert_array_equal(read_image(tmp_path / name).array, expected)
    ds = dcmread(source)
    ds.file_meta, ds.preamble = pydicom.dataset.FileMetaDataset(), None
    pydicom.dcmwrite(tmp_path / "legacy.dcm", ds, enforce_file_format=False, implicit_vr=True,
                     little_endian=True)
    np.testing.assert_array_equal(read_image(tmp_path / "legacy.dcm").array, expected)


def test_enhanced_multiframe_rescale_and_spacing_from_functional_groups(tmp_path):
    path = dicom_file("CT_small.dcm")
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = dcmread(path)
    raw = ds.pixel_array
    del ds.RescaleSlope, ds.RescaleIntercept, ds.PixelSpacing, ds.SliceThickness
    transform, measures, group = Dataset(), Dataset(), Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 2, -1000, "HU"
    measures.PixelSpacing, measures.SliceThickness = [0.5, 0.6], 1.25
    group.PixelValueTransformationSequence = Sequence([transform])
    group.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([group])
    ds.save_as(tmp_path / "enhanced.dcm")
    image = read_image(tmp_path / "enhanced.dcm")
    np.testing.assert_allclose(image.array, raw * 2.0 - 1000)
    assert image.spacing == (0.5, 0.6) and image.meta["rescale"] == (2.0, -1000.0)


# ---- NIfTI -------------------------------------------------------------------------------------

def test_nifti_3d_axes_reversed_with_spacing():
    nib = pytest.importorskip("nibabel")
    path = nifti_file("standard.nii.gz")  # (4, 5, 7) voxels of 1 x 3 x 2 mm
    image = read_image(path)
    assert image.array.shape == (7, 5, 4) and image.ndim_spatial == 3
    assert image.spacing == (2.0, 3.0, 1.0)
    np.testing.assert_array_equal(image.array, np.asarray(nib.load(path).dataobj, dtype=np.float32).T)
    assert image.meta["axcodes"] == ("S", "A", "R")
    anatomical = read_image(nifti_file("anatomical.nii"))
    assert anatomical.array.shape == (25, 41, 33) and anatomical.spacing == (2.0, 2.0, 2.0)


def test_nifti_4d_needs_a_frame():
    nib = pytest.importorskip("nibabel")
    path = nifti_file("functional.nii")  # (17, 21, 3, 20)
    with pytest.raises(ConfigError, match="frame"):
        read_image(path)
    image = read_image(path, frame=2)
    assert image.array.shape == (3, 21, 17) and image.spacing == (8.0, 4.0, 4.0)
    np.testing.assert_allclose(image.array, np.asarray(nib.load(path).dataobj[..., 2], np.float32).T)


def test_nifti_2d_and_window(tmp_path):
    nib = pytest.importorskip("nibabel")
    data = np.arange(12, dtype=np.int16).reshape(3, 4, 1) * 100 - 600
    img = nib.Nifti1Image(data, np.diag([0.5, 0.8, 3.0, 1.0]))
    nib.save(img, tmp_path / "slice.nii.gz")
    image = read_image(tmp_path / "slice.nii.gz")
    assert image.array.shape == (4, 3) and image.spacing == pytest.approx((0.8, 0.5))
    np.testing.assert_array_equal(image.array, data[:, :, 0].T)
    windowed = read_image(tmp_path / "slice.nii.gz", window="lung").array
    assert windowed.min() >= 0 and windowed.max() <= 1
    with pytest.raises(ConfigError, match="dicom"):
        read_image(tmp_path / "slice.nii.gz", window="dicom")


def test_truncated_nifti_is_corrupt(tmp_path):
    packed = gzip.compress(nifti_file("anatomical.nii").read_bytes())
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(CorruptDataError) as e:
        read_image(path)
    assert str(path) in str(e.value)
    garbage = tmp_path / "garbage.nii"
    garbage.write_bytes(b"not a nifti" * 10)
    with pytest.raises(CorruptDataError, match="garbage.nii"):
        read_image(garbage)


# ---- PNG / JPEG / TIFF --------------------------------------------------------------------------

def test_png_gray_16bit_rgb_rgba_palette(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([rgb, np.full((20, 30), 7, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    deep = (np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    Image.fromarray(deep).save(tmp_path / "deep.png")

    image = read_image(tmp_path / "gray.png")
    assert image.array.shape == (20, 30) and image.channels == 1 and image.spacing is None
    np.testing.assert_array_equal(image.array, gray)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png").array, deep)
    for name in ("rgb.png", "rgba.png"):
        image = read_image(tmp_path / name)
        assert image.array.shape == (20, 30, 3) and image.channels == 3
        np.testing.assert_array_equal(image.array, rgb)
    assert read_image(tmp_path / "palette.png").array.shape == (20, 30, 3)


def test_jpeg_and_tiff(tmp_path):
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "photo.JPG")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "scan.jpeg")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "scan.tif")
    assert read_image(tmp_path / "photo.JPG").array.shape == (16, 24, 3)
    assert read_image(tmp_path / "scan.jpeg").array.shape == (16, 24)
    np.testing.assert_array_equal(read_image(tmp_path / "scan.tif").array, rgb[..., 0])
    with pytest.raises(ConfigError, match="windowing"):
        read_image(tmp_path / "scan.tif", window="lung")


def test_truncated_or_fake_png_is_corrupt(tmp_path):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "fake.png").write_text("hello")
    for name in ("cut.png", "fake.png"):
        with pytest.raises(CorruptDataError, match=name):
            read_image(tmp_path / name)


def test_unknown_suffix_and_missing_file(tmp_path):
    path = tmp_path / "scan.bmp"
    path.write_bytes(b"BM" + bytes(200))
    with pytest.raises(ConfigError) as e:
        read_image(path)
    assert "scan.bmp" in str(e.value) and ".dcm" in str(e.value) and ".nii.gz" in str(e.value)
    assert ".nii.gz" in SUPPORTED_SUFFIXES and ".png" in SUPPORTED_SUFFIXES
    with pytest.raises(MissingDataError, match="nope.png"):
        read_image(tmp_path / "nope.png")


def test_image_volume_shape_properties():
    assert ImageVolume(np.zeros((4, 5, 6)), None, None, "x").ndim_spatial == 3
    color = ImageVolume(np.zeros((5, 6, 3), np.uint8), (1, 1), None, "x", color=True)
    assert color.ndim_spatial == 2 and color.channels == 3 and color.array.dtype == np.float32
    with pytest.raises(CorruptDataError):
        ImageVolume(np.zeros(5), None, None, "x")
