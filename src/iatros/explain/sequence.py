"""Integrated gradients for health-record sequence models: which variables, at which hours,
and which static features drove one stay's prediction (as JSON and as a figure).

The model supplies `attribution_inputs(batch)` (inputs, baselines, fixed arguments) and
`forward_attribution(*inputs, *fixed)`; the baseline is the training mean of every value, so an
attribution says how far this stay's measured value moved the output from an average one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from iatros.errors import ConfigError
from iatros.explain.figure import pyplot, save_figure

N_STEPS = 64
METHOD = (f"integrated gradients (captum, {N_STEPS} steps) against the training mean of each "
          f"value; which measurements were taken, and when, held fixed")


@dataclass
class StayAttribution:
    """Attributions of one stay: `cells` (T, V) on the hourly grid, `variables` (V) summed over
    the whole window, `static` (S), and IG's completeness error `delta`."""

    cells: np.ndarray
    variables: np.ndarray
    static: np.ndarray
    delta: float


def can_explain(network: Any) -> bool:
    return hasattr(network, "attribution_inputs") and hasattr(network, "forward_attribution")


def explainable(network: Any) -> Any:
    """The module to attribute: the network, or the sequence encoder under a survival head
    (whose single output is the log-risk the head passes on); None when neither can be."""
    for module in (network, getattr(network, "encoder", None)):
        if can_explain(module):
            return module
    return None


def attribute(network: nn.Module, batch: dict[str, torch.Tensor], unit: int, n_bins: int,
              bin_hours: float, n_variables: int) -> StayAttribution:
    """Integrated gradients for output `unit` of one stay (a batch of one)."""
    from captum.attr import IntegratedGradients

    if not can_explain(network):
        raise ConfigError(f"{type(network).__name__} cannot be explained per time point; "
                          f"train a sequence model (--model grud or event-transformer)")
    network.eval()
    device = next(network.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    inputs, baselines, fixed = network.attribution_inputs(batch)
    ig = IntegratedGradients(lambda *a: network.forward_attribution(*a)[:, unit])
    with torch.enable_grad():
        attrs, delta = ig.attribute(inputs, baselines=baselines, additional_forward_args=fixed,
                                    n_steps=N_STEPS, return_convergence_delta=True)
    values, static = (a[0].detach().cpu().numpy().astype(np.float64) for a in attrs)
    if values.ndim == 2:  # grid-shaped (T, V) for GRU-D; per event (L,) otherwise
        cells = values
        totals = values.sum(axis=0)
    else:
        ids = batch["ev_var"][0].cpu().numpy()
        hours = batch["ev_time"][0].cpu().numpy()
        numeric = (ids >= 1) & (ids <= n_variables)
        totals = np.bincount(ids[numeric] - 1, weights=values[numeric], minlength=n_variables)
        cells = np.zeros((n_bins, n_variables))
        bins = np.floor(hours / bin_hours).astype(int)
        on_grid = numeric & (bins >= 0) & (bins < n_bins)
        np.add.at(cells, (bins[on_grid], ids[on_grid] - 1), values[on_grid])
    return StayAttribution(cells, totals, static, float(delta.abs().max()))


def summary(attr: StayAttribution, values: np.ndarray, variables: list[str],
            static_names: list[str], static_values: np.ndarray, bin_hours: float,
            top: int = 10) -> dict[str, Any]:
    """JSON-ready ranking: variables, (variable, hour) cells and static features by |attribution|."""
    observed = (~np.isnan(values)).sum(axis=0)
    var_order = np.argsort(-np.abs(attr.variables))[:top]
    flat = np.argsort(-np.abs(attr.cells), axis=None)[:2 * top]
    cells = []
    for t, v in zip(*np.unravel_index(flat, attr.cells.shape), strict=True):
        if attr.cells[t, v] == 0:
            continue
        value = values[t, v]
        cells.append({"variable": variables[v], "hour": float(t * bin_hours),
                      "value": None if np.isnan(value) else float(value),
                      "attribution": float(attr.cells[t, v])})
    static_order = np.argsort(-np.abs(attr.static))[:top]
    return {
        "method": METHOD, "convergence_delta": attr.delta,
        "variables": [{"variable": variables[v], "attribution": float(attr.variables[v]),
                       "n_observed": int(observed[v])} for v in var_order if attr.variables[v] != 0],
        "cells": cells,
        "static": [{"feature": static_names[s], "attribution": float(attr.static[s]),
                    "value": None if np.isnan(static_values[s]) else float(static_values[s])}
                   for s in static_order if attr.static[s] != 0],
    }


def stay_figure(attr: StayAttribution, variables: list[str], static_names: list[str],
                bin_hours: float, caption: str, path: Path, top: int = 12) -> Path:
    """Heat map of the top variables over hours, beside a bar chart of the largest totals."""
    plt = pyplot()

    order = np.argsort(-np.abs(attr.variables))[:top]
    variables = [v.split("//", 1)[-1] for v in variables]
    grid = attr.cells[:, order].T
    lim = float(np.abs(grid).max()) or 1.0
    static_order = np.argsort(-np.abs(attr.static))[:4]
    names = [variables[v] for v in order] + [static_names[s] for s in static_order]
    totals = np.concatenate([attr.variables[order], attr.static[static_order]])
    fig, (ax, bar) = plt.subplots(1, 2, figsize=(12, 0.35 * len(order) + 2.2),
                                  gridspec_kw={"width_ratios": [3, 1.2]})
    im = ax.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest",
                   extent=(0, grid.shape[1] * bin_hours, len(order) - 0.5, -0.5))
    ax.set_yticks(range(len(order)), [variables[v] for v in order], fontsize=8)
    ax.set_xlabel("hours into the window")
    ax.set_title("attribution per variable and hour (red raises the output)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    bar.barh(range(len(names)), totals, color=["#b2182b" if v > 0 else "#2166ac" for v in totals])
    bar.set_yticks(range(len(names)), names, fontsize=8)
    bar.invert_yaxis()
    bar.axvline(0, color="black", lw=0.5)
    bar.set_title("total over the window", fontsize=9)
    return save_figure(fig, caption, path, dpi=110)


def explain_stay(network: nn.Module, batch: dict[str, torch.Tensor], inputs: Any, unit: int,
                 caption: str, path: Path) -> dict[str, Any]:
    """Attributions of the one stay in `inputs` (EhrInputs) as JSON, with its figure at `path`."""
    n_bins, n_vars = inputs.values.shape[1:]
    attr = attribute(network, batch, unit, n_bins, inputs.bin_hours, n_vars)
    stay_figure(attr, inputs.variables, inputs.static_names, inputs.bin_hours, caption, path)
    return {**summary(attr, inputs.values[0], inputs.variables, inputs.static_names,
                      inputs.static[0], inputs.bin_hours), "path": str(path), "caption": caption}
