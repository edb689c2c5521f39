"""The public Python API: the same words as the CLI (tasks, train, evaluate, audit, report, runs).

    import iatros.api as ia
    run = ia.train("breast-cancer-wdbc", epochs=30)
    ia.evaluate(run, split="val")

This is the public face only: the life of a run lives in `iatros.pipeline`, each target kind's
scoring in `iatros.pipeline.scoring`, clinical text batches in `iatros.api.nlp`.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any


def __getattr__(name: str) -> Any:
    """Load the run pipeline (torch, scikit-learn) on first use of one of its names, so that
    `iatros.api.nlp` and the `iatros nlp` commands start without it."""
    if name.startswith("__") and name != "__all__":
        raise AttributeError(name)
    if (Path(__file__).parent / f"{name}.py").is_file():  # a submodule (`from iatros.api import nlp`)
        return import_module(f"{__name__}.{name}")
    core = import_module("iatros.api.core")
    try:
        value = getattr(core, name)
    except AttributeError:
        raise AttributeError(f"module 'iatros.api' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *import_module("iatros.api.core").__all__})
