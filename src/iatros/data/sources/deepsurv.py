"""The DeepSurv benchmark splits (Katzman et al. 2018): WHAS, GBSG, METABRIC, SUPPORT as HDF5.

Each file holds `train` and `test` groups with `x` (features), `t` (time) and `e` (event). The
files carry no column names; the names below follow the DeepSurv paper and pycox, which
distributes the same arrays (ranges checked against the files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from iatros.data.home import RemoteFile, locate
from iatros.errors import CorruptDataError

DEEPSURV_REPO = "https://github.com/jaredleekatzman/DeepSurv (experiments/data)"

FILES = {
    "whas": "whas_train_test.h5",
    "gbsg": "gbsg_cancer_train_test.h5",
    "metabric": "metabric_IHC4_clinical_train_test.h5",
    "support": "support_train_test.h5",
}
FEATURES = {
    "whas": ["x0", "age", "x2", "bmi", "x4", "x5"],
    "gbsg": ["hormonal_therapy", "tumour_size_grade", "menopausal", "age", "positive_nodes",
             "progesterone", "oestrogen"],
    "metabric": ["MKI67", "EGFR", "PGR", "ERBB2", "hormone_treatment", "radiotherapy",
                 "chemotherapy", "ER_positive", "age"],
    "support": ["age", "sex", "race", "n_comorbidities", "diabetes", "dementia", "cancer",
                "mean_arterial_bp", "heart_rate", "respiration_rate", "temperature", "wbc",
                "sodium", "creatinine"],
}


@dataclass(frozen=True)
class SurvivalTable:
    features: pd.DataFrame
    time: np.ndarray
    event: np.ndarray
    split: np.ndarray
    path: Path


def remote_file(name: str) -> RemoteFile:
    return RemoteFile(f"deepsurv_survival/{FILES[name]}", homepage=DEEPSURV_REPO)


def load_deepsurv(name: str, root: Path) -> SurvivalTable:
    """Both parts of one DeepSurv split, stacked, with 'train' / 'test' per row."""
    import h5py

    path = locate(remote_file(name), Path(root))
    parts = []
    try:
        with h5py.File(path, "r") as f:
            for split in ("train", "test"):
                group = f[split]
                x, t, e = (np.asarray(group[k]) for k in ("x", "t", "e"))
                if not (len(x) == len(t) == len(e)):
                    raise CorruptDataError(f"{path}: {split} has {len(x)} rows of x, {len(t)} of t, "
                                           f"{len(e)} of e")
                parts.append((x, t, e, np.full(len(t), split)))
    except (OSError, KeyError) as e:
        raise CorruptDataError(f"{path}: not a readable DeepSurv HDF5 file ({e})") from e
    x, t, e, s = (np.concatenate(p) for p in zip(*parts, strict=True))
    names = FEATURES[name]
    if x.shape[1] != len(names):
        raise CorruptDataError(f"{path}: expected {len(names)} feature columns, found {x.shape[1]}")
    return SurvivalTable(pd.DataFrame(x.astype(np.float64), columns=names), t.astype(np.float64),
                         e.astype(np.int64), s, path)
