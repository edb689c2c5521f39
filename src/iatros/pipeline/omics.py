"""Omics explanations for a finished run: integrated gradients per feature over the test samples,
the top features of each class with their direction, one bar chart per class (networks that
`omics-fusion`; the flat baselines have none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from iatros.tasks import Task, TaskData
from iatros.train.predictors import Predictor

TOP_K = 10
INTRO = ("Integrated gradients per feature over the test samples, from each sample's features "
         "at their training means: bars are the mean absolute attribution of the strongest "
         "features for the class named, red where values above the training mean raise the "
         "class, blue where they lower it. A missing value or an absent omic is not integrated "
         "and gets no attribution. They show what the network used, not biology.")


def _units(task: Task, width: int) -> list[tuple[int, str]]:
    """(output unit, what it predicts): one per class for several classes, else the one output."""
    if width > 1 and len(task.classes) == width:
        return list(enumerate(task.classes))
    name = task.classes[-1] if task.classes else task.target.output_name
    return [(0, str(name))]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_") or "output"


def class_attributions(task: Task, predictor: Predictor, data: TaskData, rows: np.ndarray,
                       out_dir: Path) -> list[dict[str, Any]] | None:
    """One item per class: its top features (feature, omic, importance, effect, direction), the
    bar chart at `out_dir/omics_top_features_CLASS.png` and a caption; None for a model that is
    not an omics network."""
    import torch

    from iatros.explain.omics import draw_top_features, integrated_gradients, top_features
    from iatros.models.omics import OmicsFusion

    network = getattr(predictor, "network", None)
    if not isinstance(network, OmicsFusion):  # under a Cox head, its encoder gives the log-risk
        network = getattr(network, "encoder", None)
    if not isinstance(network, OmicsFusion) or not len(rows):
        return None
    device = next(network.parameters()).device
    x = torch.as_tensor(np.asarray(data.inputs[rows], dtype=np.float32), device=device)
    network.eval()
    with torch.no_grad():
        baseline = network.reference_input(x)
        width = int(network(x).reshape(len(x), -1).shape[1])
    present = network.present(x).cpu().numpy()
    absent = [f"{name} absent in {int((~present[:, k]).sum())} of {len(x)}"
              for k, (name, _) in enumerate(network.blocks) if (~present[:, k]).any()]
    names = list(data.feature_names or [])
    items = []
    for unit, label in _units(task, width):
        attributions = integrated_gradients(network, x, baseline, unit)
        features = top_features(attributions, x.cpu().numpy(), baseline.cpu().numpy(), names,
                                TOP_K)
        shown = "; ".join(f"{f['omic']}:{f['feature']} ({f['direction']})" for f in features[:5])
        caption = (f"{label}: top features over {len(x)} test samples: {shown}"
                   + (f" (absent omics, not attributed: {', '.join(absent)})" if absent else ""))
        path = draw_top_features(features, f"{label}: integrated gradients, {len(x)} test samples",
                                 out_dir / f"omics_top_features_{_slug(label)}.png")
        items.append({"path": str(path), "caption": caption, "class": label,
                      "method": "integrated gradients (32 steps, training-mean baseline)",
                      "features": features})
    return items
