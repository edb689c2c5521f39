"""The outcome of a federated run as the server leaves it: the final weights (tensors only,
loaded with `weights_only=True`) and the federation record, written atomically beside the
plan so that the waiting `iatros federate` can finish the run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iatros.errors import RunError
from iatros.run_folder import write_json
from iatros.train.trainer import atomic_save, load_checkpoint

OUTCOME_WEIGHTS = "global_model.pt"
OUTCOME_RECORD = "outcome.json"
FAILED = "failed.json"


def write_outcome(folder: Path, outcome: dict[str, Any]) -> None:
    state = {k: torch.as_tensor(np.asarray(v)) for k, v in outcome["state"].items()}
    atomic_save({"model": state}, folder / OUTCOME_WEIGHTS)
    write_json(folder / OUTCOME_RECORD, outcome["record"])


def write_failure(folder: Path, error: BaseException) -> None:
    write_json(folder / FAILED, {"error": f"{type(error).__name__}: {error}"})


def read_outcome(folder: Path) -> dict[str, Any] | None:
    """The outcome once the server has written it; None while it is still running."""
    if (folder / FAILED).is_file():
        raise RunError(f"the federated run failed at the server: "
                       f"{json.loads((folder / FAILED).read_text())['error']}")
    if not (folder / OUTCOME_RECORD).is_file():
        return None
    state = load_checkpoint(folder / OUTCOME_WEIGHTS)["model"]
    return {"state": {k: v.numpy() for k, v in state.items()},
            "record": json.loads((folder / OUTCOME_RECORD).read_text())}
