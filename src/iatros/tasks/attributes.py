"""Sensitive attributes shared by tasks: age bands for subgroup audits."""

from __future__ import annotations

import numpy as np
import pandas as pd

ELDERLY_BANDS = (65, 80)
ADULT_BANDS = (40, 60)


def age_groups(age: pd.Series, cuts: tuple[int, ...] = ELDERLY_BANDS) -> pd.Series:
    """Age bands for audits, e.g. cuts (65, 80) give '<65', '65-79', '>=80'; missing -> 'unknown'."""
    edges = [-np.inf, *cuts, np.inf]
    labels = [f"<{cuts[0]}", *(f"{a}-{b - 1}" for a, b in zip(cuts, cuts[1:], strict=False)), f">={cuts[-1]}"]
    bands = pd.cut(age, bins=edges, labels=labels, right=False).astype(object)
    return bands.where(bands.notna(), "unknown").astype(str)
