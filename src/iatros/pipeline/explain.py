"""Why a model decides, looked up by modality: Grad-CAM overlays for images, integrated
gradients per variable and hour for health-record stays, word attributions for notes,
integrated gradients over time on signal traces.

Each explainer explains a few telling test rows when a run finishes, new inputs given to
`predict`, and (health records) named stays. A modality without an entry has no explanations;
a new modality adds one entry to `EXPLAINERS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iatros.errors import ConfigError
from iatros.kinds import Modality
from iatros.pipeline.scoring import scorer_for
from iatros.run_folder import EXPLANATIONS, FIGURES, RunFolder, write_json
from iatros.tasks import Task, TaskData
from iatros.train.predictors import Predictor, make_dataset

N_NOTE_EXAMPLES = 5


def phi_words(text: str) -> set[str]:
    """Lower-cased words inside the PHI the de-identification detector finds in `text`."""
    from iatros.nlp.phi import find_phi

    return {w.lower() for s in find_phi(text) for w in text[s.start:s.end].split()}


def looks_like_phi(term: str) -> bool:
    """A term (word or bigram) the detector flags on its own, e.g. a common first name."""
    from iatros.nlp.phi import find_phi

    return bool(find_phi(term))


class Explainer:
    """No explanations: the default for modalities without an explainer."""

    intro = ""
    explains_records = False  # named records of the task's data (health-record stays)

    def test_examples(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
                      rows: np.ndarray, scores: np.ndarray) -> Any:
        """explanations.json content for a few test rows (None: nothing to explain)."""
        return None

    def new_inputs(self, task: Task, predictor: Predictor, batch: Any, names: Sequence[str],
                   results: list[dict[str, Any]], scores: Any, out_dir: Path, method: str) -> None:
        """Add an explanation to each `predict` result, in place."""

    def records(self, task: Task, predictor: Predictor, data: TaskData, rows: np.ndarray,
                scores: np.ndarray, out_dir: Path) -> list[dict[str, Any]]:
        """Explanations of named records of the task's data (see `explains_records`)."""
        raise ConfigError(f"{task.name} is a {task.modality.value} run; its records cannot be "
                          f"explained one by one")


def _network(predictor: Predictor) -> Any:
    return getattr(predictor, "network", None)


class ImageExplainer(Explainer):
    """Grad-CAM (or Grad-CAM++) heat maps over the input image."""

    def images(self, task: Task, predictor: Predictor, inputs: Any, labels: Sequence[str],
               scores: Any, out_dir: Path, names: Sequence[str] | None = None,
               method: str = "gradcam") -> list[dict[str, Any]]:
        from iatros.explain.gradcam import explain_image

        network = _network(predictor)
        if network is None or not predictor.spec.heatmaps:
            return []
        scorer = scorer_for(task.target)
        dataset = make_dataset(predictor.spec, inputs, np.zeros(len(inputs), dtype=np.float32),
                               task.target, train=False, params=predictor.info["params"])
        items = []
        for k in range(len(inputs)):
            x, _ = dataset[k]
            unit, shown, explained = scorer.output_unit(task, scores[k])
            caption = f"{labels[k]}: {shown}; heat map for {explained}"
            name = names[k] if names else f"gradcam_{k}"
            item = explain_image(network, x, unit, out_dir / f"{name}.png", caption, method=method)
            items.append({**item, "caption": caption})
        return items

    def test_examples(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
                      rows: np.ndarray, scores: np.ndarray) -> Any:
        scorer = scorer_for(task.target)
        picks = scorer.pick_examples(data.targets[rows], scores)
        chosen = rows[picks]
        labels = [f"test example {k + 1} (true: {scorer.true_label(task, data.targets[r])})"
                  for k, r in enumerate(chosen)]
        items = self.images(task, predictor, data.inputs[chosen], labels, scores[picks],
                            run.file(FIGURES))
        return _relative(run, items, self.intro)

    def new_inputs(self, task: Task, predictor: Predictor, batch: Any, names: Sequence[str],
                   results: list[dict[str, Any]], scores: Any, out_dir: Path, method: str) -> None:
        stems = [f"{Path(n).name.split('.')[0]}-gradcam" for n in names]
        items = self.images(task, predictor, batch, names, scores, out_dir, names=stems,
                            method=method)
        for result, item in zip(results, items, strict=True):
            result["heatmap"] = item["path"]


class StayExplainer(Explainer):
    """Integrated gradients per variable and hour of a health-record stay (sequence models)."""

    explains_records = True
    intro = ("Integrated gradients for a few test stays: each cell is how much one variable's "
             "value in that hour moved the model's output away from what an average value "
             "would give (red raises it, blue lowers it). They show what the model used, not "
             "what caused the outcome.")

    def records(self, task: Task, predictor: Predictor, data: TaskData, rows: np.ndarray,
                scores: np.ndarray, out_dir: Path, anonymous: bool = False) -> list[dict[str, Any]]:
        """Attributions per stay; `anonymous` captions say "test stay k" instead of the stay
        and patient ids (for the report, which is shared)."""
        from iatros.explain.sequence import explain_stay, explainable

        network = explainable(_network(predictor))
        if network is None:
            return []
        scorer = scorer_for(task.target)
        dataset = make_dataset(predictor.spec, data.inputs[rows], data.targets[rows], task.target,
                               train=False, params=predictor.info["params"])
        stays = (data.attributes["stay_id"].to_numpy() if "stay_id" in data.attributes.columns
                 else np.arange(len(data)))
        members = len(getattr(predictor, "members", ()))
        items = []
        for k, r in enumerate(rows):
            x, _ = dataset[k]
            unit, shown, explained = scorer.output_unit(task, scores[k])
            truth = scorer.true_label(task, data.targets[r])
            who = (f"test stay {k + 1}" if anonymous
                   else f"stay {stays[r]} (patient {data.patient_ids[r]})")
            caption = (f"{who} (true: {truth}): {shown}; attributions for {explained}"
                       f"{f' (of the first of {members} ensemble members)' if members > 1 else ''}")
            figure = f"test_stay_{k + 1}.png" if anonymous else f"stay_{stays[r]}.png"
            item = explain_stay(network, {n: v.unsqueeze(0) for n, v in x.items()},
                                data.inputs[[r]], unit, caption, out_dir / figure)
            items.append({"stay_id": str(stays[r]), "patient_id": str(data.patient_ids[r]),
                          "score": np.asarray(scores[k]).tolist(), **item})
        return items

    def test_examples(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
                      rows: np.ndarray, scores: np.ndarray) -> Any:
        picks = scorer_for(task.target).pick_examples(data.targets[rows], scores)
        items = self.records(task, predictor, data, rows[picks], scores[picks], run.file(FIGURES),
                             anonymous=True)
        return _relative(run, items, self.intro)


class SignalExplainer(Explainer):
    """Integrated gradients over time on the trace of a few test recordings (networks only)."""

    intro = ("Integrated gradients for a few test recordings: the shaded band under each trace is "
             "how much that moment moved the network's output for the class named (smoothed over "
             "0.1 s). It shows where the network looked, not why.")

    def test_examples(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
                      rows: np.ndarray, scores: np.ndarray) -> Any:
        from iatros.explain.signal import explain_trace

        network = _network(predictor)
        if network is None:
            return None
        scorer = scorer_for(task.target)
        picks = scorer.pick_examples(data.targets[rows], scores)
        chosen = rows[picks]
        params = predictor.info["params"]
        dataset = make_dataset(predictor.spec, data.inputs[chosen], data.targets[chosen],
                               task.target, train=False, params=params)
        items = []
        for k in range(len(chosen)):
            x, _ = dataset[k]
            unit, shown, explained = scorer.output_unit(task, scores[picks[k]])
            truth = scorer.true_label(task, data.targets[chosen[k]])
            caption = (f"test example {k + 1} (true: {truth}): {shown}; attributions for "
                       f"{explained}")
            item = explain_trace(network, x, unit, run.file(FIGURES) / f"saliency_{k + 1}.png",
                                 caption, fs=float(params.get("fs", 300.0)))
            items.append({**item, "caption": caption})
        return _relative(run, items, self.intro)


def _per_class(scores: Any) -> np.ndarray:
    """Scores as one column per class (a binary P(positive) becomes [1 - p, p])."""
    scores = np.asarray(scores, dtype=float)
    return np.column_stack([1 - scores, scores]) if scores.ndim == 1 else scores


def _word_model(predictor: Predictor) -> Any:
    """The fitted linear text pipeline of a model that declares exact word attributions."""
    spec = predictor.spec
    return getattr(predictor, "estimator", None) if spec and spec.word_attributions else None


class NoteExplainer(Explainer):
    """Word attributions of a linear note classifier (coefficient x tf-idf, exact)."""

    method = ("logistic-regression coefficient x tf-idf value (exact for this linear model: the "
              "terms sum, with the intercept, to the class logit)")

    def test_examples(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
                      rows: np.ndarray, scores: np.ndarray) -> Any:
        """Each class's top terms, and for a few test notes the terms that pushed them toward
        the predicted class."""
        from iatros.models.text import class_top_words, word_attributions

        pipeline = _word_model(predictor)
        if pipeline is None:
            return None
        scores = _per_class(scores)
        examples = []
        for i in range(min(N_NOTE_EXAMPLES, len(rows))):
            k = int(np.argmax(scores[i]))
            note = str(data.inputs[rows[i]])
            examples.append({
                "row": int(rows[i]), "patient_id": str(data.patient_ids[rows[i]]),
                "true": task.classes[int(data.targets[rows[i]])], "predicted": task.classes[k],
                "probability": round(float(scores[i, k]), 4),
                "words": [{"term": w, "contribution": c}
                          for w, c in word_attributions(pipeline, note, k)
                          if w not in phi_words(note)],
            })
        top = {c: [t for t in terms if not looks_like_phi(t)]
               for c, terms in class_top_words(pipeline, task.classes).items()}
        return {"method": self.method, "class_top_terms": top, "examples": examples,
                "phi_filtered": "terms the de-identification detector flags as PHI (in the note, "
                                "or on their own) are left out"}

    def new_inputs(self, task: Task, predictor: Predictor, batch: Any, names: Sequence[str],
                   results: list[dict[str, Any]], scores: Any, out_dir: Path, method: str) -> None:
        from iatros.models.text import word_attributions

        pipeline = _word_model(predictor)
        if pipeline is None or scores is None:
            return
        for result, text, row in zip(results, batch, _per_class(scores), strict=True):
            k = int(np.argmax(row))
            result["words"] = [{"term": w, "contribution": c}
                               for w, c in word_attributions(pipeline, str(text), k)]


EXPLAINERS: dict[Modality, Explainer] = {
    Modality.IMAGE: ImageExplainer(),
    Modality.EHR: StayExplainer(),
    Modality.TEXT: NoteExplainer(),
    Modality.SIGNAL: SignalExplainer(),
}


def explainer_for(modality: Modality) -> Explainer:
    return EXPLAINERS.get(modality, Explainer())


def _relative(run: RunFolder, items: list[dict[str, Any]], intro: str) -> list[dict[str, Any]]:
    for item in items:
        item["path"] = str(Path(item["path"]).relative_to(run.path))
        if intro:
            item["intro"] = intro
    return items


def explain_test_examples(run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
                          rows: np.ndarray, scores: np.ndarray) -> None:
    """Write explanations.json for a few telling test rows, when the modality explains any."""
    payload = explainer_for(task.modality).test_examples(run, task, predictor, data, rows, scores)
    if payload:
        write_json(run.file(EXPLANATIONS), payload)
