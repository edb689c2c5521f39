"""MedMNIST catalog and reader: official facts, real shared files, and every corrupt-file path."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest

from iatros.data.sources import medmnist
from iatros.data.sources.medmnist import dataset_info, load_medmnist, remote_file
from iatros.errors import ConfigError, CorruptDataError, MissingDataError
from iatros.kinds import TargetKind

CHECKSUM_WARNING = "ignore:.*does not match the official checksum:UserWarning"


def _write(root: Path, name: str, arrays: dict[str, np.ndarray], filename: str | None = None) -> Path:
    path = root / "medmnist" / (filename or f"{name}.npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def _arrays(image_shape: tuple[int, ...], label_shape: tuple[int, ...] = (1,), n: int = 4,
            high: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny npz payload in the official layout: n rows per split."""
    rng = np.random.default_rng(seed)
    out = {}
    for split in medmnist.SPLITS:
        out[f"{split}_images"] = rng.integers(0, 256, (n, *image_shape), dtype=np.uint8)
        out[f"{split}_labels"] = rng.integers(0, high, (n, *label_shape)).astype(np.uint8)
    return out


# --- catalog -----------------------------------------------------------------------------------------


def test_catalog_lists_all_18_datasets_with_kinds_and_files():
    assert len(medmnist.CATALOG) == 18
    assert len(medmnist.dataset_names(2)) == 12 and len(medmnist.dataset_names(3)) == 6
    for info in medmnist.CATALOG.values():
        assert info.kind is medmnist.TASK_KINDS[info.task]
        assert info.sizes == (medmnist.SIZES_2D if info.dims == 2 else medmnist.SIZES_3D)
        assert all(len(f.md5) == 32 and f.url.endswith(f"/{f.filename}?download=1") for f in info.files)
        assert info.source and info.licence.startswith("CC BY")
    chest = dataset_info("chestmnist")
    assert chest.kind is TargetKind.MULTILABEL and chest.n_classes == 14
    assert dataset_info("retinamnist").kind is TargetKind.ORDINAL
    assert dataset_info("breastmnist").labels == ("malignant", "normal, benign")
    assert dataset_info("PneumoniaMNIST").n_channels == 1


def test_catalog_matches_the_official_v2_md5_list(shared_data):
    """28-px MD5s and split sizes equal MedMNIST v2.1.0's list; the 5 re-generated sets keep it as legacy."""
    listing = shared_data / "medmnist" / "OFFICIAL_MD5_from_medmnist_info.txt"
    if not listing.is_file():
        pytest.skip(f"{listing} is absent")
    official = {}
    for line in listing.read_text().splitlines():
        parts = line.split()
        if line.startswith("#") or len(parts) < 3:
            continue
        official[parts[0]] = (parts[1], tuple(int(c) for c in parts[-1].split("/")))
    assert set(official) == set(medmnist.CATALOG)
    regenerated = set()
    for name, (md5, counts) in official.items():
        info = dataset_info(name)
        if info.legacy_md5 is None:
            assert (info.file(28).md5, info.split_sizes) == (md5, counts), name
        else:
            regenerated.add(name)
            assert (info.legacy_md5, info.legacy_split_sizes) == (md5, counts), name
            assert info.file(28).md5 != md5
    assert regenerated == {"organamnist", "organcmnist", "organsmnist", "organmnist3d", "vesselmnist3d"}


def test_remote_file_names_urls_and_md5_per_size():
    spec = remote_file("pathmnist", 224)
    assert spec.relpath == "medmnist/pathmnist_224.npz"
    assert spec.url == "https://zenodo.org/records/10519652/files/pathmnist_224.npz?download=1"
    assert spec.md5 == "2c51a510bcdc9cf8ddb2af93af1eadec" and spec.homepage == "https://medmnist.com/"
    assert remote_file("nodulemnist3d").relpath == "medmnist/nodulemnist3d.npz"
    assert remote_file("nodulemnist3d", 64).relpath == "medmnist/nodulemnist3d_64.npz"


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(ConfigError) as e:
        dataset_info("pneumonia_mnist")
    assert "'pneumoniamnist'" in str(e.value) and "synapsemnist3d" in str(e.value)


@pytest.mark.parametrize(("name", "size", "listed"), [("organmnist3d", 128, "28, 64"),
                                                      ("dermamnist", 32, "28, 64, 128, 224")])
def test_unpublished_size_lists_the_sizes(name, size, listed):
    with pytest.raises(ConfigError, match=listed):
        remote_file(name, size)


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(MissingDataError, match="zenodo.org/records/10519652"):
        load_medmnist("bloodmnist", tmp_path)


# --- real shared files ------------------------------------------------------------------------------


def test_retinamnist_real_file_loads_without_warning(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_medmnist("retinamnist", shared_data)
    assert data.counts == data.official_counts == {"train": 1080, "val": 120, "test": 400}
    assert data.images["train"].shape == (1080, 28, 28, 3) and data.images["train"].dtype == np.uint8
    for split in medmnist.SPLITS:
        assert data.labels[split].ndim == 1 and data.labels[split].dtype == np.int64
    _, labels, split = data.stacked()
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}
    assert len(split) == 1600 and list(np.unique(split)) == ["test", "train", "val"]
    assert data.count_mismatches == {} and data.release == "v3"


def test_breastmnist_resaved_copy_loads_and_warns(shared_data):
    with pytest.warns(UserWarning, match="official checksum"):
        data = load_medmnist("breastmnist", shared_data)
    assert data.counts == {"train": 546, "val": 78, "test": 156}
    assert data.labels["val"].shape == (78,) and set(np.unique(data.labels["train"])) == {0, 1}
    assert data.images["test"].shape == (156, 28, 28)


def test_pneumoniamnist_short_training_split_is_recorded(shared_data):
    with pytest.warns(UserWarning, match="official checksum"):
        data = load_medmnist("pneumoniamnist", shared_data)
    assert data.counts["train"] == 3882 and data.official_counts["train"] == 4708
    assert data.count_mismatches == {"train": (3882, 4708)}


# --- corrupt files ----------------------------------------------------------------------------------


def test_garbage_bytes_are_corrupt_and_named(tmp_path):
    path = tmp_path / "medmnist" / "breastmnist.npz"
    path.parent.mkdir()
    path.write_bytes(b"not a zip")
    with pytest.warns(UserWarning), pytest.raises(CorruptDataError, match="breastmnist.npz"):
        load_medmnist("breastmnist", tmp_path)


def test_truncated_real_file_is_corrupt(shared_data, tmp_path):
    blob = (shared_data / "medmnist" / "retinamnist.npz").read_bytes()
    for cut in (len(blob) // 2, len(blob) - 10):
        path = tmp_path / "medmnist" / "retinamnist.npz"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(blob[:cut])
        with pytest.warns(UserWarning), pytest.raises(CorruptDataError, match="retinamnist.npz"):
            load_medmnist("retinamnist", tmp_path)


def test_truncated_member_data_is_corrupt(tmp_path):
    """A zip whose directory survives but whose compressed member is cut short."""
    path = _write(tmp_path, "breastmnist", _arrays((28, 28)))
    np.savez_compressed(path, **_arrays((28, 28), n=50))
    blob = bytearray(path.read_bytes())
    blob[100:400] = bytes(300)  # overwrite compressed image bytes inside the first member
    path.write_bytes(bytes(blob))
    with pytest.warns(UserWarning), pytest.raises(CorruptDataError, match="breastmnist.npz"):
        load_medmnist("breastmnist", tmp_path)


@pytest.mark.filterwarnings(CHECKSUM_WARNING)
@pytest.mark.parametrize(("mutate", "key", "words"), [
    (lambda a: a.pop("val_labels"), "val_labels", "lacks"),
    (lambda a: a.update(test_labels=a["test_labels"][:-1]), "test_labels", "3 labels"),
    (lambda a: a.update(train_labels=np.full((4, 1), 2, np.uint8)), "train_labels", "outside 0..1"),
    (lambda a: a.update(val_images=a["val_images"][:, :, :, None].repeat(3, 3)), "val_images", "(N, H, W)"),
    (lambda a: a.update(test_images=a["test_images"][:, :14]), "test_images", "14x28"),
    (lambda a: a.update(train_labels=np.zeros((4, 2), np.uint8)), "train_labels", "(N,) or (N, 1)"),
])
def test_structural_problems_name_file_and_key(tmp_path, mutate, key, words):
    arrays = _arrays((28, 28))
    mutate(arrays)
    _write(tmp_path, "breastmnist", arrays)
    with pytest.raises(CorruptDataError) as e:
        load_medmnist("breastmnist", tmp_path)
    message = str(e.value)
    assert "breastmnist.npz" in message and key in message and words in message


@pytest.mark.filterwarnings(CHECKSUM_WARNING)
def test_wrong_rank_for_3d_dataset(tmp_path):
    _write(tmp_path, "nodulemnist3d", _arrays((28, 28)))
    with pytest.raises(CorruptDataError, match=r"train_images.*\(N, D, H, W\)"):
        load_medmnist("nodulemnist3d", tmp_path)


# --- synthetic layouts ------------------------------------------------------------------------------


@pytest.mark.filterwarnings(CHECKSUM_WARNING)
def test_synthetic_3d_volume_loads(tmp_path):
    _write(tmp_path, "organmnist3d", _arrays((28, 28, 28), high=11, n=3))
    data = load_medmnist("organmnist3d", tmp_path)
    assert data.images["val"].shape == (3, 28, 28, 28) and data.labels["val"].shape == (3,)
    assert data.info.dims == 3 and data.count_mismatches["train"] == (3, 971)


@pytest.mark.filterwarnings(CHECKSUM_WARNING)
def test_synthetic_multilabel_and_64px_load(tmp_path):
    _write(tmp_path, "chestmnist", _arrays((64, 64), label_shape=(14,)), filename="chestmnist_64.npz")
    data = load_medmnist("chestmnist", tmp_path, size=64)
    assert data.images["train"].shape == (4, 64, 64)
    assert data.labels["test"].shape == (4, 14) and data.labels["test"].dtype == np.int64
    images, labels, split = data.stacked()
    assert images.shape == (12, 64, 64) and labels.shape == (12, 14)
    assert list(split[:5]) == ["train"] * 4 + ["val"]


def test_legacy_v2_file_is_recognised(tmp_path, monkeypatch):
    """A byte-exact copy of the older release is checked against that release's MD5 and counts."""
    path = _write(tmp_path, "organsmnist", _arrays((28, 28), high=11, n=2))
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    info = dataclasses.replace(dataset_info("organsmnist"), legacy_md5=md5, legacy_split_sizes=(2, 2, 2))
    monkeypatch.setitem(medmnist.CATALOG, "organsmnist", info)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_medmnist("organsmnist", tmp_path)
    assert data.release == "v2.1.0" and data.count_mismatches == {}


def test_download_is_explicit_and_verified(tmp_path, monkeypatch):
    """download_medmnist goes through home.download with the official spec (here a local file URL)."""
    source = _write(tmp_path / "remote", "bloodmnist", _arrays((28, 28, 3), high=8))
    spec = dataclasses.replace(remote_file("bloodmnist"), url=source.as_uri(),
                               md5=hashlib.md5(source.read_bytes()).hexdigest())
    monkeypatch.setattr(medmnist, "remote_file", lambda name, size=28: spec)
    root = tmp_path / "home"
    assert medmnist.download_medmnist("bloodmnist", root) == root / "medmnist" / "bloodmnist.npz"
    assert load_medmnist("bloodmnist", root).images["val"].shape == (4, 28, 28, 3)
