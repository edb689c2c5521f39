"""Why a model decides, looked up by modality: Grad-CAM overlays for images, integrated
gradients per variable and hour for health-record stays, word attributions for notes,
integrated gradients over time on signal traces.

Each explainer explains a few telling test rows when a run finishes, new inputs given to
`predict`, and (health records) named stays. A modality without an entry has no explanations;
a new modality adds one entry to `EXPLAINERS`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iatros.data.splits import Split
from iatros.errors import ConfigError, IatrosError
from iatros.kinds import Modality
from iatros.pipeline.options import EvalOptions
from iatros.pipeline.scoring import scorer_for
from iatros.run_folder import EXPLANATIONS, FIGURES, RunFolder, write_json
from iatros.tasks import Task, TaskData
from iatros.train.predictors import Predictor, make_dataset

log = logging.getLogger("iatros")
N_NOTE_EXAMPLES = 5
WINDOW_OVERLAP = 0.5  # signal windows scored by `predict` overlap by half their length
WINDOW_KEYS = ("prediction", "probabilities")  # what each scored window keeps of its result


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

    def new_inputs(self, run: RunFolder, task: Task, predictor: Predictor, batch: Any,
                   names: Sequence[str], results: list[dict[str, Any]], scores: Any,
                   out_dir: Path, method: str, explain: bool = True, compact: bool = False) -> None:
        """Add to each `predict` result, in place, what the modality reads off its input beyond
        the score (`compact`: plain images instead of captioned figures, for a service);
        the scores (always) and its explanation (when `explain`)."""

    def describe(self, result: Mapping[str, Any]) -> str:
        """What the CLI's table adds to one `predict` result's details ("" for nothing)."""
        return ""

    def finish(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
               split: Split, options: EvalOptions) -> dict[str, Any]:
        """metrics.json sections the modality adds once a run is scored, with what it keeps in
        the run folder for `predict` (molecules: the applicability domain and the ensemble's
        uncertainty); nothing by default."""
        return {}

    def records(self, task: Task, predictor: Predictor, data: TaskData, rows: np.ndarray,
                scores: np.ndarray, out_dir: Path) -> list[dict[str, Any]]:
        """Explanations of named records of the task's data (see `explains_records`)."""
        raise ConfigError(f"{task.name} is a {task.modality.value} run; its records cannot be "
                          f"explained one by one")


def _network(predictor: Predictor) -> Any:
    return getattr(predictor, "network", None)


def _stem(name: str) -> str:
    """An input file's own name without its suffixes: the only part of it figures may carry."""
    return Path(name).name.split(".")[0]


class ImageExplainer(Explainer):
    """Grad-CAM (or Grad-CAM++) heat maps over the input image."""

    def images(self, task: Task, predictor: Predictor, inputs: Any, labels: Sequence[str],
               scores: Any, out_dir: Path, names: Sequence[str] | None = None,
               method: str = "gradcam", compact: bool = False) -> list[dict[str, Any]]:
        import torch

        from iatros.explain.gradcam import explain_image, heatmaps

        network = _network(predictor)
        if network is None or not predictor.spec.heatmaps:
            return []
        scorer = scorer_for(task.target)
        dataset = make_dataset(predictor.spec, inputs, np.zeros(len(inputs), dtype=np.float32),
                               task.target, train=False, params=predictor.info["params"])
        xs = [dataset[k][0] for k in range(len(inputs))]
        units = [scorer.output_unit(task, scores[k]) for k in range(len(inputs))]
        heat: dict[int, np.ndarray] = {}
        for unit in {u[0] for u in units}:  # one Grad-CAM pass per output unit explained
            same = [k for k in range(len(inputs)) if units[k][0] == unit]
            for k, h in zip(same, heatmaps(network, torch.stack([xs[k] for k in same]), unit,
                                           method), strict=True):
                heat[k] = h
        items = []
        for k in range(len(inputs)):
            unit, shown, explained = units[k]
            caption = f"{labels[k]}: {shown}; heat map for {explained}"
            name = names[k] if names else f"gradcam_{k}"
            item = explain_image(network, xs[k], unit, out_dir / f"{name}.png", caption, method=method,
                                 compact=compact, heat=heat[k])
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

    def new_inputs(self, run: RunFolder, task: Task, predictor: Predictor, batch: Any,
                   names: Sequence[str], results: list[dict[str, Any]], scores: Any,
                   out_dir: Path, method: str, explain: bool = True, compact: bool = False) -> None:
        if not explain:
            return
        stems = [f"{_stem(n)}-gradcam" for n in names]
        items = self.images(task, predictor, batch, [Path(n).name for n in names], scores, out_dir,
                            names=stems, method=method, compact=compact)
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


def _object_array(items: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def window_episodes(windows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Runs of consecutive windows with the same predicted class, as episodes from the first
    window's start to the last one's end (overlapping windows join), in time order."""
    episodes: list[dict[str, Any]] = []
    for w in windows:
        label = str(w.get("prediction", ""))
        if episodes and episodes[-1]["prediction"] == label and w["start_s"] <= episodes[-1]["end_s"]:
            episodes[-1]["end_s"] = max(episodes[-1]["end_s"], w["end_s"])
            episodes[-1]["windows"] += 1
        else:
            episodes.append({"prediction": label, "start_s": w["start_s"], "end_s": w["end_s"],
                             "windows": 1})
    return episodes


def recording_windows(x: np.ndarray, fs: float, length_s: float) -> tuple[list[np.ndarray], list[int]]:
    """A recording cut into windows of `length_s` overlapping by `WINDOW_OVERLAP`, the last one
    ending at the recording's end (`window_array`), with each window's first sample; a recording
    shorter than one window is a single window, itself."""
    from iatros.data.signals import Signal
    from iatros.data.signals.processing import window_array

    signal = Signal(x, fs, ["ecg"], [""])
    if signal.n_samples < max(1, round(length_s * fs)):
        return [np.asarray(x, dtype=np.float32)], [0]
    stack, starts = window_array(signal, length_s, overlap=WINDOW_OVERLAP)
    return [w[:, 0].astype(np.float32) for w in stack], [int(round(s * fs)) for s in starts]


class SignalExplainer(Explainer):
    """Integrated gradients over time on the trace of a few test recordings (networks only); for
    new recordings, scores per window, heart rate, quality and a figure of the whole record."""

    intro = ("Integrated gradients for a few test recordings: the shaded band under each trace is "
             "how much that moment moved the network's output for the class named (smoothed over "
             "0.1 s). It shows where the network looked, not why.")

    def test_examples(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
                      rows: np.ndarray, scores: np.ndarray) -> Any:
        from iatros.explain.signal import explain_trace

        fs = _signal_window(predictor.info["params"])[0]
        items = [{**explain_trace(network, x, unit, run.file(FIGURES) / f"saliency_{k + 1}.png",
                                  caption, fs=fs), "caption": caption}
                 for network, k, x, unit, caption in _network_examples(task, predictor, data, rows,
                                                                      scores, "test example")]
        return _relative(run, items, self.intro) if items else None

    def new_inputs(self, run: RunFolder, task: Task, predictor: Predictor, batch: Any,
                   names: Sequence[str], results: list[dict[str, Any]], scores: Any,
                   out_dir: Path, method: str, explain: bool = True, compact: bool = False) -> None:
        """Each recording (1-D, at the model's `fs`) gets:
        - "windows": windows of the model's `length_s` (default 30 s) overlapping by half, the
          last ending at the end (see `recording_windows`), each scored like the recording (the
          run's calibration and threshold): {"start_s", "end_s", "prediction", "probabilities"};
        - "n_beats", "heart_rate_bpm" ({"mean", "min", "max"}, None when unreadable) and
          "quality" ({"index", "label", "method"}, "reason" when unreadable) from
          `data.signals.processing.ecg_reading`: "good" when the mean correlation of the beats with
          their average beat (neurokit2's templatematch, Orphanidou et al. 2015) is at least
          `GOOD_QUALITY` (0.66), "poor" below, "unreadable" when flat, mostly missing, under 2 s or
          with fewer than 2 R-peaks;
        - with `explain`, "figure": `out_dir/STEM-signal.png` (STEM: the file's own name), the
          whole standardised recording with its windows' predicted classes in a strip above it,
          the R-peaks marked and, for networks, the integrated-gradients band for the recording's
          predicted output, computed on every window and stitched (`recording_saliency`).
        """
        from iatros.data.signals.processing import ecg_reading

        params = predictor.info["params"]
        fs, length_s = _signal_window(params)
        scorer = scorer_for(task.target)
        for k, (result, name) in enumerate(zip(results, names, strict=True)):
            x = np.asarray(batch[k], dtype=np.float32)
            pieces, starts = recording_windows(x, fs, length_s)
            result["windows"] = []
            try:
                scored, _ = scorer.predict(run, task, predictor, _object_array(pieces),
                                           [name] * len(pieces), out_dir)
                result["windows"] = [
                    {"start_s": round(a / fs, 3), "end_s": round(min(a + len(p), len(x)) / fs, 3),
                     **{key: w[key] for key in WINDOW_KEYS if key in w}}
                    for a, p, w in zip(starts, pieces, scored, strict=True)]
                result["episodes"] = window_episodes(result["windows"])
            except IatrosError as e:  # keep the recording's own prediction and the batch
                log.warning("%s: windows not scored (%s)", name, e)
                result["windows_error"] = str(e)
            reading = ecg_reading(x, fs)
            rpeaks = reading.pop("rpeaks")
            result.update(reading)
            if explain:
                result["figure"] = str(self.recording_figure(
                    task, predictor, x, pieces, starts, rpeaks, result, scores[k], out_dir,
                    _stem(name)))

    def recording_figure(self, task: Task, predictor: Predictor, x: np.ndarray,
                         pieces: Sequence[np.ndarray], starts: Sequence[int], rpeaks: np.ndarray,
                         result: Mapping[str, Any], score: Any, out_dir: Path, stem: str) -> Path:
        """`draw_recording` of one recording as `out_dir/STEM-signal.png`, titled with the
        stem, prediction, heart rate and quality; the saliency band on networks only."""
        from iatros.data.transforms.signals import standardise
        from iatros.explain.signal import draw_recording, recording_saliency

        params = predictor.info["params"]
        fs, _ = _signal_window(params)
        unit, shown, explained = scorer_for(task.target).output_unit(task, score)
        network, heat = _network(predictor), None
        if network is not None:
            dataset = make_dataset(predictor.spec, _object_array(pieces),
                                   np.zeros(len(pieces), dtype=np.float32), task.target,
                                   train=False, params=params)
            heat = recording_saliency(network, [dataset[i][0] for i in range(len(pieces))],
                                      starts, len(x), unit, fs=fs)
        title = f"{stem}: {shown}; {self.describe(result)}"
        if heat is not None:
            title += f"; attributions for {explained}"
        windows = [(w["start_s"], w["end_s"], str(w.get("prediction", ""))) for w in result["windows"]]
        return draw_recording(standardise(x), fs, out_dir / f"{stem}-signal.png", title,
                              windows=windows, classes=list(task.classes or ()), rpeaks=rpeaks,
                              heat=heat)

    def describe(self, result: Mapping[str, Any]) -> str:
        """Heart rate, quality and the windows' predictions in a few words."""
        if "quality" not in result:
            return ""
        rate, quality = result["heart_rate_bpm"], result["quality"]
        heart = (f"heart rate {rate['mean']:.0f} bpm ({rate['min']:.0f}-{rate['max']:.0f}), "
                 f"{result['n_beats']} beats" if rate else "heart rate unreadable")
        windows = result.get("windows") or []
        counts = Counter(str(w.get("prediction", "")) for w in windows)
        split = ", ".join(f"{n} {label}" for label, n in counts.most_common())
        return (f"{heart}; quality {quality['label']} ({quality['index']:.2f}); "
                f"{len(windows)} window{'s' if len(windows) != 1 else ''}{': ' + split if split else ''}")


def _network_examples(task: Task, predictor: Predictor, data: TaskData, rows: np.ndarray,
                      scores: np.ndarray, noun: str) -> Iterator[tuple[Any, int, Any, int, str]]:
    """(network, k, prepared input, output unit, caption) of the few test rows the scorer picks;
    nothing for a model that is not a network."""
    network = _network(predictor)
    if network is None:
        return
    scorer = scorer_for(task.target)
    picks = scorer.pick_examples(data.targets[rows], scores)
    chosen = rows[picks]
    dataset = make_dataset(predictor.spec, data.inputs[chosen], data.targets[chosen], task.target,
                           train=False, params=predictor.info["params"])
    for k in range(len(chosen)):
        x, _ = dataset[k]
        unit, shown, explained = scorer.output_unit(task, scores[picks[k]])
        truth = scorer.true_label(task, data.targets[chosen[k]])
        yield (network, k, x, unit,
               f"{noun} {k + 1} (true: {truth}): {shown}; attributions for {explained}")


def _signal_window(params: Mapping[str, Any]) -> tuple[float, float]:
    """The rate and window length a signal model was trained with (`fs`, `length_s`)."""
    from iatros.data.transforms.signals import FS, LENGTH_S

    return float(params.get("fs", FS)), float(params.get("length_s", LENGTH_S))


class BeatExplainer(Explainer):
    """Integrated gradients of a few test beats (networks only): the beat's samples and RR
    features against the same beat on time and flat."""

    intro = ("Integrated gradients for a few test beats, against the same beat arriving on time "
             "with a flat trace: the band under each beat is how much each moment of its shape "
             "moved the network's output for the class named, the bars how much each RR feature "
             "(prematurity, pause) did. They show what the network used, not why.")

    def test_examples(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
                      rows: np.ndarray, scores: np.ndarray) -> Any:
        from iatros.data.signals.beats import BEATS_FS, BEFORE_S, RR_FEATURES
        from iatros.explain.beat import explain_beat

        items = [{**explain_beat(network, x, unit, run.file(FIGURES) / f"beat_{k + 1}.png", caption,
                                 fs=BEATS_FS, rr_names=RR_FEATURES, before_s=BEFORE_S),
                  "caption": caption}
                 for network, k, x, unit, caption in _network_examples(task, predictor, data, rows,
                                                                      scores, "test beat")]
        return _relative(run, items, self.intro) if items else None


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

    def new_inputs(self, run: RunFolder, task: Task, predictor: Predictor, batch: Any,
                   names: Sequence[str], results: list[dict[str, Any]], scores: Any,
                   out_dir: Path, method: str, explain: bool = True, compact: bool = False) -> None:
        from iatros.models.text import word_attributions

        pipeline = _word_model(predictor)
        if not explain or pipeline is None or scores is None:
            return
        for result, text, row in zip(results, batch, _per_class(scores), strict=True):
            k = int(np.argmax(row))
            result["words"] = [{"term": w, "contribution": c}
                               for w, c in word_attributions(pipeline, str(text), k)]


def _figure_stem(name: str, k: int) -> str:
    """A figure's file name for a molecule named FILE:LINE (FILESTEM-lineLINE) or given inline
    (molecule-K): never the SMILES itself, whose characters do not belong in file names."""
    head, sep, tail = name.rpartition(":")
    if sep and tail.isdigit() and head:
        return f"{_stem(head)}-line{tail}"
    return f"molecule-{k + 1}"


class MoleculeExplainer(Explainer):
    """Atom attributions drawn on the molecule (integrated gradients for graph networks, atom
    masking otherwise); for new molecules also the applicability domain (nearest-neighbour
    Tanimoto similarity to the training set) and, for ensembles, the uncertainty
    (`pipeline.molecules`)."""

    intro = ("Atom attributions for a few test molecules: red atoms raised the model's output "
             "for what is named, blue atoms lowered it (the strongest atom in full colour). For "
             "graph networks, integrated gradients on the atom features; for the other models, "
             "how much the output drops when the atom is replaced by a dummy atom. They show "
             "what the model used, not a mechanism of action.")
    max_figures = 25  # `predict` draws attributions for this many molecules per call at most

    def finish(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
               split: Split, options: EvalOptions) -> dict[str, Any]:
        from iatros.pipeline.molecules import finish

        return finish(run, task, predictor, data, split, options)

    def draw(self, task: Task, predictor: Predictor, smiles: str, score: Any, out: Path,
             legend: str) -> dict[str, Any]:
        """Attributions of one molecule for the output the scorer explains, drawn at `out`."""
        from iatros.explain.molecule import draw_attributions
        from iatros.pipeline.molecules import atom_attributions

        unit, shown, explained = scorer_for(task.target).output_unit(task, score)
        weights, method = atom_attributions(task, predictor, smiles, unit)
        path = draw_attributions(smiles, weights, out, legend=f"{legend}: {shown}")
        return {"path": str(path), "method": method, "shown": shown, "explained": explained,
                "atoms": [round(float(w), 6) for w in weights]}

    def test_examples(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
                      rows: np.ndarray, scores: np.ndarray) -> Any:
        scorer = scorer_for(task.target)
        picks = scorer.pick_examples(data.targets[rows], scores)
        items = []
        for k, pick in enumerate(picks):
            row = rows[pick]
            drawn = self.draw(task, predictor, str(data.inputs[row]), scores[pick],
                              run.file(FIGURES) / f"molecule_{k + 1}.svg", f"test molecule {k + 1}")
            truth = scorer.true_label(task, data.targets[row])
            caption = (f"test molecule {k + 1} (true: {truth}): {drawn['shown']}; "
                       f"{drawn['method']} for {drawn['explained']}")
            items.append({"path": drawn["path"], "caption": caption, "row": int(row),
                          "method": drawn["method"], "atoms": drawn["atoms"]})
        return _relative(run, items, self.intro) if items else None

    def new_inputs(self, run: RunFolder, task: Task, predictor: Predictor, batch: Any,
                   names: Sequence[str], results: list[dict[str, Any]], scores: Any,
                   out_dir: Path, method: str, explain: bool = True, compact: bool = False) -> None:
        """Each molecule gets `nn_similarity`, `in_domain`, `uncertainty` (and `interval_95` for
        regression ensembles); with `explain`, the first `max_figures` also `heatmap` (an SVG of
        the molecule coloured by atom attribution), `atoms` and `attribution_method`."""
        from iatros.pipeline.molecules import describe_new

        smiles = [str(s) for s in batch]
        describe_new(run, task, predictor, smiles, results)
        if not explain:
            return
        if len(smiles) > self.max_figures:
            log.info("atom attributions drawn for the first %d of %d molecules; explain others "
                     "with `iatros explain RUN --smiles ...`", self.max_figures, len(smiles))
        for k, (result, molecule) in enumerate(zip(results[:self.max_figures],
                                                   smiles[:self.max_figures], strict=False)):
            try:
                drawn = self.draw(task, predictor, molecule, scores[k],
                                  out_dir / f"{_figure_stem(names[k], k)}-atoms.svg",
                                  _figure_stem(names[k], k))
            except IatrosError as e:
                result["heatmap_error"] = str(e)
                continue
            result.update(heatmap=drawn["path"], attribution_method=drawn["method"],
                          atoms=drawn["atoms"])

    def describe(self, result: Mapping[str, Any]) -> str:
        """Uncertainty and the applicability flag in a few words."""
        parts = []
        uncertainty = result.get("uncertainty")
        if isinstance(uncertainty, dict) and uncertainty:
            parts.append(f"uncertainty up to {max(uncertainty.values()):.3g}")
        elif uncertainty is not None:
            parts.append(f"uncertainty {uncertainty:.3g}")
        if "nn_similarity" in result:
            where = "in domain" if result.get("in_domain") else "OUT OF DOMAIN"
            parts.append(f"nearest training similarity {result['nn_similarity']:.2f} ({where})")
        return "; ".join(parts)


class OmicsExplainer(Explainer):
    """Integrated gradients per feature (gene, miRNA, protein) over the test samples: each
    class's top features with their direction (`pipeline.omics`)."""

    def test_examples(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
                      rows: np.ndarray, scores: np.ndarray) -> Any:
        from iatros.pipeline.omics import INTRO, class_attributions

        items = class_attributions(task, predictor, data, rows, run.file(FIGURES))
        return _relative(run, items, INTRO) if items else None

    def finish(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
               split: Split, options: EvalOptions) -> dict[str, Any]:
        """Runs whose scorer hands no test scores on (survival: the log-risk's attributions),
        for which `test_examples` is not called."""
        if not scorer_for(task.target).hands_test_scores:
            payload = self.test_examples(run, task, predictor, data, split.test,
                                         np.zeros(len(split.test)))
            if payload:
                write_json(run.file(EXPLANATIONS), payload)
        return {}


class DrugResponseExplainer(Explainer):
    """No per-pair explanation; once scored, the per-drug correlations of predicted and measured
    response (`pipeline.drug_response`)."""

    def finish(self, run: RunFolder, task: Task, predictor: Predictor, data: TaskData,
               split: Split, options: EvalOptions) -> dict[str, Any]:
        from iatros.pipeline.drug_response import finish

        return finish(run, task, options)


EXPLAINERS: dict[Modality, Explainer] = {
    Modality.IMAGE: ImageExplainer(),
    Modality.EHR: StayExplainer(),
    Modality.TEXT: NoteExplainer(),
    Modality.SIGNAL: SignalExplainer(),
    Modality.BEATS: BeatExplainer(),
    Modality.MOLECULE: MoleculeExplainer(),
    Modality.OMICS: OmicsExplainer(),
    Modality.DRUG_RESPONSE: DrugResponseExplainer(),
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
