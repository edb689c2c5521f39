"""Integrated gradients over time for signal networks, drawn on the trace.

Each sample's attribution (captum's IntegratedGradients from a flat, all-zero trace: the
standardised record's mean) is taken in absolute value, smoothed over `smooth_s` seconds and
scaled to [0, 1], then drawn as a shaded band under the ECG: where the network looked, not why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from iatros.explain.figure import pyplot, save_figure


def saliency(model: nn.Module, x: torch.Tensor, unit: int, *, fs: float, steps: int = 32,
             smooth_s: float = 0.1) -> np.ndarray:
    """Attribution of one prepared input (1, n_samples) for one output unit, in [0, 1]."""
    from captum.attr import IntegratedGradients

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.enable_grad():
            attr = IntegratedGradients(lambda t: model(t).reshape(len(t), -1)).attribute(
                x.unsqueeze(0).float().to(device), baselines=0.0, target=int(unit), n_steps=steps)
    finally:
        model.train(was_training)
    a = np.abs(attr.detach().cpu().numpy()[0, 0]).astype(np.float64)
    width = max(1, int(round(smooth_s * fs)))
    a = np.convolve(a, np.ones(width) / width, mode="same")
    top = a.max()
    return (a / top if top > 0 else a).astype(np.float32)


def explain_trace(model: nn.Module, x: torch.Tensor, unit: int, path: Path, title: str, *,
                  fs: float) -> dict[str, Any]:
    """The trace with its attribution band saved as a PNG; returns where and what."""
    heat = saliency(model, x, unit, fs=fs)
    trace = x.detach().cpu().numpy()[0]
    t = np.arange(len(trace)) / fs
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 2.6))
    low, high = float(np.min(trace)), float(np.max(trace))
    ax.fill_between(t, low, low + (high - low) * heat, color="tab:red", alpha=0.3, linewidth=0,
                    label="attribution")
    ax.plot(t, trace, color="black", linewidth=0.5)
    ax.set_xlabel("seconds")
    ax.set_ylabel("standardised ECG")
    ax.set_xlim(0, t[-1] if len(t) else 1)
    ax.legend(loc="upper right", fontsize=7)
    save_figure(fig, title, path, dpi=110)
    peak = int(np.argmax(heat)) if len(heat) else 0
    return {"path": str(path), "method": "integrated gradients (|attribution| over time)",
            "class_index": int(unit), "peak_seconds": round(peak / fs, 2)}
