"""Integrated gradients over time for signal networks, drawn on the trace.

Each sample's attribution (captum's IntegratedGradients from a flat, all-zero trace: the
standardised record's mean) is taken in absolute value, smoothed over `smooth_s` seconds and
scaled to [0, 1], then drawn as a shaded band under the ECG: where the network looked, not why.

`draw_recording` draws a whole recording for `predict`: a strip above the trace with each scored
window coloured by its predicted class, the R-peaks marked, and (networks) the saliency of
`recording_saliency`, computed window by window and stitched over the whole record.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def recording_saliency(model: nn.Module, windows: Sequence[torch.Tensor], starts: Sequence[int],
                       n_samples: int, unit: int, *, fs: float) -> np.ndarray:
    """Saliency of a whole recording: each prepared window (1, n) scaled to [0, 1] on its own
    and placed at its start sample; where windows overlap the larger value is kept, and a
    zero-padded window's padding past the recording's end is dropped."""
    heat = np.zeros(n_samples, dtype=np.float32)
    for x, start in zip(windows, starts, strict=True):
        part = saliency(model, x, unit, fs=fs)[:n_samples - start]
        heat[start:start + len(part)] = np.maximum(heat[start:start + len(part)], part)
    return heat


def _draw_trace(ax: Any, trace: np.ndarray, fs: float, heat: np.ndarray | None) -> np.ndarray:
    """The standardised trace in seconds, with the attribution band under it when given."""
    t = np.arange(len(trace)) / fs
    if heat is not None:
        low, high = float(np.min(trace)), float(np.max(trace))
        ax.fill_between(t, low, low + (high - low) * heat, color="tab:red", alpha=0.3,
                        linewidth=0, label="attribution")
    ax.plot(t, trace, color="black", linewidth=0.5)
    ax.set_xlabel("seconds")
    ax.set_ylabel("standardised ECG")
    ax.set_xlim(0, t[-1] if len(t) > 1 else 1)
    return t


def explain_trace(model: nn.Module, x: torch.Tensor, unit: int, path: Path, title: str, *,
                  fs: float) -> dict[str, Any]:
    """The trace with its attribution band saved as a PNG; returns where and what."""
    heat = saliency(model, x, unit, fs=fs)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 2.6))
    _draw_trace(ax, x.detach().cpu().numpy()[0], fs, heat)
    ax.legend(loc="upper right", fontsize=7)
    save_figure(fig, title, path, dpi=110)
    peak = int(np.argmax(heat)) if len(heat) else 0
    return {"path": str(path), "method": "integrated gradients (|attribution| over time)",
            "class_index": int(unit), "peak_seconds": round(peak / fs, 2)}


def _strip_rows(windows: Sequence[tuple[float, float, str]]) -> list[int]:
    """A row of the strip for each window such that windows on one row do not overlap."""
    ends: list[float] = []
    rows = []
    for start, end, _ in windows:
        row = next((r for r, last in enumerate(ends) if last <= start + 1e-9), len(ends))
        if row == len(ends):
            ends.append(end)
        ends[row] = end
        rows.append(row)
    return rows


def draw_recording(trace: np.ndarray, fs: float, path: Path, title: str, *,
                   windows: Sequence[tuple[float, float, str]], classes: Sequence[str],
                   rpeaks: np.ndarray, heat: np.ndarray | None = None) -> Path:
    """A whole recording as a PNG: the standardised trace in seconds with its R-peaks marked and
    (when `heat` is given) the attribution band, under a strip holding each window
    (start_s, end_s, predicted label) as a bar coloured by its class (legend: `classes`)."""
    plt = pyplot()
    colours = {c: plt.get_cmap("tab10")(k % 10) for k, c in enumerate(classes)}
    fig, (strip, ax) = plt.subplots(2, 1, sharex=True, figsize=(12, 3.4),
                                    gridspec_kw={"height_ratios": [1, 4]})
    t = _draw_trace(ax, trace, fs, heat)
    peaks = np.asarray(rpeaks, dtype=np.int64)
    peaks = peaks[(peaks >= 0) & (peaks < len(trace))]
    if len(peaks):
        ax.plot(t[peaks], trace[peaks], "v", color="tab:blue", markersize=3, label="R-peaks")
    rows = _strip_rows(windows)
    for (start, end, label), row in zip(windows, rows, strict=True):
        strip.barh(row, end - start, left=start, height=0.8, color=colours.get(label, "grey"),
                   edgecolor="white", linewidth=0.5)
    strip.set_yticks([])
    strip.set_ylim(max(rows, default=0) + 0.6, -0.6)
    strip.set_ylabel("windows", fontsize=7)
    shown = [c for c in classes if c in {label for _, _, label in windows}]
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in shown]
    strip.legend(handles, shown, loc="upper left", bbox_to_anchor=(1.0, 1.2), fontsize=7,
                 frameon=False)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    return save_figure(fig, title, path, dpi=110)
