"""Grad-CAM / Grad-CAM++ heat maps for imaging models, saved as overlays on the input.

2D: the heat map over the image. 3D: the slices where the attribution is highest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from iatros.errors import ConfigError
from iatros.explain.figure import pyplot, save_figure

METHODS = ("gradcam", "gradcampp")


class _Columns(nn.Module):
    """The model with its outputs as (batch, units), as Grad-CAM expects: a survival head's
    single log-risk comes out flat (batch,)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out.reshape(len(out), -1)


def heatmap(model: nn.Module, x: torch.Tensor, class_index: int, method: str = "gradcam") -> np.ndarray:
    """Attribution of one input (C, *spatial) for one output unit, in [0, 1], input-sized."""
    return heatmaps(model, x.unsqueeze(0), class_index, method)[0]


def heatmaps(model: nn.Module, xs: torch.Tensor, class_index: int, method: str = "gradcam") -> np.ndarray:
    """Attributions of a batch (B, C, *spatial) for one output unit, each scaled to [0, 1]: one
    forward and backward pass for the batch (in eval mode items do not interact, so each map is
    the one the item alone would get)."""
    from monai.visualize import GradCAM, GradCAMpp

    if method not in METHODS:
        raise ConfigError(f"explanation method must be one of {METHODS}, not {method!r}")
    layer = getattr(model, "cam_layer", None)
    if layer is None:
        raise ConfigError(f"{type(model).__name__} does not name a layer for Grad-CAM")
    # two forward passes (mirror TTA) would leave the hooks on the mirrored one: turn it off
    tta = {m: m.tta for m in model.modules() if getattr(m, "tta", False)}
    was_training = model.training
    model.eval()
    for m in tta:
        m.tta = False
    device = next(model.parameters()).device
    # gradients are needed at the activations only: skip the weights' (about half the backward)
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        # MONAI's default post-processing maps (min, max) to (1, 0), flipping the map: keep raw
        cam = (GradCAM if method == "gradcam" else GradCAMpp)(
            nn_module=_Columns(model), target_layers=f"model.{layer}", postprocessing=lambda t: t)
        with torch.enable_grad():
            result = cam(xs.float().to(device).requires_grad_(True), class_idx=class_index)
    finally:
        for p in trainable:
            p.requires_grad_(True)
        for m, value in tta.items():
            m.tta = value
        model.train(was_training)
    heat = np.nan_to_num(np.asarray(result.detach().cpu().numpy()[:, 0], dtype=np.float32))
    flat = heat.reshape(len(heat), -1)
    low = flat.min(axis=1).reshape(-1, *([1] * (heat.ndim - 1)))
    span = (flat.max(axis=1) - flat.min(axis=1)).reshape(low.shape)
    return np.where(span > 0, (heat - low) / np.where(span > 0, span, 1), 0).astype(np.float32)


def top_slices(heat: np.ndarray, n: int = 3) -> list[int]:
    """Depth indices of a 3D heat map with the most attribution, in order of depth."""
    scores = heat.reshape(heat.shape[0], -1).mean(axis=1)
    return sorted(np.argsort(scores)[::-1][:n].tolist())


def save_overlay(image: np.ndarray, heat: np.ndarray, path: Path, title: str) -> Path:
    """PNG of the input (gray or RGB) with the heat map on top; 3D shows the top slices."""
    plt = pyplot()

    image = np.asarray(image, dtype=np.float32)
    if heat.ndim == 3:  # (D, H, W)
        slices = top_slices(heat)
        views = [(image[0, d], heat[d], f"slice {d}") for d in slices]
    else:
        views = [(image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1), heat, "")]
    fig, axes = plt.subplots(1, 2 * len(views), figsize=(2.4 * 2 * len(views), 2.8), squeeze=False)
    for i, (img, h, label) in enumerate(views):
        for j, with_heat in enumerate((False, True)):
            ax = axes[0, 2 * i + j]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            if with_heat:
                ax.imshow(h, cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
            ax.set_title(f"{label} {'Grad-CAM' if with_heat else 'input'}".strip(), fontsize=8)
            ax.axis("off")
    return save_figure(fig, title, path, dpi=120)


def save_overlay_png(image: np.ndarray, heat: np.ndarray, path: Path, size: int = 224) -> Path:
    """The input and the heat map over it, side by side, as a plain PNG (no figure, no text):
    a few milliseconds where a captioned figure takes tens. 3D shows the slice of highest
    attribution."""
    from matplotlib import colormaps
    from PIL import Image

    image = np.asarray(image, dtype=np.float32)
    if heat.ndim == 3:  # (D, H, W): the slice with most attribution
        d = top_slices(heat, 1)[0]
        image, heat = image[:, d], heat[d]
    rgb = np.repeat(image[:1], 3, axis=0) if image.shape[0] != 3 else image
    rgb = np.clip(np.moveaxis(rgb, 0, -1), 0, 1)
    colour = colormaps["jet"](np.clip(heat, 0, 1))[..., :3]
    blend = 0.55 * rgb + 0.45 * colour
    panels = [Image.fromarray((a * 255).astype(np.uint8)).resize(
        (size, size), Image.NEAREST if a is rgb else Image.BILINEAR) for a in (rgb, blend)]
    canvas = Image.new("RGB", (2 * size + 8, size), "white")
    canvas.paste(panels[0], (0, 0))
    canvas.paste(panels[1], (size + 8, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, "PNG", compress_level=1)
    return path


def explain_image(model: nn.Module, x: torch.Tensor, class_index: int, path: Path, title: str,
                  method: str = "gradcam", compact: bool = False,
                  heat: np.ndarray | None = None) -> dict[str, Any]:
    """Heat map of one prepared input saved as an overlay (`compact`: a plain side-by-side PNG
    without caption; `heat`: a map already computed, e.g. by `heatmaps` for a batch); returns
    where and what."""
    if heat is None:
        heat = heatmap(model, x, class_index, method)
    if compact:
        save_overlay_png(x.detach().cpu().numpy(), heat, path)
    else:
        save_overlay(x.detach().cpu().numpy(), heat, path, title)
    return {"path": str(path), "method": method, "class_index": int(class_index),
            "peak": [int(v) for v in np.unravel_index(int(np.argmax(heat)), heat.shape)]}
