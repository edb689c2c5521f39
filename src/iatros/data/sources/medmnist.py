"""MedMNIST v2 / MedMNIST+: a catalog of the 18 official datasets and a checked reader of their npz files.

The catalog is plain data (names, tasks, labels, split sizes, file names, URLs and MD5s) taken from
MedMNIST's own `medmnist/info.py` (v3.0.2, Zenodo record 10519652). Files are read from the data home
(`<root>/medmnist/<file>`); nothing is downloaded unless `download_medmnist` is called.
"""

from __future__ import annotations

import difflib
import hashlib
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from iatros.data import home
from iatros.data.arrays import RowView, Stacked, unpack_npz
from iatros.errors import ConfigError, CorruptDataError
from iatros.kinds import TargetKind

HOMEPAGE = "https://medmnist.com/"
ZENODO_RECORD = "https://zenodo.org/records/10519652"
V2_ZENODO_RECORD = "https://zenodo.org/record/6496656"
SPLITS: tuple[str, ...] = ("train", "val", "test")
SIZES_2D: tuple[int, ...] = (28, 64, 128, 224)
SIZES_3D: tuple[int, ...] = (28, 64)
CC_BY = "CC BY 4.0"
CC_BY_NC = "CC BY-NC 4.0"

TASK_KINDS: dict[str, TargetKind] = {
    "binary-class": TargetKind.BINARY,
    "multi-class": TargetKind.MULTICLASS,
    "ordinal-regression": TargetKind.ORDINAL,
    "multi-label, binary-class": TargetKind.MULTILABEL,
}


@dataclass(frozen=True)
class MedMNISTFile:
    """One published resolution of a dataset: the official file name, its URL and MD5."""

    size: int
    filename: str
    url: str
    md5: str


@dataclass(frozen=True)
class MedMNISTInfo:
    """Everything the official catalog says about one dataset, as immutable facts.

    `legacy_md5` / `legacy_split_sizes` describe the 28-px file of the MedMNIST v2.1.0 release
    (Zenodo 6496656) for the five datasets that MedMNIST v3 re-generated with other counts; a local
    copy of that older file is recognised rather than reported as corrupt.
    """

    name: str
    dims: int
    task: str
    kind: TargetKind
    labels: tuple[str, ...]
    n_channels: int
    split_sizes: tuple[int, int, int]
    files: tuple[MedMNISTFile, ...]
    source: str
    licence: str
    legacy_md5: str | None = None
    legacy_split_sizes: tuple[int, int, int] | None = None

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(f.size for f in self.files)

    @property
    def n_classes(self) -> int:
        """Number of classes (single-label) or of label columns (multilabel)."""
        return len(self.labels)

    @property
    def official_counts(self) -> dict[str, int]:
        return dict(zip(SPLITS, self.split_sizes, strict=True))

    def file(self, size: int = 28) -> MedMNISTFile:
        """The official file at `size` pixels; ConfigError listing the published sizes otherwise."""
        for f in self.files:
            if f.size == size and not isinstance(size, bool):
                return f
        sizes = ", ".join(str(s) for s in self.sizes)
        raise ConfigError(
            f"{self.name} is not published at size {size!r}: MedMNIST offers it at {sizes} pixels "
            f"({self.dims}D)."
        )


def _entry(name: str, task: str, channels: int, counts: tuple[int, int, int], md5s: tuple[str, ...],
           labels: tuple[str, ...], source: str, licence: str = CC_BY,
           legacy: tuple[str, tuple[int, int, int]] | None = None) -> MedMNISTInfo:
    """Build a catalog entry; dims follow from how many sizes are published (4 for 2D, 2 for 3D)."""
    sizes = SIZES_2D if len(md5s) == len(SIZES_2D) else SIZES_3D
    files = []
    for size, md5 in zip(sizes, md5s, strict=True):
        filename = f"{name}.npz" if size == 28 else f"{name}_{size}.npz"
        files.append(MedMNISTFile(size, filename, f"{ZENODO_RECORD}/files/{filename}?download=1", md5))
    return MedMNISTInfo(
        name=name, dims=2 if sizes == SIZES_2D else 3, task=task, kind=TASK_KINDS[task],
        labels=labels, n_channels=channels, split_sizes=counts, files=tuple(files), source=source,
        licence=licence, legacy_md5=legacy[0] if legacy else None,
        legacy_split_sizes=legacy[1] if legacy else None,
    )


_ORGANS_2D = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver",
              "lung-left", "lung-right", "pancreas", "spleen")
_ORGANS_3D = ("liver", "kidney-right", "kidney-left", "femur-right", "femur-left", "bladder", "heart",
              "lung-right", "lung-left", "spleen", "pancreas")
_LITS = "LiTS abdominal CT (Bilic et al.), {} organ crops, 11 organs"

# MD5s in size order: 2D 28/64/128/224, 3D 28/64.
_ENTRIES = (
    _entry("pathmnist", "multi-class", 3, (89996, 10004, 7180),
           ("a8b06965200029087d5bd730944a56c1", "55aa9c1e0525abe5a6b9d8343a507616",
            "ac42d08fb904d92c244187169d1fd1d9", "2c51a510bcdc9cf8ddb2af93af1eadec"),
           ("adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
            "normal colon mucosa", "cancer-associated stroma", "colorectal adenocarcinoma epithelium"),
           "Kather et al. colorectal cancer H&E histology patches (NCT-CRC-HE-100K, CRC-VAL-HE-7K)"),
    _entry("chestmnist", "multi-label, binary-class", 1, (78468, 11219, 22433),
           ("02c8a6516a18b556561a56cbdd36c4a8", "9de6cd0b934ebb5b7426cfba5efbae16",
            "db107e5590b27930b62dbaf558aebee3", "45bd33e6f06c3e8cdb481c74a89152aa"),
           ("atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia",
            "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia"),
           "NIH ChestX-ray14 frontal chest X-rays (Wang et al.), 14 text-mined findings"),
    _entry("dermamnist", "multi-class", 3, (7007, 1003, 2005),
           ("0744692d530f8e62ec473284d019b0c7", "b70a2f5635c6199aeaa28c31d7202e1f",
            "2defd784463fa5243564e855ed717de1", "8974907d8e169bef5f5b96bc506ae45d"),
           ("actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
            "benign keratosis-like lesions", "dermatofibroma", "melanoma", "melanocytic nevi",
            "vascular lesions"),
           "HAM10000 dermatoscopic images of pigmented skin lesions (Tschandl et al.)", CC_BY_NC),
    _entry("octmnist", "multi-class", 1, (97477, 10832, 1000),
           ("c68d92d5b585d8d81f7112f81e2d0842", "e229e9440236b774d9f0dfef9d07bdaf",
            "0a97e76651ace45c5d943ee3f65b63ae", "abc493b6d529d5de7569faaef2773ba3"),
           ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
           "Kermany et al. retinal optical coherence tomography (OCT) scans"),
    _entry("pneumoniamnist", "binary-class", 1, (4708, 524, 624),
           ("28209eda62fecd6e6a2d98b1501bb15f", "8f4eceb4ccffa70c672198ea285246c6",
            "05b46931834c231683c68f40c47b2971", "d6a3c71de1b945ea11211b03746c1fe1"),
           ("normal", "pneumonia"),
           "Kermany et al. pediatric chest X-rays, pneumonia vs normal"),
    _entry("retinamnist", "ordinal-regression", 3, (1080, 120, 400),
           ("bd4c0672f1bba3e3a89f0e4e876791e4", "afda852cc34dcda56f86ad2b2457dbcc",
            "e48e916a24454daf90583d4e6efb1a18", "eae7e3b6f3fcbda4ae613ebdcbe35348"),
           ("0", "1", "2", "3", "4"),
           "DeepDRiD challenge fundus photographs, 5-level diabetic retinopathy grade"),
    _entry("breastmnist", "binary-class", 1, (546, 78, 156),
           ("750601b1f35ba3300ea97c75c52ff8f6", "742edef2a1fd1524b2efff4bd7ba9364",
            "363e4b3f8d712e9b5de15470a2aaadf1", "b56378a6eefa9fed602bb16d192d4c8b"),
           ("malignant", "normal, benign"),
           "Al-Dhabyani et al. breast ultrasound (BUSI), malignant vs normal or benign"),
    _entry("bloodmnist", "multi-class", 3, (11959, 1712, 3421),
           ("7053d0359d879ad8a5505303e11de1dc", "2b94928a2ae4916078ca51e05b6b800b",
            "adace1e0ed228fccda1f39692059dd4c", "b718ff6835fcbdb22ba9eacccd7b2601"),
           ("basophil", "eosinophil", "erythroblast",
            "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte",
            "monocyte", "neutrophil", "platelet"),
           "Acevedo et al. peripheral blood smear microscopy of normal blood cells, 8 cell types"),
    _entry("tissuemnist", "multi-class", 1, (165466, 23640, 47280),
           ("ebe78ee8b05294063de985d821c1c34b", "123ece2eba09d0aa5d698fda57103344",
            "61b955355d7425a89687b06cca3ce0c2", "b077128c4a949f0a4eb01517f9037b9c"),
           ("Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule",
            "Glomerular endothelial cells", "Interstitial endothelial cells", "Leukocytes", "Podocytes",
            "Proximal Tubule Segments", "Thick Ascending Limb"),
           "BBBC051 human kidney cortex cells (Broad Bioimage Benchmark Collection)"),
    _entry("organamnist", "multi-class", 1, (34561, 6491, 17778),
           ("68e3f8846a6bd62f0c9bf841c0d9eacc", "2dcccc29b88e6da5a01161ef20cda288",
            "eeae80d0a227a8d099027e1b3cfd3b60", "50747347e05c87dd3aaf92c49f9f3170"),
           _ORGANS_2D, _LITS.format("axial"),
           legacy=("866b832ed4eeba67bfb9edee1d5544e6", (34581, 6491, 17778))),
    _entry("organcmnist", "multi-class", 1, (12975, 2392, 8216),
           ("b9ceb9546e10131b32923c5bbeaea2b1", "3ce34a8724ea6f548e6db4744d03b6a9",
            "773c1f009daa3fe5d9a2a201b2a7ed94", "050f5e875dc056f6768abf94ec9995d1"),
           _ORGANS_2D, _LITS.format("coronal"),
           legacy=("0afa5834fb105f7705a7d93372119a21", (13000, 2392, 8268))),
    _entry("organsmnist", "multi-class", 1, (13932, 2452, 8827),
           ("9ab87b696fb54e2a387ebe992d6ed5f1", "53a6d115339d874c25e309a994ff46d3",
            "ded0c5fa01a95dc4978b956f613e9b8e", "b354719e553fbbb2513d5533f52a4cb1"),
           _ORGANS_2D, _LITS.format("sagittal"),
           legacy=("e5c39f1af030238290b9557d9503af9d", (13940, 2452, 8829))),
    _entry("organmnist3d", "multi-class", 1, (971, 161, 610),
           ("a0c5a1ff56af4f155c46d46fbb45a2fe", "58a2205adf14a9d0a189cb06dc78bf10"),
           _ORGANS_3D, _LITS.format("3D bounding-box"),
           legacy=("21f0a239e7f502e6eca33c3fc453c0b6", (972, 161, 610))),
    _entry("nodulemnist3d", "binary-class", 1, (1158, 165, 310),
           ("8755a7e9e05a4d9ce80a24c3e7a256f3", "c47c5b7d457bf6332200d2ea6d64ecd8"),
           ("benign", "malignant"),
           "LIDC-IDRI thoracic CT lung nodules, malignancy 1-2 vs 4-5"),
    _entry("adrenalmnist3d", "binary-class", 1, (1188, 98, 298),
           ("bbd3c5a5576322bc4cdfea780653b1ce", "17721accfe9fb005146a47d33bc54b2f"),
           ("normal", "hyperplasia"),
           "Zhongshan Hospital (Fudan University) adrenal gland shape masks from abdominal CT"),
    _entry("fracturemnist3d", "multi-class", 1, (1027, 103, 240),
           ("6aa7b0143a6b42da40027a9dda61302f", "f01d7e6316aedf4210da0da5b7437b42"),
           ("buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"),
           "RibFrac chest CT rib fractures, 3 fracture types"),
    _entry("vesselmnist3d", "binary-class", 1, (1335, 191, 382),
           ("b41fd4f7e7e2feedddb201585ecafa1b", "6bb274a8846e1097066dcd64e2c4520f"),
           ("vessel", "aneurysm"),
           "IntrA intracranial vessel segments reconstructed from MRA, vessel vs aneurysm",
           legacy=("2ba5b80617d705141f3f85627108fce8", (1335, 192, 382))),
    _entry("synapsemnist3d", "binary-class", 1, (1230, 177, 352),
           ("1235b78a3cd6280881dd7850a78eadb6", "43bd14ebf3af9d3dd072446fedc14d5e"),
           ("inhibitory synapse", "excitatory synapse"),
           "Adult rat cortex multi-beam electron microscopy (MitoEM volume), synapse type"),
)

CATALOG: dict[str, MedMNISTInfo] = {e.name: e for e in _ENTRIES}


def dataset_names(dims: int | None = None) -> tuple[str, ...]:
    """Catalog names in official order, optionally only the 2D or the 3D ones."""
    return tuple(n for n, e in CATALOG.items() if dims is None or e.dims == dims)


def dataset_info(name: str) -> MedMNISTInfo:
    """The catalog entry for `name` (case-insensitive); ConfigError with close matches otherwise."""
    key = str(name).strip().lower()
    if key in CATALOG:
        return CATALOG[key]
    close = difflib.get_close_matches(key, CATALOG, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(
        f"unknown MedMNIST dataset {name!r}.{hint} Known datasets: {', '.join(CATALOG)}."
    )


def remote_file(name: str, size: int = 28) -> home.RemoteFile:
    """Where the official file lives under the data root, its URL and MD5, for `home`."""
    info = dataset_info(name)
    f = info.file(size)
    return home.RemoteFile(
        relpath=f"medmnist/{f.filename}", url=f.url, md5=f.md5, homepage=HOMEPAGE,
        note=f"MedMNIST {info.name} ({info.licence}); see {ZENODO_RECORD}.",
    )


def download_medmnist(name: str, root: Path, size: int = 28) -> Path:
    """Explicitly download the official file into the data home, verifying its MD5."""
    return home.download(remote_file(name, size), Path(root))


@dataclass(frozen=True)
class MedMNISTArrays:
    """Checked arrays of one MedMNIST file, per split, with the counts a report should compare.

    `release` says which official release the counts were compared against: "v3" normally, or
    "v2.1.0" when the local 28-px file is byte-identical to the older release of a re-generated set.
    """

    info: MedMNISTInfo
    size: int
    path: Path
    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    counts: dict[str, int]
    official_counts: dict[str, int]
    release: str = "v3"

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def split(self) -> np.ndarray:
        """The split name of every row, in the order of `stacked()` (train, val, test)."""
        return np.concatenate([np.full(self.counts[s], s, dtype="<U5") for s in SPLITS])

    @property
    def count_mismatches(self) -> dict[str, tuple[int, int]]:
        """Splits whose row count differs from the official one: split -> (found, official)."""
        return {s: (self.counts[s], self.official_counts[s]) for s in SPLITS
                if self.counts[s] != self.official_counts[s]}

    def stacked(self) -> tuple[Any, np.ndarray, np.ndarray]:
        """All rows as one array each: images, labels and the split name per row.

        Memory-mapped images (`load_medmnist(..., store=...)`) stay on disk: they come back as
        a `RowView` over the three splits, which reads an image only when it is used.
        """
        parts = [self.images[s] for s in SPLITS]
        if any(isinstance(p, np.memmap) for p in parts):
            images: Any = RowView(Stacked(parts))
        else:
            images = np.concatenate(parts)
        labels = np.concatenate([self.labels[s] for s in SPLITS])
        return images, labels, self.split


_READ_ERRORS = (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error)


def _read_npz(path: Path, keys: list[str]) -> dict[str, np.ndarray]:
    """Read `keys` from an npz archive; any unreadable archive becomes CorruptDataError.

    The file is opened here, not by np.load, because np.load leaks its handle when the zip is broken.
    """
    try:
        with open(path, "rb") as fh:
            data = np.load(fh, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise CorruptDataError(f"{path} is a single .npy array, not a MedMNIST npz archive.")
            with data:
                missing = [k for k in keys if k not in data.files]
                if missing:
                    raise CorruptDataError(
                        f"{path} lacks key(s) {', '.join(map(repr, missing))}; it has "
                        f"{', '.join(data.files) or 'no arrays'}."
                    )
                return {k: np.asarray(data[k]) for k in keys}
    except _READ_ERRORS as e:
        raise CorruptDataError(
            f"{path} is not a readable npz archive ({type(e).__name__}: {e}); it may be truncated or "
            f"not a MedMNIST file: download it again."
        ) from e


def _mapped_npz(path: Path, keys: list[str], store: Path) -> dict[str, np.ndarray]:
    """Images memory-mapped from `store/<file>-<where>/` (unpacked on first use), labels in memory."""
    where = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:10]
    maps = unpack_npz(path, keys, store / f"{Path(path).stem}-{where}")
    return {k: (v if k.endswith("_images") else np.asarray(v)) for k, v in maps.items()}


def _as_uint8(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Images as uint8; integral values in 0..255 of another dtype are converted, anything else is corrupt."""
    if arr.dtype == np.uint8:
        return arr
    numeric = arr.dtype.kind in "iuf" and arr.size > 0 and bool(np.all(np.isfinite(arr)))
    if numeric and arr.min() >= 0 and arr.max() <= 255 and np.all(np.mod(arr, 1) == 0):
        return arr.astype(np.uint8)
    raise CorruptDataError(f"{path}: key {key!r} holds {arr.dtype} images that are not 8-bit pixel values.")


def _check_images(arr: np.ndarray, info: MedMNISTInfo, size: int, path: Path, key: str) -> np.ndarray:
    """Images in the canonical layout: (N,H,W), (N,H,W,3) or (N,D,H,W), side `size`."""
    spatial = info.dims
    if arr.ndim == spatial + 2 and arr.shape[-1] == 1 and info.n_channels == 1:
        arr = arr[..., 0]
    if info.n_channels == 1:
        expected, layout = spatial + 1, "(N, H, W)" if spatial == 2 else "(N, D, H, W)"
    else:
        expected, layout = spatial + 2, "(N, H, W, 3)"
    if arr.ndim != expected or (info.n_channels > 1 and arr.shape[-1] != info.n_channels):
        raise CorruptDataError(
            f"{path}: key {key!r} has shape {arr.shape}, but {info.name} ({info.dims}D, "
            f"{info.n_channels} channel(s)) images must be {layout}."
        )
    sides = arr.shape[1:1 + spatial]
    if any(s != size for s in sides):
        raise CorruptDataError(
            f"{path}: key {key!r} holds images of {'x'.join(map(str, sides))} pixels, expected {size} "
            f"per side for the size-{size} file."
        )
    return _as_uint8(arr, path, key)


def _check_labels(arr: np.ndarray, info: MedMNISTInfo, n: int, path: Path, key: str) -> np.ndarray:
    """Labels as int64: (N,) for single-label tasks, (N, L) for multilabel; values within the catalog."""
    if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and not np.all(np.mod(arr, 1) == 0)):
        raise CorruptDataError(f"{path}: key {key!r} holds {arr.dtype} values, not integer class labels.")
    if info.kind.label_matrix:
        if arr.ndim != 2 or arr.shape[1] != info.n_classes:
            raise CorruptDataError(
                f"{path}: key {key!r} has shape {arr.shape}; {info.name} labels must be "
                f"(N, {info.n_classes})."
            )
        allowed = "0 or 1"
        bad = (arr != 0) & (arr != 1)
    else:
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise CorruptDataError(
                f"{path}: key {key!r} has shape {arr.shape}; {info.name} labels must be (N,) or (N, 1)."
            )
        allowed = f"0..{info.n_classes - 1}"
        bad = (arr < 0) | (arr >= info.n_classes)
    if np.any(bad):
        found = sorted({int(v) if float(v).is_integer() else float(v) for v in np.unique(arr[bad])})
        raise CorruptDataError(
            f"{path}: key {key!r} has label value(s) {found[:10]} outside {allowed} ({info.name} classes: "
            f"{', '.join(map(repr, info.labels))})."
        )
    if len(arr) != n:
        raise CorruptDataError(f"{path}: key {key!r} has {len(arr)} labels but the images have {n} rows.")
    return arr.astype(np.int64)


def _spec_and_release(info: MedMNISTInfo, size: int, root: Path) -> tuple[home.RemoteFile, str]:
    """The spec to check the local file against: v3 normally, v2.1.0 when it is that exact older file."""
    spec = remote_file(info.name, size)
    path = Path(root) / spec.relpath
    if size == 28 and info.legacy_md5 and path.is_file() and home.file_digest(path, "md5") == info.legacy_md5:
        legacy_url = f"{V2_ZENODO_RECORD}/files/{info.name}.npz?download=1"
        return replace(spec, md5=info.legacy_md5, url=legacy_url), "v2.1.0"
    return spec, "v3"


def load_medmnist(name: str, root: Path, size: int = 28, store: Path | None = None) -> MedMNISTArrays:
    """Read and check `<root>/medmnist/<official file>`; never downloads.

    With `store` (a cache folder), the images are unpacked there once and memory-mapped
    instead of read into memory, so an archive larger than memory can be trained on.

    A checksum that differs from the official one only warns (re-saved copies are common); structural
    problems (missing keys, length mismatches, labels outside the classes, wrong image shape, an
    unreadable archive) raise CorruptDataError naming the file and the key.
    """
    info = dataset_info(name)
    size = info.file(size).size
    spec, release = _spec_and_release(info, size, Path(root))
    path = home.locate(spec, Path(root))
    keys = [f"{s}_{part}" for s in SPLITS for part in ("images", "labels")]
    raw = _read_npz(path, keys) if store is None else _mapped_npz(path, keys, Path(store))
    images: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for s in SPLITS:
        images[s] = _check_images(raw[f"{s}_images"], info, size, path, f"{s}_images")
        labels[s] = _check_labels(raw[f"{s}_labels"], info, len(images[s]), path, f"{s}_labels")
    sizes = info.legacy_split_sizes if release == "v2.1.0" and info.legacy_split_sizes else info.split_sizes
    return MedMNISTArrays(
        info=info, size=size, path=path, images=images, labels=labels,
        counts={s: len(images[s]) for s in SPLITS}, official_counts=dict(zip(SPLITS, sizes, strict=True)),
        release=release,
    )
