"""Real clinical datasets that ship inside installed packages, so they load with no network."""

from __future__ import annotations

import numpy as np
import pandas as pd

WDBC_SOURCE = (
    "Wisconsin Diagnostic Breast Cancer (Street, Wolberg & Mangasarian 1993), 569 fine-needle "
    "aspirates, 30 nuclear features; as shipped by scikit-learn (sklearn.datasets.load_breast_cancer)"
)
WHAS500_SOURCE = (
    "Worcester Heart Attack Study, 500-patient subset (Hosmer, Lemeshow & May, Applied Survival "
    "Analysis, 2nd ed.); as shipped by scikit-survival (sksurv.datasets.load_whas500)"
)

DIABETES_SOURCE = (
    "Diabetes progression (Efron, Hastie, Johnstone & Tibshirani, Least Angle Regression, 2004): "
    "442 patients, 10 baseline variables; as shipped by scikit-learn (load_diabetes, unscaled)"
)


def load_wdbc() -> tuple[pd.DataFrame, np.ndarray]:
    """WDBC features and labels with 1 = malignant (scikit-learn codes malignant as 0)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    features = bunch.data.astype("float64")
    malignant = (bunch.target.to_numpy() == 0).astype(np.int64)
    return features, malignant


def load_whas500() -> pd.DataFrame:
    """WHAS500 admissions: clinical covariates plus follow-up days (`lenfol`) and death (`fstat`)."""
    from sksurv.datasets import load_whas500 as _load

    covariates, outcome = _load()
    frame = covariates.apply(lambda c: c.astype("float64"))
    frame["lenfol"] = outcome["lenfol"].astype("float64")
    frame["fstat"] = outcome["fstat"].astype(bool)
    return frame


def load_diabetes_progression() -> tuple[pd.DataFrame, np.ndarray]:
    """Baseline age, sex, BMI, blood pressure and six serum measures; disease progression at 1 year."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True, scaled=False)
    return bunch.data.astype("float64"), bunch.target.to_numpy(np.float64)
