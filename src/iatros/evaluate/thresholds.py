"""Decision thresholds chosen on validation data, so test metrics are not tuned on the test set."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from iatros.errors import ConfigError
from iatros.evaluate.metrics import threshold_at_sensitivity

RULES = ("youden", "sens90", "fixed")


def youden_threshold(y_true: Any, p: Any) -> float:
    """The threshold maximising sensitivity + specificity - 1 (Youden's J)."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(p, dtype=float)
    if y.min(initial=1) == y.max(initial=0):
        return math.nan
    candidates = np.unique(p)
    pos, neg = y == 1, y == 0
    pred = p[None, :] >= candidates[:, None]
    sens = (pred & pos).sum(axis=1) / pos.sum()
    spec = (~pred & neg).sum(axis=1) / neg.sum()
    return float(candidates[int(np.argmax(sens + spec))])


def choose_threshold(rule: str | float, y_val: Any, p_val: Any, default: float = 0.5
                     ) -> tuple[float, str]:
    """(threshold, how it was chosen) for a rule name or a fixed number in [0, 1]."""
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        if not 0.0 <= float(rule) <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {rule}")
        return float(rule), "fixed by the user"
    if rule == "youden":
        t = youden_threshold(y_val, p_val)
        how = "maximises Youden's J (sensitivity + specificity - 1) on the validation set"
    elif rule == "sens90":
        t = threshold_at_sensitivity(y_val, p_val, 0.9)
        how = "reaches 90% sensitivity on the validation set"
    elif rule == "fixed":
        return default, "fixed at 0.5"
    else:
        raise ConfigError(f"threshold rule must be a number or one of {', '.join(RULES)}; "
                          f"got {rule!r}")
    if not math.isfinite(t):
        return default, f"{default} (validation set has one class, so the rule could not apply)"
    return t, how
