"""The promoted models the service answers with: for each model name the newest version in
stage "production", else the newest version; re-read from the registry every few seconds, so
`iatros promote` takes effect without a restart. Each run is opened (manifest checked) once and
its predictor loaded on first use."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iatros import api
from iatros.errors import IatrosError
from iatros.run_folder import RunFolder
from iatros.serve.batching import Batcher
from iatros.serve.problems import Problem
from iatros.settings import Settings

log = logging.getLogger("iatros")
CARD_CONFIG = ("task", "description", "modality", "target_kind", "classes", "model",
               "model_description", "intended_use", "limitations", "source", "sensitive_attributes",
               "primary_metric", "split_by", "created", "iatros_version")


def task_label(task: str) -> str:
    """A task name fit to show: `ehr:/data/site-a/bundles` -> `ehr:bundles` (no server path)."""
    prefix, sep, arg = task.partition(":")
    return f"{prefix}:{Path(arg).name}" if sep and "/" in arg else task


@dataclass
class ServedModel:
    """One promoted version: its registry facts, its loaded run, or why it cannot be served."""

    name: str
    version: int
    stage: str
    run_id: int
    path: Path
    loaded: Any = None
    error: str | None = None
    _card: dict[str, Any] | None = field(default=None, repr=False)
    _batcher: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name}:v{self.version}"

    def require(self) -> Any:
        if self.loaded is None:
            raise Problem(503, f"model {self.label} cannot be served: {self.error}")
        return self.loaded

    def batcher(self, work_dir: Path) -> Batcher:
        """The model's dynamic batcher (started on first use)."""
        loaded = self.require()
        with self._lock:
            if self._batcher is None:
                work_dir.mkdir(parents=True, exist_ok=True)
                self._batcher = Batcher(loaded, work_dir)
            return self._batcher

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version, "stage": self.stage,
                               "run_id": self.run_id, "available": self.loaded is not None}
        if self.loaded is not None:
            config = self.loaded.config
            out.update(task=task_label(config["task"]), modality=config["modality"],
                       target_kind=config["target_kind"], model=config["model"],
                       classes=list(config.get("classes") or []))
            out["headline"] = self.card()["headline"]
        else:
            out["error"] = self.error
        return out

    def card(self) -> dict[str, Any]:
        """The model card's facts as data (config, test metrics with CIs, calibration,
        subgroups, figures): what the dashboard and `GET /models/{name}` show."""
        if self._card is not None:
            return self._card
        loaded = self.require()
        folder: RunFolder = loaded.folder
        config = loaded.config
        metrics = folder.metrics()
        primary = metrics.get("primary_metric")
        test = metrics.get("splits", {}).get("test", {})
        card: dict[str, Any] = {"name": self.name, "version": self.version, "stage": self.stage,
                                **{k: config.get(k) for k in CARD_CONFIG}}
        card["task"] = task_label(str(config["task"]))
        arg = str(config["task"]).partition(":")[2]
        if "/" in arg:  # no server path in what the service shows
            for key in ("description", "source"):
                if isinstance(card.get(key), str):
                    card[key] = card[key].replace(arg, Path(arg).name)
        card["inputs"] = list((config.get("data") or {}).get("features") or [])
        card["headline"] = {"metric": primary, **(test.get(primary) or {})} if primary else {}
        card["test_metrics"] = test
        calibration = metrics.get("calibration") or {}
        card["calibration"] = {k: calibration.get(k) for k in ("method", "note", "fitted_on",
                                                              "test_before", "test_after")}
        card["threshold"] = metrics.get("threshold")
        card["subgroups"] = metrics.get("subgroups") or {}
        figures = folder.path / "figures"
        card["figures"] = sorted(p.name for p in figures.glob("*.png")) if figures.is_dir() else []
        self._card = card
        return card


class ModelCatalog:
    """Promoted model versions, refreshed from the registry at most every `reload_seconds`."""

    def __init__(self, settings: Settings, reload_seconds: float = 2.0) -> None:
        self.settings = settings
        self.reload_seconds = reload_seconds
        self._models: dict[str, ServedModel] = {}
        self._checked = 0.0
        self._lock = threading.Lock()

    def _wanted(self) -> dict[str, Any]:
        chosen: dict[str, Any] = {}
        for mv in api.model_versions(settings=self.settings):
            current = chosen.get(mv.name)
            rank = (mv.stage == "production", mv.version)
            if current is None or rank > (current.stage == "production", current.version):
                chosen[mv.name] = mv
        return chosen

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.reload_seconds:
            return
        with self._lock:
            if not force and now - self._checked < self.reload_seconds:
                return
            wanted = self._wanted()
            models = {}
            for name, mv in wanted.items():
                old = self._models.get(name)
                if old is not None and old.version == mv.version:
                    models[name] = old
                    continue
                served = ServedModel(name, mv.version, mv.stage, mv.run.id, Path(mv.run.path))
                try:
                    served.loaded = api.LoadedRun(mv.run.path)
                except IatrosError as e:
                    served.error = str(e)
                    log.warning("model %s cannot be served: %s", served.label, e)
                except Exception as e:  # an unreadable folder must not take the catalog down
                    served.error = f"its run folder could not be read ({type(e).__name__})"
                    log.warning("model %s cannot be served: %r", served.label, e)
                models[name] = served
            for name, old in self._models.items():  # replaced versions: stop their workers
                if models.get(name) is not old and old._batcher is not None:
                    old._batcher.close()
            self._models = models
            self._checked = time.monotonic()

    def all(self) -> list[ServedModel]:
        self.refresh()
        return sorted(self._models.values(), key=lambda m: m.name)

    def get(self, name: str) -> ServedModel:
        self.refresh()
        model = self._models.get(name)
        if model is None:
            known = ", ".join(sorted(self._models)) or "none promoted yet (`iatros promote RUN NAME`)"
            raise Problem(404, f"no promoted model named {name!r} (models: {known})", field="name")
        return model
