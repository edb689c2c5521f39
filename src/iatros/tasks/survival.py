"""Survival tasks: the DeepSurv benchmark splits and scikit-survival's packaged datasets.

Targets are a float array (N, 2): time and event (1 = event observed, 0 = censored).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.data.sources.csv_table import one_hot_text_columns
from iatros.data.sources.deepsurv import DEEPSURV_REPO, load_deepsurv
from iatros.kinds import Modality, TargetKind
from iatros.tasks.attributes import ADULT_BANDS, ELDERLY_BANDS, age_groups
from iatros.tasks.base import Task, TaskData
from iatros.tasks.outcomes import SURVIVAL_MODELS, survival_targets
from iatros.tasks.registry import register_task

log = logging.getLogger("iatros")



def _deepsurv_loader(name: str, attributes: Callable[[pd.DataFrame], pd.DataFrame]) -> Any:
    def load(root: Path) -> TaskData:
        table = load_deepsurv(name, root)
        return TaskData(inputs=table.features.to_numpy(np.float32),
                        targets=survival_targets(table.time, table.event, str(table.path)),
                        patient_ids=np.array([f"{name}-{s}-{i:05d}" for i, s in enumerate(table.split)]),
                        attributes=attributes(table.features).reset_index(drop=True),
                        feature_names=list(table.features.columns), split=table.split,
                        source=f"deepsurv:{table.path}")
    return load


def _ages(cuts: tuple[int, ...]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda f: pd.DataFrame({"age_group": age_groups(f["age"], cuts)})


def _support_attributes(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"sex": f["sex"].map(lambda v: f"sex={int(v)}"),
                         "age_group": age_groups(f["age"], ELDERLY_BANDS)})


DEEPSURV_TASKS = {
    "whas": ("Worcester Heart Attack Study (DeepSurv split): time to death after myocardial "
             "infarction", _ages(ELDERLY_BANDS)),
    "gbsg": ("Rotterdam (train) and German Breast Cancer Study Group (test) (DeepSurv split): "
             "recurrence-free survival", _ages(ADULT_BANDS)),
    "metabric": ("METABRIC breast cancer (DeepSurv split): 4 gene-expression markers and 5 clinical "
                 "variables, time to death", _ages(ADULT_BANDS)),
    "support": ("SUPPORT seriously ill hospitalised adults (DeepSurv split): time to death",
                _support_attributes),
}

for _name, (_description, _attrs) in DEEPSURV_TASKS.items():
    register_task(Task(
        name=f"survival-{_name}", description=_description, modality=Modality.TABULAR,
        target=TargetKind.SURVIVAL, loader=_deepsurv_loader(_name, _attrs),
        sensitive_attributes=tuple(_attrs(pd.DataFrame({"age": [50.0], "sex": [0.0]})).columns),
        primary_metric="c_index", default_model="deepsurv", models=SURVIVAL_MODELS,
        split_by="patient (DeepSurv's published train/test split; validation taken from train)",
        source=f"DeepSurv benchmark data ({DEEPSURV_REPO}); Katzman et al., BMC Med Res Methodol 2018",
        intended_use="Research: benchmarking survival models against the published DeepSurv figures.",
        limitations=("The published files carry no column names; names follow the DeepSurv paper "
                     "and pycox, and uncertain ones are left as x0, x2, ...",),
    ))


def _packaged(loader: str, time: str, event: str, drop: tuple[str, ...] = (),
              attributes: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
              **kwargs: Any) -> Callable[[Path], TaskData]:
    def load(_root: Path) -> TaskData:
        import sksurv.datasets as datasets

        frame, outcome = getattr(datasets, loader)(**kwargs)
        frame = frame.drop(columns=list(drop))
        features = one_hot_text_columns(frame).astype(np.float64)
        attrs = attributes(frame) if attributes else pd.DataFrame(index=range(len(frame)))
        return TaskData(inputs=features.to_numpy(np.float32),
                        targets=survival_targets(outcome[time], outcome[event], loader),
                        patient_ids=np.array([f"{loader[5:]}-{i:05d}" for i in range(len(frame))]),
                        attributes=attrs.reset_index(drop=True), feature_names=list(features.columns),
                        source=f"sksurv:{loader}")
    return load


def _sex_age(sex: str, age: str, codes: dict[Any, str] | None = None,
             cuts: tuple[int, ...] = ELDERLY_BANDS) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def attrs(f: pd.DataFrame) -> pd.DataFrame:
        labels = f[sex].astype(str).map(codes) if codes else f[sex].astype(str)
        return pd.DataFrame({"sex": labels.fillna("unknown"), "age_group": age_groups(f[age], cuts)})
    return attrs


PACKAGED = {
    "survival-whas500": ("Worcester Heart Attack Study, 500 patients: time to death",
                         _packaged("load_whas500", "lenfol", "fstat",
                                   attributes=_sex_age("gender", "age", {"0": "male", "1": "female"}))),
    "survival-gbsg2": ("German Breast Cancer Study Group 2, 686 patients: recurrence-free survival",
                       _packaged("load_gbsg2", "time", "cens",
                                 attributes=lambda f: pd.DataFrame(
                                     {"age_group": age_groups(f["age"], ADULT_BANDS)}))),
    "survival-veterans": ("Veterans' Administration lung cancer trial, 137 patients: time to death",
                          _packaged("load_veterans_lung_cancer", "Survival_in_days", "Status")),
    "survival-aids": ("AIDS Clinical Trials Group 320, 1151 patients: time to AIDS diagnosis or death",
                      _packaged("load_aids", "time", "censor",
                                attributes=_sex_age("sex", "age", {"1": "male", "2": "female"},
                                                    ADULT_BANDS), endpoint="aids")),
    # `chapter` (cause of death) exists only for those who died: it would leak the outcome
    "survival-flchain": ("Serum free light chains, Olmsted County, 7874 adults: time to death",
                         _packaged("load_flchain", "futime", "death", drop=("chapter",),
                                   attributes=_sex_age("sex", "age", {"F": "female", "M": "male"}))),
    "survival-gse7390": ("GSE7390 breast cancer, 198 patients: 76 genes plus clinical variables, time "
                         "to distant metastasis", _packaged("load_breast_cancer", "t.tdm", "e.tdm")),
}

for _name, (_description, _loader) in PACKAGED.items():
    register_task(Task(
        name=_name, description=_description, modality=Modality.TABULAR, target=TargetKind.SURVIVAL,
        loader=_loader,
        sensitive_attributes=(("sex", "age_group") if _name in ("survival-whas500", "survival-aids",
                                                                "survival-flchain")
                              else ("age_group",) if _name == "survival-gbsg2" else ()),
        primary_metric="c_index", default_model="deepsurv", models=SURVIVAL_MODELS,
        source="scikit-survival packaged dataset (sksurv.datasets)",
        intended_use="Research and teaching: prognostic modelling with censored follow-up.",
    ))
