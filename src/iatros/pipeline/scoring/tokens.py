"""The tokens scorer: BIO tagging runs (NER), scored by exact-match entity P/R/F1 with CIs, and a
trained tagger as a callable for the clinical text pipeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.errors import ConfigError
from iatros.evaluate import metrics as M
from iatros.kinds import TargetKind
from iatros.pipeline.options import EvalOptions
from iatros.pipeline.scoring import base
from iatros.pipeline.scoring.base import FinishContext, Finished, Scored
from iatros.run_folder import PREDICTIONS, RunFolder, write_csv
from iatros.tasks import Task, TaskData
from iatros.tasks.text import object_array


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


Tagger = Callable[[list[list[str]]], list[list[str]]]


def tagger_from(predictor: Any, classes: list[str]) -> Tagger:
    """A trained tagger as a callable from token lists to BIO tag names (the pipeline's Tagger)."""

    def tag(sentences: list[list[str]]) -> list[list[str]]:
        ids = predict_tags(predictor, object_array(sentences))
        return [[classes[int(t)] if 0 <= int(t) < len(classes) else "O" for t in row]
                for row in ids]
    return tag


def _names(task: Task, ids: np.ndarray) -> str:
    return " ".join(task.classes[int(t)] if 0 <= int(t) < len(task.classes) else "?" for t in ids)


class TokenScorer:
    """Target kind `tokens`: BIO tag ids per token (0 = O, 2k+1 = B, 2k+2 = I of type k)."""

    supports_cross_fit = False  # ensembles vote on entities, which has no out-of-fold form
    cross_validates = False
    hands_test_scores = False

    def split_counts(self, task: Task, targets: np.ndarray) -> dict[str, Any]:
        return {}

    def finish(self, ctx: FinishContext) -> Finished:
        frames, splits = [], {}
        for name in ("test", "val"):
            scored = self.score_rows(ctx.run, ctx.task, ctx.predictor, ctx.data,
                                     ctx.split.part(name), name, ctx.options)
            splits[name] = scored.metrics
            frames.append(scored.frame)
        write_csv(ctx.run.file(PREDICTIONS), pd.concat(frames, ignore_index=True))
        return Finished({
            **base.metrics_header(ctx.task, ctx.predictor.info.get("name")), "splits": splits,
            "bootstrap": base.bootstrap_block(ctx.task, ctx.options),
            "entity_types": sorted({c[2:] for c in ctx.task.classes if c != "O"}),
            "matching": "exact span and type",
        })

    def score_rows(self, run: RunFolder, task: Task, predictor: Any, data: TaskData,
                   rows: np.ndarray, split_name: str, options: EvalOptions) -> Scored:
        sentences = data.inputs[rows]
        pred = predict_tags(predictor, sentences)
        gold = list(data.targets[rows])
        width = max([len(s) for s in sentences] + [1])
        scores = M.evaluate(pad_tags(gold, width), pad_tags(pred, width), TargetKind.TOKENS,
                            metrics=task.metrics or None, n_boot=options.n_boot, seed=options.seed,
                            clusters=data.patient_ids[rows])
        words = ({"tokens": [" ".join(s) for s in sentences]} if options.keep_text
                 else {"n_tokens": [len(s) for s in sentences]})  # the words may be PHI
        frame = base.prediction_frame(split_name, rows, data, {
            **words, "target": [_names(task, g) for g in gold],
            "predicted": [_names(task, p) for p in pred]})
        return Scored(scores, {}, frame)

    def audit(self, run: RunFolder, task: Task, by: str, split: str,
              options: EvalOptions, trust: bool = False) -> dict[str, Any]:
        raise ConfigError(f"run {run.path} tags tokens; its sentences carry no sensitive "
                          f"attributes to audit by {by!r}")

    def scores(self, run: RunFolder, predictor: Any, batch: Any) -> np.ndarray:
        return np.asarray(predictor.predict_scores(batch))

    def predict(self, run: RunFolder, task: Task, predictor: Any, batch: Any,
                names: Sequence[str], out_dir: Path) -> tuple[list[dict[str, Any]], Any]:
        """The tagger's entities (label, character offsets) in each note."""
        from iatros.nlp.pipeline import ClinicalPipeline

        pipeline = ClinicalPipeline(tagger=tagger_from(predictor, list(task.classes)))
        return [{"input": name, "entities": pipeline.tag(str(text))}
                for name, text in zip(names, batch, strict=True)], None

    def summary(self, metrics: Mapping[str, Any]) -> str:
        return base.primary_summary(metrics)

    def prediction_cells(self, result: Mapping[str, Any]) -> tuple[str, str, str]:
        found = "; ".join(f"{e['text']} [{e['label']}] {e['start']}-{e['end']}"
                          for e in result["entities"])
        return f"{len(result['entities'])} entities", found or "-", "-"

    def pick_examples(self, targets: np.ndarray, scores: np.ndarray, n: int = 4) -> list[int]:
        return list(range(min(n, len(targets))))

    def output_unit(self, task: Task, score: Any) -> tuple[int, str, str]:
        return 0, "tagged", "the tags"

    def example_losses(self, targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
        raise ConfigError("membership inference needs a per-row loss; token runs have none "
                          "here (classification and regression runs do)")

    def true_label(self, task: Task, target: Any) -> str:
        return _names(task, np.asarray(target))
