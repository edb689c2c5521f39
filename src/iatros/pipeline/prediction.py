"""Using a finished run on new data: predictions for new files (read by modality, scored by the
run's scorer, explained by the modality's explainer) and explanations of named stays."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from iatros.errors import ConfigError, IatrosError, MissingDataError
from iatros.pipeline.explain import explainer_for
from iatros.pipeline.inputs import NewInputs, read_inputs
from iatros.pipeline.runs import align_features, load_data, open_run, settings_for, task_for
from iatros.pipeline.scoring import scorer_for
from iatros.run_folder import EXPLANATIONS, RunFolder, write_json
from iatros.settings import get_settings
from iatros.tasks import Task
from iatros.train.predictors import load_predictor

log = logging.getLogger("iatros")


def _timestamped(folder: RunFolder, kind: str, out: str | Path | None) -> Path:
    return Path(out) if out else folder.path / kind / time.strftime("%Y%m%d-%H%M%S")


def _one_by_one(scorer: Any, folder: RunFolder, task: Task, predictor: Any, inputs: NewInputs,
                out_dir: Path) -> tuple[list[dict[str, Any]], list[int], Any]:
    """Score each input alone after the batch failed: bad ones become error entries."""
    results, kept, scores = [], [], []
    for k, name in enumerate(inputs.names):
        try:
            got, score = scorer.predict(folder, task, predictor, inputs.batch[k:k + 1], [name],
                                        out_dir)
        except IatrosError as e:
            results.append({"input": name, "error": str(e)})
            continue
        results += got
        kept.append(k)
        scores.append(None if score is None else np.asarray(score)[0])
    stacked = None if not scores or scores[0] is None else np.stack(scores)
    return results, kept, stacked


class LoadedRun:
    """A finished run opened and checked once, its predictor loaded once: what a service keeps
    in memory to answer many prediction requests. Explanations that hook into the network
    (Grad-CAM) run one at a time."""

    def __init__(self, run: str | Path, *, device: str | None = None, trust: bool = False) -> None:
        self.folder, self.config, self.task = open_run(run, trust=trust)
        self.settings = get_settings(device=device)
        self.scorer = scorer_for(self.task.target)
        self.encoding = self.folder.encoding()
        self.trust = trust
        self._predictor: Any = None
        self._lock = threading.Lock()

    @property
    def predictor(self) -> Any:
        with self._lock:
            if self._predictor is None:
                self._predictor = load_predictor(self.folder.path, self.settings.device, self.trust)
            return self._predictor

    def predict(self, inputs: Sequence[str | Path], out_dir: Path, *, explain: bool = True,
                method: str = "gradcam", compact: bool = False) -> list[dict[str, Any]]:
        """One result per input in the order given ({"input", "error"} for a bad one);
        `compact`: plain images for heat maps instead of captioned figures."""
        task, scorer = self.task, self.scorer
        new = read_inputs(task.modality, inputs, self.config, self.encoding)
        results: list[dict[str, Any]] = []
        if len(new):
            predictor = self.predictor
            try:
                results, scores = scorer.predict(self.folder, task, predictor, new.batch, new.names,
                                                 out_dir)
                kept = list(range(len(new)))
            except IatrosError as e:
                log.warning("the batch failed (%s); scoring inputs one at a time", e)
                results, kept, scores = _one_by_one(scorer, self.folder, task, predictor, new,
                                                    out_dir)
            if kept:  # explanations hook into the network: one at a time
                with self._lock if explain else nullcontext():
                    self._explain(new, kept, results, scores, out_dir, method, explain, compact)
        for result in results:
            result.update(new.notes.get(str(result.get("input")), {}))
        order = {str(Path(p).expanduser()): i for i, p in enumerate(inputs)}
        everything = results + new.errors
        return sorted(everything, key=lambda r: order.get(str(r["input"]).rsplit(":", 1)[0],
                                                          order.get(str(r["input"]), len(order))))

    def _explain(self, new: NewInputs, kept: list[int], results: list[dict[str, Any]], scores: Any,
                 out_dir: Path, method: str, explain: bool = True, compact: bool = False) -> None:
        good = [r for r in results if "error" not in r]
        explainer_for(self.task.modality).new_inputs(
            self.folder, self.task, self._predictor, new.batch[kept], [new.names[k] for k in kept],
            good, scores, out_dir, method, explain=explain, compact=compact)

    def predict_records(self, path: str | Path, work: Path, *, top: int = 8) -> list[dict[str, Any]]:
        """Risk for every stay (encounter) of new health records at `path` (a FHIR Bundle or
        NDJSON file, or a folder of any EHR source), converted into `work`, for runs trained
        on `ehr:PATH` data: the inputs use the model's own variables and codes, no outcome is
        needed. Each result adds `stay_id`, `patient_id`, `used` (the model's variables and
        codes the stay has) and `drivers`: the `top` of them whose removal moves the risk most
        (risk with it minus risk without it)."""
        name = self.config["task"]
        if not name.startswith("ehr:"):
            raise ConfigError(f"{self.folder.path} is a {name} run: new health records are scored by "
                              f"models trained on ehr:PATH data (the same kind of source, whose "
                              f"codes the model uses); train one with `iatros train ehr:PATH "
                              f"--target COLUMN`")
        features = list(self.config["data"]["features"])
        options = {**(self.config.get("task_options") or {}), "score_features": features,
                   "events_out": str(Path(work) / "events")}
        path = Path(path).resolve()
        task = task_for(f"ehr:{path}", options, self.settings.with_data_root(path.parent))
        data = align_features(task.load(path.parent), features)
        predictor = self.predictor
        stays = [str(s) for s in data.attributes["stay_id"]]
        results, scores = self.scorer.predict(self.folder, task, predictor, data.inputs, stays, work)
        risk = np.asarray(scores, dtype=float).reshape(len(stays), -1)[:, -1]
        for r, result in enumerate(results):
            result["stay_id"] = result.pop("input")
            result["patient_id"] = str(data.patient_ids[r])
            used = data.inputs.present(r)
            result["used"] = used
            result["drivers"] = self._drivers(data.inputs[[r]], used, float(risk[r]), top)
        return results

    def _drivers(self, row: Any, used: list[str], risk: float, top: int) -> list[dict[str, Any]]:
        """How much each variable or code the stay has moves its risk (all removals scored in
        one call)."""
        if not used:
            return []
        masked = type(row).stack([row.without(name) for name in used])
        without = np.asarray(self.scorer.scores(self.folder, self.predictor, masked), dtype=float)
        without = without.reshape(len(used), -1)[:, -1]
        order = np.argsort(-np.abs(risk - without))[:top]
        return [{"code": used[k], "effect": round(float(risk - without[k]), 4),
                 "risk_without": round(float(without[k]), 4)} for k in order]


def predict(run: str | Path, inputs: Sequence[str | Path], *, out: str | Path | None = None,
            explain: bool = True, method: str = "gradcam", device: str | None = None,
            trust: bool = False) -> list[dict[str, Any]]:
    """Calibrated probabilities, values, curves or entities for new inputs, one dict each, in
    the order given; an input that cannot be read or scored becomes {"input", "error"}.

    Image runs take image files (PNG, JPEG, DICOM, NIfTI; with a Grad-CAM overlay); tabular runs
    take CSV files with the training columns, one prediction per row (named FILE:LINE); text
    runs take note files, one prediction (or a tagger's entities) per file; signal runs take
    recordings, each also scored per window, with heart rate, quality and a figure
    (`SignalExplainer.new_inputs`). `explain=False` leaves out heat maps, words and figures.
    """
    loaded = LoadedRun(run, device=device, trust=trust)
    return loaded.predict(inputs, _timestamped(loaded.folder, "predictions", out), explain=explain,
                          method=method)


def explain_records(run: str | Path, stays: Sequence[str], *, data_root: str | Path | None = None,
                    out: str | Path | None = None, device: str | None = None,
                    trust: bool = False) -> list[dict[str, Any]]:
    """Per-stay attributions (variables, hours, static features) of a health-record run, for
    stays of its data (or of the copy at `data_root`); JSON entries plus one figure each."""
    settings = settings_for(data_root, None, device)
    folder, config, task = open_run(run, settings=settings, data_root=data_root, trust=trust)
    if data_root is None:
        settings = settings.with_data_root(config["data_root"])
    explainer = explainer_for(task.modality)
    if not explainer.explains_records:
        raise ConfigError(f"{folder.path} is a {task.modality.value} run; stay explanations need "
                          f"a health-record run (image runs: pass image files)")
    data = load_data(task, config, settings)
    known = {str(s): i for i, s in enumerate(data.attributes["stay_id"])}
    missing = [s for s in stays if str(s) not in known]
    if missing:
        raise MissingDataError(f"stay id(s) {', '.join(map(str, missing[:5]))} are not in "
                               f"{task.name} at {settings.data_root} (ids look like "
                               f"{', '.join(list(known)[:3])})")
    rows = np.array([known[str(s)] for s in stays])
    predictor = load_predictor(folder.path, settings.device, trust)
    scores = scorer_for(task.target).scores(folder, predictor, data.inputs[rows])
    out_dir = _timestamped(folder, "explanations", out)
    items = explainer.records(task, predictor, data, rows, np.asarray(scores), out_dir)
    if not items:
        raise ConfigError(f"{config['model']} has no per-time-point explanation; train a sequence "
                          f"model (--model grud or event-transformer)")
    write_json(out_dir / EXPLANATIONS, items)
    return items
