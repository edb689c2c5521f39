"""Tabular tasks on real data that installs with packages (WDBC, WHAS500)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from iatros.data.sources.packaged import (
    DIABETES_SOURCE,
    WDBC_SOURCE,
    WHAS500_SOURCE,
    load_diabetes_progression,
    load_wdbc,
    load_whas500,
)
from iatros.kinds import Modality, TargetKind
from iatros.tasks.attributes import ADULT_BANDS, age_groups
from iatros.tasks.base import Task, TaskData
from iatros.tasks.registry import register_task


def _wdbc(_root: Path) -> TaskData:
    features, malignant = load_wdbc()
    return TaskData(
        inputs=features.to_numpy(np.float32),
        targets=malignant,
        patient_ids=np.array([f"wdbc-{i:04d}" for i in range(len(features))]),
        attributes=pd.DataFrame(index=range(len(features))),
        feature_names=list(features.columns),
        source="sklearn:load_breast_cancer",
    )


def _whas500_mortality(_root: Path) -> TaskData:
    frame = load_whas500()
    known = (frame["lenfol"] > 365) | frame["fstat"]
    frame = frame[known].reset_index(names="row")
    died = ((frame["lenfol"] <= 365) & frame["fstat"]).astype(np.int64).to_numpy()
    covariates = frame.drop(columns=["row", "lenfol", "fstat"])
    attributes = pd.DataFrame({
        "sex": frame["gender"].map({0.0: "male", 1.0: "female"}).fillna("unknown"),
        "age_group": age_groups(frame["age"]),
    })
    return TaskData(
        inputs=covariates.to_numpy(np.float32),
        targets=died,
        patient_ids=frame["row"].map(lambda i: f"whas-{i:03d}").to_numpy(),
        attributes=attributes,
        feature_names=list(covariates.columns),
        source="sksurv:load_whas500",
    )


def _diabetes(_root: Path) -> TaskData:
    features, progression = load_diabetes_progression()
    attributes = pd.DataFrame({
        "sex": features["sex"].map(lambda v: f"sex={int(v)}"),
        "age_group": age_groups(features["age"], ADULT_BANDS),
    })
    return TaskData(
        inputs=features.to_numpy(np.float32),
        targets=progression,
        patient_ids=np.array([f"diabetes-{i:03d}" for i in range(len(features))]),
        attributes=attributes,
        feature_names=list(features.columns),
        source="sklearn:load_diabetes",
    )


BREAST_CANCER_WDBC = register_task(Task(
    name="breast-cancer-wdbc",
    description="Malignant vs benign breast mass from 30 nuclear features of a fine-needle aspirate",
    modality=Modality.TABULAR,
    target=TargetKind.BINARY,
    loader=_wdbc,
    classes=("benign", "malignant"),
    sensitive_attributes=(),
    primary_metric="auroc",
    default_model="mlp",
    source=WDBC_SOURCE,
    intended_use=(
        "Research and teaching: shows how cytology features separate malignant from benign "
        "breast masses. Not a diagnostic device; a pathologist's reading remains the reference."
    ),
    limitations=(
        "One institution (University of Wisconsin), images from 1990s; features were computed "
        "from digitised slides by one software, so other labs' measurements may shift.",
        "No demographic attributes are available, so no subgroup audit is possible.",
        "Each patient contributes one sample; prevalence (37% malignant) is far above screening.",
    ),
))

WHAS500_MORTALITY_1Y = register_task(Task(
    name="whas500-mortality-1y",
    description="Death within one year of hospital admission for acute myocardial infarction",
    modality=Modality.TABULAR,
    target=TargetKind.BINARY,
    loader=_whas500_mortality,
    classes=("alive at 1 year", "died within 1 year"),
    sensitive_attributes=("sex", "age_group"),
    primary_metric="auroc",
    default_model="mlp",
    source=WHAS500_SOURCE,
    intended_use=(
        "Research: risk stratification after myocardial infarction from admission findings, and "
        "a worked example of a subgroup (sex, age) audit. Not for individual treatment decisions."
    ),
    limitations=(
        "Worcester, Massachusetts admissions 1997-2001; treatment has changed since.",
        "500 patients: subgroup confidence intervals are wide.",
        "Length of stay (`los`) is known only at discharge, so the model is a discharge-time "
        "model, not an admission-time one.",
    ),
))

DIABETES_PROGRESSION = register_task(Task(
    name="diabetes-progression",
    description="Quantitative diabetes progression one year after baseline (regression)",
    modality=Modality.TABULAR,
    target=TargetKind.REGRESSION,
    loader=_diabetes,
    sensitive_attributes=("sex", "age_group"),
    primary_metric="rmse",
    default_model="mlp",
    source=DIABETES_SOURCE,
    intended_use=(
        "Research and teaching: a regression example with a subgroup audit (sex, age band). "
        "The outcome is a study-specific progression score, not a clinical measure."
    ),
    limitations=(
        "442 patients from one study; the progression score has no clinical unit.",
        "The dataset does not document which sex code (1 or 2) is female, so groups are shown "
        "as coded.",
    ),
))
