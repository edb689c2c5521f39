"""A folder of the user's own images with a labels CSV: the checks at load time and check_readable."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iatros.data.sources.image_folder import load_image_folder
from iatros.errors import CorruptDataError, MissingDataError


def _png(path: Path, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    for i, name in enumerate(["a.png", "sub/b.png", "c.png"]):
        _png(root / name, 50 * i)
    (root / "labels.csv").write_text(
        "image,label,patient_id,age,split\n"
        "a.png,pneumonia,007,61,train\n"
        "sub/b.png,normal,007,61,train\n"
        "c.png,normal,012,45,test\n")
    return root


def test_happy_path(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_image_folder(folder, folder / "labels.csv", split_column="split")
    assert len(data) == 3
    assert data.paths == [folder / "a.png", folder / "sub" / "b.png", folder / "c.png"]
    assert list(data.labels) == ["pneumonia", "normal", "normal"]
    assert list(data.patient_ids) == ["007", "007", "012"]  # leading zeros kept
    assert list(data.splits) == ["train", "train", "test"]
    assert list(data.attributes.columns) == ["age"] and list(data.attributes["age"]) == [61, 61, 45]
    assert data.unreferenced == []
    assert data.check_readable() == 3


def test_csv_found_relative_to_folder_and_patient_column_optional(folder):
    (folder / "plain.csv").write_text("file,y\na.png,1\nc.png,0\n")
    with pytest.warns(UserWarning, match="not listed"):
        data = load_image_folder(folder, "plain.csv", image_column="file", label_column="y",
                                 patient_column=None)
    assert list(data.labels) == [1, 0] and list(data.patient_ids) == ["a.png", "c.png"]
    assert data.unreferenced == [folder / "sub" / "b.png"]


def test_missing_image_files_are_listed_with_a_count(folder):
    rows = "".join(f"gone{i}.png,normal,p{i}\n" for i in range(7))
    (folder / "labels.csv").write_text("image,label,patient_id\na.png,normal,p0\n" + rows)
    with pytest.raises(MissingDataError) as e:
        load_image_folder(folder, folder / "labels.csv")
    message = str(e.value)
    assert "7 of 8" in message and "gone0.png" in message and "and 2 more" in message
    assert "gone6.png" not in message and "labels.csv" in message


def test_missing_column_lists_present_columns(folder):
    with pytest.raises(CorruptDataError) as e:
        load_image_folder(folder, folder / "labels.csv", label_column="diagnosis")
    assert "diagnosis" in str(e.value) and "image, label, patient_id, age, split" in str(e.value)
    assert "labels.csv" in str(e.value)


def test_empty_folder_and_empty_csv(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "labels.csv").write_text("image,label,patient_id\n")
    with pytest.raises(MissingDataError, match="empty"):
        load_image_folder(empty, empty / "labels.csv")
    _png(empty / "a.png")
    with pytest.raises(CorruptDataError, match="no rows"):
        load_image_folder(empty, empty / "labels.csv")
    (empty / "labels.csv").write_text("")
    with pytest.raises(CorruptDataError, match="empty"):
        load_image_folder(empty, empty / "labels.csv")
    with pytest.raises(MissingDataError, match="not found"):
        load_image_folder(tmp_path / "nowhere", "labels.csv")


def test_duplicate_rows_are_rejected(folder):
    (folder / "labels.csv").write_text("image,label,patient_id\na.png,1,p\n./a.png,0,p\nc.png,0,q\n")
    with pytest.raises(CorruptDataError, match="more than one row") as e:
        load_image_folder(folder, folder / "labels.csv")
    assert "lines 2, 3" in str(e.value)


def test_check_readable_reports_every_unreadable_file(folder):
    (folder / "c.png").write_bytes((folder / "c.png").read_bytes()[:40])
    (folder / "notes.dcm").write_text("not dicom")
    (folder / "labels.csv").write_text(
        "image,label,patient_id\na.png,1,p\nc.png,0,q\nnotes.dcm,1,r\nsub/b.png,0,s\n")
    data = load_image_folder(folder, folder / "labels.csv")
    assert data.check_readable(limit=1) == 1
    with pytest.raises(CorruptDataError) as e:
        data.check_readable()
    message = str(e.value)
    assert "2 of 4" in message
    assert str(folder / "c.png") in message and str(folder / "notes.dcm") in message
    assert "not a DICOM file" in message and str(folder / "a.png") not in message
