"""Survival figures: Kaplan-Meier by predicted risk group with numbers at risk, individual
predicted curves, and calibration at horizons; drawn from metrics.json alone."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

GROUP_COLOURS = {"low": "#2c7fb8", "medium": "#f0a30a", "high": "#d7301f"}


def _save(fig: Any, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_km_by_risk(section: Mapping[str, Any], out: Path, *, time_label: str = "time") -> Path:
    """KM curve (with 95% band) per risk group, log-rank p in the title, numbers at risk below."""
    fig, (ax, table_ax) = plt.subplots(2, 1, figsize=(6.4, 5.2), height_ratios=[4, 1.2],
                                       sharex=True)
    order = [g for g in ("low", "medium", "high") if g in section["groups"]]
    order += [g for g in section["groups"] if g not in order]
    for group in order:
        km = section["groups"][group]
        colour = GROUP_COLOURS.get(group)
        t = np.r_[0.0, np.asarray(km["times"], float)]
        s = np.r_[1.0, np.asarray(km["survival"], float)]
        lo = np.r_[1.0, np.asarray([np.nan if v is None else v for v in km["ci_low"]], float)]
        hi = np.r_[1.0, np.asarray([np.nan if v is None else v for v in km["ci_high"]], float)]
        n = section.get("n", {}).get(group, "?")
        ax.step(t, s, where="post", color=colour, label=f"{group} risk (n={n})")
        ax.fill_between(t, lo, hi, step="post", color=colour, alpha=0.15)
    p = (section.get("logrank") or {}).get("p_value")
    ax.set_title("Kaplan-Meier by predicted risk group (test set)"
                 + (f"; log-rank p = {p:.2g}" if p is not None else ""))
    ax.set_ylabel("Survival probability")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    ax.tick_params(labelbottom=True)
    at = section["at_risk"]
    times = at["times"]
    table_ax.axis("off")
    for i, (group, counts) in enumerate(at["at_risk"].items()):
        y = 1 - (i + 1) / (len(at["at_risk"]) + 1)
        table_ax.text(-0.02, y, group, transform=table_ax.transAxes, ha="right", va="center",
                      fontsize=8, color=GROUP_COLOURS.get(group, "black"))
        for t, c in zip(times, counts, strict=True):
            table_ax.text(t, y, str(c), transform=table_ax.get_xaxis_transform(), ha="center",
                          va="center", fontsize=8)
    table_ax.set_title("Number at risk", fontsize=8, loc="left")
    ax.set_xlabel(time_label)
    return _save(fig, out)


def plot_individual_curves(examples: Mapping[str, Any], out: Path) -> Path:
    """Predicted survival curves of a few test patients spread across the risk range."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    times = np.asarray(examples["times"], float)
    for p in examples["patients"]:
        known = p.get("time") is not None and np.isfinite(p["time"])
        outcome = f" ({'event' if p['event'] else 'censored'} at {p['time']:.0f})" if known else ""
        ax.step(times, p["survival"], where="post", label=f"{p['patient_id']}{outcome}")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("time")
    ax.set_ylabel("Predicted survival probability")
    ax.set_title("Individual predicted survival curves (test patients, low to high risk)")
    ax.legend(fontsize=7)
    return _save(fig, out)


def plot_survival_calibration(calibration: Mapping[str, Any], out: Path) -> Path:
    """Predicted vs Kaplan-Meier observed event probability by risk decile, one panel per horizon."""
    horizons = list(calibration)
    fig, axes = plt.subplots(1, len(horizons), figsize=(3.4 * len(horizons), 3.4), squeeze=False)
    for ax, h in zip(axes[0], horizons, strict=True):
        table = calibration[h]
        pred = np.asarray(table["mean_predicted"], float)
        obs = np.asarray(table["observed"], float)
        ci = np.array([[np.nan if v is None else v for v in pair] for pair in table["observed_ci95"]],
                      float)
        err = np.abs(np.vstack([obs - ci[:, 0], ci[:, 1] - obs]))
        ax.errorbar(pred, obs, yerr=err, fmt="o", ms=4, capsize=2)
        top = float(np.nanmax(np.r_[pred, ci[:, 1], 0.05])) * 1.05
        ax.plot([0, top], [0, top], "--", color="grey", lw=1)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_title(f"by time {float(h):.4g}", fontsize=9)
        ax.set_xlabel("predicted event probability")
    axes[0, 0].set_ylabel("observed (Kaplan-Meier, 95% CI)")
    fig.suptitle("Calibration at horizons, test set, by decile of predicted risk", fontsize=10)
    return _save(fig, out)


def survival_figures(metrics: Mapping[str, Any], fig_dir: Path) -> dict[str, Path]:
    """Every survival figure that metrics.json has data for."""
    section = metrics.get("survival") or {}
    out: dict[str, Path] = {}
    if section.get("risk_groups"):
        out["km_risk_groups"] = plot_km_by_risk(section["risk_groups"], fig_dir / "km_risk_groups.png")
    if section.get("examples"):
        examples = section["examples"]  # the report names test patients by rank, not by id
        shown = {**examples, "patients": [{**p, "patient_id": f"test patient {k + 1}"}
                                          for k, p in enumerate(examples.get("patients") or [])]}
        out["survival_curves"] = plot_individual_curves(shown, fig_dir / "survival_curves.png")
    if section.get("calibration"):
        out["survival_calibration"] = plot_survival_calibration(section["calibration"],
                                                                fig_dir / "survival_calibration.png")
    return out
