"""Arrays kept on disk: npz members unpacked into memory maps, row views that read lazily."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.data.arrays import RowView, Stacked, unpack_npz
from iatros.data.sources.medmnist import load_medmnist
from iatros.errors import CorruptDataError

KEYS = ["train_images", "train_labels"]


def _npz(path: Path, compressed: bool = True, n: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 2, (n, 1)).astype(np.int64)}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return arrays


@pytest.mark.parametrize("compressed", [True, False])
def test_unpacked_members_are_read_only_memory_maps_equal_to_the_archive(tmp_path, monkeypatch,
                                                                          compressed):
    monkeypatch.setattr("iatros.data.arrays.CHUNK_BYTES", 1000)  # many chunks per member
    arrays = _npz(tmp_path / "a.npz", compressed)
    maps = unpack_npz(tmp_path / "a.npz", KEYS, tmp_path / "store")
    for key in KEYS:
        assert isinstance(maps[key], np.memmap) and not maps[key].flags.writeable
        np.testing.assert_array_equal(maps[key], arrays[key])


def test_a_second_load_reuses_the_store_and_a_changed_archive_is_unpacked_again(tmp_path):
    _npz(tmp_path / "a.npz")
    unpack_npz(tmp_path / "a.npz", KEYS, tmp_path / "store")
    stamp = (tmp_path / "store" / "train_images.npy").stat().st_mtime_ns
    unpack_npz(tmp_path / "a.npz", KEYS, tmp_path / "store")
    assert (tmp_path / "store" / "train_images.npy").stat().st_mtime_ns == stamp
    newer = _npz(tmp_path / "a.npz", n=12)
    os.utime(tmp_path / "a.npz", ns=(stamp + 10**9, stamp + 10**9))
    maps = unpack_npz(tmp_path / "a.npz", KEYS, tmp_path / "store")
    np.testing.assert_array_equal(maps["train_images"], newer["train_images"])


def test_a_damaged_store_is_unpacked_again(tmp_path):
    arrays = _npz(tmp_path / "a.npz")
    unpack_npz(tmp_path / "a.npz", KEYS, tmp_path / "store")
    with open(tmp_path / "store" / "train_images.npy", "r+b") as fh:
        fh.truncate(200)
    maps = unpack_npz(tmp_path / "a.npz", KEYS, tmp_path / "store")
    np.testing.assert_array_equal(maps["train_images"], arrays["train_images"])


def test_a_truncated_member_is_corrupt_and_leaves_no_store(tmp_path):
    _npz(tmp_path / "a.npz", compressed=False)
    with zipfile.ZipFile(tmp_path / "a.npz") as z:
        raw = z.read("train_images.npy")
    with zipfile.ZipFile(tmp_path / "cut.npz", "w") as z:
        z.writestr("train_images.npy", raw[: len(raw) // 2])
        z.writestr("train_labels.npy", raw[:10])
    with pytest.raises(CorruptDataError, match="truncated"):
        unpack_npz(tmp_path / "cut.npz", KEYS, tmp_path / "store")
    assert not (tmp_path / "store").exists()
    assert not list(tmp_path.glob("store.tmp*"))


def test_missing_keys_and_pickled_objects_are_refused_by_name(tmp_path):
    np.savez(tmp_path / "few.npz", train_images=np.zeros((2, 3), np.uint8))
    with pytest.raises(CorruptDataError, match="lacks key.*'train_labels'"):
        unpack_npz(tmp_path / "few.npz", KEYS, tmp_path / "s1")
    np.savez(tmp_path / "obj.npz", train_images=np.array([{"x": 1}], dtype=object),
             train_labels=np.zeros(1))
    with pytest.raises(CorruptDataError, match="Python objects"):
        unpack_npz(tmp_path / "obj.npz", KEYS, tmp_path / "s2")


def test_the_store_records_the_archive_it_came_from(tmp_path):
    _npz(tmp_path / "a.npz")
    unpack_npz(tmp_path / "a.npz", KEYS, tmp_path / "store")
    index = json.loads((tmp_path / "store" / "store.json").read_text())
    assert index["source"] == "a.npz" and index["arrays"]["train_images"][0] == [40, 28, 28]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 6), min_size=1, max_size=4),
       picks=st.lists(st.integers(-30, 30), max_size=12), data=st.data())
def test_row_views_over_stacked_parts_equal_the_concatenated_array(sizes, picks, data):
    parts = [np.arange(n * 3, dtype=np.int32).reshape(n, 3) + 100 * k for k, n in enumerate(sizes)]
    whole = np.concatenate(parts)
    view = RowView(Stacked(parts))
    rows = [p % len(whole) for p in picks] if len(whole) else []
    np.testing.assert_array_equal(np.asarray(view[rows]), whole[rows].reshape(-1, 3))
    assert view.shape == whole.shape and len(view[rows]) == len(rows)
    if len(whole):
        mask = np.asarray(data.draw(st.lists(st.booleans(), min_size=len(whole),
                                             max_size=len(whole))))
        nested = view[mask][::2]
        np.testing.assert_array_equal(np.asarray(nested), whole[mask][::2])
        for i in range(len(nested)):
            np.testing.assert_array_equal(nested[i], whole[mask][::2][i])


def test_selecting_rows_of_a_view_reads_no_pixels():
    class Counting:
        shape, dtype, ndim = (10, 2), np.dtype(np.uint8), 2
        reads = 0

        def __len__(self) -> int:
            return 10

        def __getitem__(self, key):
            Counting.reads += 1
            return np.zeros(2, np.uint8)

    view = RowView(Counting())
    part = view[np.array([1, 4, 7])][[0, 2]]
    assert Counting.reads == 0 and len(part) == 2
    part[1]
    assert Counting.reads == 1


@pytest.mark.filterwarnings("ignore:.*does not match the official checksum:UserWarning")
def test_medmnist_memory_mapped_equals_the_in_memory_read(shared_data, tmp_path):
    if not (shared_data / "medmnist" / "pneumoniamnist.npz").is_file():
        pytest.skip("pneumoniamnist.npz is not in the shared data folder")
    eager = load_medmnist("pneumoniamnist", shared_data)
    mapped = load_medmnist("pneumoniamnist", shared_data, store=tmp_path)
    images, labels, split = mapped.stacked()
    expected, expected_labels, expected_split = eager.stacked()
    assert isinstance(images, RowView)
    np.testing.assert_array_equal(np.asarray(images), expected)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(split, expected_split)


@pytest.mark.filterwarnings("ignore:.*does not match the official checksum:UserWarning")
def test_a_medmnist_task_keeps_its_images_on_disk_through_its_split(shared_data):
    from iatros.settings import get_settings
    from iatros.tasks.registry import get_task

    if not (shared_data / "medmnist" / "pneumoniamnist.npz").is_file():
        pytest.skip("pneumoniamnist.npz is not in the shared data folder")
    task = get_task("pneumonia-cxr")
    data = task.load(shared_data)
    split = task.split(data)
    train = data.take(split.train)
    assert isinstance(data.inputs, RowView) and isinstance(train.inputs, RowView)
    assert isinstance(train.inputs.base.parts[0], np.memmap)
    assert len(train.inputs) == len(split.train) and train.inputs[0].shape == (28, 28)
    assert list((get_settings().cache_dir / "arrays").glob("pneumoniamnist-*/store.json"))


def test_rows_outside_stacked_arrays_are_an_index_error_not_another_row():
    stacked = Stacked([np.zeros((2, 3)), np.ones((3, 3))])
    for rows in ([5], [-6], [0, 9]):
        with pytest.raises(IndexError, match="outside the 5 rows"):
            stacked[rows]
