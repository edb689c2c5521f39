"""Feature-level attributions of omics networks: integrated gradients per gene (miRNA, protein),
summarised per output as the top features with their direction, drawn as bar charts.

Missing values and absent omics stay missing along the integration path, so they get no
attribution (0), never credit for a value that was not measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iatros.explain.figure import pyplot, save_figure


def integrated_gradients(network: torch.nn.Module, x: torch.Tensor, baseline: torch.Tensor,
                         unit: int, steps: int = 32) -> np.ndarray:
    """(rows, features) integrated gradients of output `unit` from `baseline` to `x` (midpoint
    Riemann sum over `steps`); NaN cells (missing) get 0."""
    network.eval()
    delta = x - baseline
    total = torch.zeros_like(x)
    for alpha in (torch.arange(steps, dtype=x.dtype) + 0.5) / steps:
        point = (baseline + alpha * delta).detach().requires_grad_(True)
        output = network(point)
        output = output.reshape(len(x), -1)[:, unit].sum()
        (grad,) = torch.autograd.grad(output, point)
        total += torch.nan_to_num(grad)
    return torch.nan_to_num(delta * total / steps).detach().cpu().numpy()


def top_features(attributions: np.ndarray, x: np.ndarray, baseline: np.ndarray,
                 names: Sequence[str], k: int = 10) -> list[dict[str, Any]]:
    """The `k` features with the largest mean |attribution| over rows, each with its direction:
    whether values above the training mean raise the output ("higher raises") or lower it,
    read from the sign of mean(attribution x sign(value - mean))."""
    importance = np.abs(attributions).mean(axis=0)
    side = np.nan_to_num(np.sign(np.asarray(x, float) - np.asarray(baseline, float)))
    effect = (attributions * side).mean(axis=0)
    order = np.argsort(-importance, kind="stable")[:k]
    out = []
    for j in order:
        if importance[j] <= 0:
            break
        name = str(names[j]) if j < len(names) else f"feature {j}"
        omic, _, feature = name.partition(":") if ":" in name else ("", "", name)
        out.append({"feature": feature, "omic": omic, "importance": round(float(importance[j]), 6),
                    "effect": round(float(effect[j]), 6),
                    "direction": "higher raises" if effect[j] >= 0 else "higher lowers"})
    return out


def draw_top_features(features: Sequence[dict[str, Any]], title: str, path: Path,
                      dpi: int = 110) -> Path:
    """Horizontal bars: each feature's mean |attribution|, red where higher values raise the
    output, blue where they lower it."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 0.32 * max(len(features), 3) + 1.0))
    labels = [f"{f['omic']}:{f['feature']}" if f["omic"] else f["feature"] for f in features]
    values = [f["importance"] for f in features]
    colours = ["#c0392b" if f["direction"] == "higher raises" else "#2e86c1" for f in features]
    ax.barh(range(len(features)), values, color=colours)
    ax.set_yticks(range(len(features)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("mean |integrated gradient| (red: higher value raises, blue: lowers)",
                  fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    return save_figure(fig, title, path, dpi)
