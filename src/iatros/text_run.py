"""Finishing text runs: token-level (NER) runs and word attributions for note classifiers.

Kept apart from api.py like `survival_run.py`: api calls `finish_tokens` for tasks whose target
kind is tokens, and `explain_notes` after a note classifier's run is scored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.data.splits import Split
from iatros.errors import IatrosError
from iatros.evaluate import metrics as M
from iatros.kinds import TargetKind
from iatros.run_folder import PREDICTIONS, RunFolder, write_csv, write_json

EXPLANATIONS = "explanations.json"
N_EXAMPLES = 5


def pad_tags(rows: Any, width: int | None = None) -> np.ndarray:
    """Tag-id sequences as one (N, L) int array padded with -1."""
    rows = list(rows)
    width = width or max([len(r) for r in rows] + [1])
    out = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        r = np.asarray(r, dtype=np.int64).reshape(-1)[:width]
        out[i, :len(r)] = r
    return out


def predict_tags(predictor: Any, sentences: Any) -> list[np.ndarray]:
    """Predicted tag ids per sentence (trimmed to each sentence's length)."""
    decoded = np.asarray(predictor.predict_scores(sentences))
    return [decoded[i, :len(s)].astype(np.int64) for i, s in enumerate(sentences)]


def tagger_from(predictor: Any, classes: list[str]) -> Callable[[list[list[str]]], list[list[str]]]:
    """A trained tagger as a callable from token lists to BIO tag names (the pipeline's Tagger)."""
    from iatros.tasks.text import object_array

    def tag(sentences: list[list[str]]) -> list[list[str]]:
        ids = predict_tags(predictor, object_array(sentences))
        return [[classes[int(t)] if 0 <= int(t) < len(classes) else "O" for t in row]
                for row in ids]
    return tag


def predict_notes(task: Any, predictor: Any, calibrator: Any, files: list[Path]) -> list[dict[str, Any]]:
    """Predictions for note files: a tagger's entities with offsets, or a note classifier's
    calibrated class probabilities with the words that drove them. A file that cannot be read
    as a note gives {"input", "error"} and the others go on."""
    from iatros.nlp.io import read_note
    from iatros.nlp.pipeline import ClinicalPipeline

    results: list[dict[str, Any]] = []
    notes = []
    for f in files:
        try:
            notes.append((f, read_note(f).text))
        except IatrosError as e:
            results.append({"input": str(f), "error": str(e)})
    if task.target is TargetKind.TOKENS:
        pipeline = ClinicalPipeline(tagger=tagger_from(predictor, list(task.classes)))
        results += [{"input": str(f), "entities": pipeline.tag(text)} for f, text in notes]
    elif notes:
        scores = calibrator.transform(predictor.predict_scores(
            np.array([t for _, t in notes], dtype=object)))
        estimator = getattr(predictor, "estimator", None)
        for (f, text), row in zip(notes, np.asarray(scores), strict=True):
            k = int(np.argmax(row))
            result = {"input": str(f), "prediction": task.classes[k],
                      "probabilities": {c: float(v) for c, v in zip(task.classes, row, strict=True)}}
            if _is_linear_text_model(estimator):
                from iatros.models.text import word_attributions

                result["words"] = [{"term": w, "contribution": c}
                                   for w, c in word_attributions(estimator, text, k)]
            results.append(result)
    order = {str(f): i for i, f in enumerate(files)}
    return sorted(results, key=lambda r: order[r["input"]])


def _is_linear_text_model(estimator: Any) -> bool:
    return estimator is not None and "tfidf" in getattr(estimator, "named_steps", {})


def _names(task: Any, ids: np.ndarray) -> str:
    return " ".join(task.classes[int(t)] if 0 <= int(t) < len(task.classes) else "?" for t in ids)


def score_token_rows(task: Any, predictor: Any, data: Any, rows: np.ndarray, split_name: str,
                     options: Any) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """Tag `rows`: (entity P/R/F1 with CIs, subgroups (none for tokens), predictions frame)."""
    sentences = data.inputs[rows]
    pred = predict_tags(predictor, sentences)
    gold = list(data.targets[rows])
    width = max([len(s) for s in sentences] + [1])
    scores = M.evaluate(pad_tags(gold, width), pad_tags(pred, width), TargetKind.TOKENS,
                        metrics=task.metrics or None, n_boot=options.n_boot, seed=options.seed,
                        clusters=data.patient_ids[rows])
    frame = pd.DataFrame({
        "split": split_name, "row": rows, "patient_id": data.patient_ids[rows],
        "tokens": [" ".join(s) for s in sentences],
        "target": [_names(task, g) for g in gold], "predicted": [_names(task, p) for p in pred],
    })
    return scores, {}, frame


def finish_tokens(run: RunFolder, task: Any, predictor: Any, data: Any, split: Split,
                  options: Any) -> dict[str, Any]:
    """Tag val and test, write predictions.csv and return metrics (entity P/R/F1 with CIs)."""
    frames, splits = [], {}
    for name in ("test", "val"):
        splits[name], _, frame = score_token_rows(task, predictor, data, split.part(name), name,
                                                  options)
        frames.append(frame)
    write_csv(run.file(PREDICTIONS), pd.concat(frames, ignore_index=True))
    return {
        "task": task.name, "model": predictor.info.get("name"), "target_kind": task.target.value,
        "primary_metric": task.primary_metric, "splits": splits,
        "bootstrap": {"n_boot": options.n_boot, "seed": options.seed, "unit": task.split_by,
                      "ci": 0.95},
        "entity_types": sorted({c[2:] for c in task.classes if c != "O"}),
        "matching": "exact span and type",
    }


def explain_notes(run: RunFolder, task: Any, predictor: Any, data: Any, rows: np.ndarray,
                  scores: np.ndarray) -> Path | None:
    """Word attributions of a linear note classifier: each class's top terms, and for a few test
    notes the terms that pushed them toward the predicted class (coefficient x tf-idf)."""
    from iatros.models.text import class_top_words, word_attributions

    pipeline = getattr(predictor, "estimator", None)
    if not _is_linear_text_model(pipeline):
        return None
    scores = np.asarray(scores)
    examples = []
    for i in range(min(N_EXAMPLES, len(rows))):
        k = int(np.argmax(scores[i]))
        examples.append({
            "row": int(rows[i]), "patient_id": str(data.patient_ids[rows[i]]),
            "true": task.classes[int(data.targets[rows[i]])], "predicted": task.classes[k],
            "probability": round(float(scores[i, k]), 4),
            "words": [{"term": w, "contribution": c}
                      for w, c in word_attributions(pipeline, str(data.inputs[rows[i]]), k)],
        })
    payload = {"method": "logistic-regression coefficient x tf-idf value (exact for this linear "
                         "model: the terms sum, with the intercept, to the class logit)",
               "class_top_terms": class_top_words(pipeline, task.classes), "examples": examples}
    write_json(run.file(EXPLANATIONS), payload)
    return run.file(EXPLANATIONS)
