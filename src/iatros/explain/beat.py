"""Integrated gradients for beat networks: what in a beat's row moved the class.

The baseline is the same beat on time and flat: every RR interval equal to the local mean (ratios
1) and all samples 0 (the record's median after scaling). Attributions therefore say how much the
beat's prematurity or pause (RR features) and its shape (samples) pushed the named class, relative
to a regular beat with no waveform. The figure draws the beat with |attribution| as a band under
it, and the signed RR attributions as bars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from iatros.explain.figure import pyplot, save_figure


def on_time_baseline(row: np.ndarray, rr_names: tuple[str, ...]) -> np.ndarray:
    """The row of the same beat arriving on time with a flat trace (see the module docstring);
    `rr_names` are the row's leading RR columns (`data.signals.beats.RR_FEATURES`)."""
    base = np.zeros_like(row, dtype=np.float32)
    local = float(row[rr_names.index("rr_local_s")])
    average = float(row[rr_names.index("rr_average_s")])
    values = {"rr_pre_s": local, "rr_post_s": local, "rr_local_s": local, "rr_average_s": average,
              "rr_pre_local": 1.0, "rr_post_local": 1.0,
              "rr_pre_average": local / average if average > 0 else 1.0, "rr_post_pre": 1.0}
    for k, name in enumerate(rr_names):
        base[k] = values[name]
    return base


def beat_attribution(model: nn.Module, row: torch.Tensor, unit: int, rr_names: tuple[str, ...],
                     steps: int = 32) -> np.ndarray:
    """Integrated gradients of one beat row for one output unit (signed, one per column)."""
    from captum.attr import IntegratedGradients

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = row.float().reshape(1, -1).to(device)
    base = torch.as_tensor(on_time_baseline(row.detach().cpu().numpy().reshape(-1),
                                            rr_names)).reshape(1, -1)
    try:
        with torch.enable_grad():
            attr = IntegratedGradients(lambda t: model(t).reshape(len(t), -1)).attribute(
                x, baselines=base.to(device), target=int(unit), n_steps=steps)
    finally:
        model.train(was_training)
    return attr.detach().cpu().numpy()[0].astype(np.float64)


def explain_beat(model: nn.Module, row: torch.Tensor, unit: int, path: Path, title: str, *,
                 fs: float, rr_names: tuple[str, ...], before_s: float) -> dict[str, Any]:
    """The beat and its RR attributions saved as a PNG; returns where and the top RR feature."""
    attr = beat_attribution(model, row, unit, rr_names)
    n_rr = len(rr_names)
    wave = row.detach().cpu().numpy().reshape(-1)[n_rr:]
    heat = np.abs(attr[n_rr:])
    heat = heat / heat.max() if heat.max() > 0 else heat
    t = (np.arange(len(wave)) / fs - before_s) * 1000
    plt = pyplot()
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(10, 2.8), gridspec_kw={"width_ratios": [2, 1]})
    low, high = float(wave.min()), float(wave.max())
    ax.fill_between(t, low, low + (high - low) * heat, color="tab:red", alpha=0.3, linewidth=0,
                    label="|attribution|")
    ax.plot(t, wave, color="black", linewidth=0.8)
    ax.axvline(0, color="grey", linewidth=0.5, linestyle=":")
    ax.set_xlabel("ms from the R-peak")
    ax.legend(loc="upper right", fontsize=7)
    rr = attr[:n_rr]
    bars.barh(range(n_rr), rr, color=["tab:red" if v > 0 else "tab:blue" for v in rr])
    bars.set_yticks(range(n_rr), [name.replace("rr_", "") for name in rr_names], fontsize=7)
    bars.axvline(0, color="grey", linewidth=0.5)
    bars.set_xlabel("RR attribution", fontsize=8)
    save_figure(fig, title, path, dpi=110)
    top = int(np.argmax(np.abs(rr)))
    return {"path": str(path), "method": "integrated gradients from the same beat on time and flat",
            "class_index": int(unit), "top_rr_feature": rr_names[top],
            "rr_share": round(float(np.abs(rr).sum() / max(np.abs(attr).sum(), 1e-12)), 3)}
