"""The regression target scale networks keep in their `out_center` / `out_scale` buffers, so they
learn in standard units and predict in the target's."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def fit_output_scaling(center: torch.Tensor, scale: torch.Tensor, y: Any) -> None:
    """Copy the training targets' mean and SD per output (missing labels left out; an SD of 0
    becomes 1) into the `center` and `scale` buffers."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    sd = np.nanstd(y, axis=0)
    center.copy_(torch.as_tensor(np.nanmean(y, axis=0), dtype=torch.float32))
    scale.copy_(torch.as_tensor(np.where(sd > 1e-12, sd, 1.0), dtype=torch.float32))
