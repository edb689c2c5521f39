"""De-identification as a token task: PHI tags on the PhysioNet deid gold standard.

`deid-physionet`: every line of the nursing notes of `DATA_ROOT/physionet_deid/` (see
`iatros.nlp.deid_corpus`) as a token sequence (`iatros.nlp.phi_tokens`), BIO-tagged with the
detector's types (NAME, DATE, LOCATION, PHONE, AGE, ID). The split is by patient and fixed:
patients 1-32 train, 33-40 validation (early stopping), 41-81 test, so the public half's
patients 41-81 stay untouched by training and selection (benchmarks/deid.py scores them once).
`deid_task(train_root, test_root)` builds the same task from two folders in the corpus format:
all of the first for training (every fifth patient for validation), all of the second for test.

A trained run is a PHI tagger: `iatros nlp deid NOTES --tagger RUN` adds its spans to the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from iatros.kinds import Modality, TargetKind
from iatros.nlp.deid_corpus import GOLD_TYPES, GoldNote, read_corpus
from iatros.nlp.phi_tokens import TAG_TYPES, bio_tags, sequences
from iatros.tasks.base import Task, TaskData
from iatros.tasks.registry import register_task
from iatros.tasks.text import bio_classes, object_array

CLASSES = bio_classes(TAG_TYPES)
TRAIN_PATIENTS, VAL_PATIENTS, TEST_PATIENTS = (1, 32), (33, 40), (41, 81)


def note_rows(note: GoldNote, part: str) -> list[tuple[list[str], np.ndarray, str, str]]:
    """(tokens, tag ids, patient id, part) for each non-empty line of a note."""
    index = {name: i for i, name in enumerate(CLASSES)}
    spans = [(p.start, p.end, GOLD_TYPES.get(p.type, "ID")) for p in note.phrases]
    rows = []
    for seq in sequences(note.text):
        if seq.tokens:
            tags = np.asarray([index[t] for t in bio_tags(seq, spans)], dtype=np.int64)
            rows.append((seq.tokens, tags, f"p{note.patient}", part))
    return rows


def _task_data(rows: list[tuple[list[str], np.ndarray, str, str]], source: str) -> TaskData:
    return TaskData(inputs=object_array([r[0] for r in rows]), targets=object_array([r[1] for r in rows]),
                    patient_ids=np.array([r[2] for r in rows]),
                    attributes=pd.DataFrame(index=range(len(rows))),
                    split=np.array([r[3] for r in rows]), source=source)


def _part(patient: int) -> str | None:
    for part, (low, high) in (("train", TRAIN_PATIENTS), ("val", VAL_PATIENTS), ("test", TEST_PATIENTS)):
        if low <= patient <= high:
            return part
    return None


def load_physionet(root: Path) -> TaskData:
    """The public half of the corpus, split by patient (1-32 / 33-40 / 41-81)."""
    rows = []
    for note in read_corpus(root):
        part = _part(note.patient)
        if part is not None:
            rows += note_rows(note, part)
    return _task_data(rows, "physionet_deid")


def two_root_loader(train_root: str | Path, test_root: str | Path) -> Callable[[Path], TaskData]:
    """A loader training on every note under `train_root` (every fifth patient validates) and
    testing on every note under `test_root` (patients must differ between the two)."""
    def load(_: Path) -> TaskData:
        rows = []
        for note in read_corpus(train_root):
            rows += note_rows(note, "val" if note.patient % 5 == 0 else "train")
        for note in read_corpus(test_root):
            rows += [(t, g, f"test-{p}", part) for t, g, p, part in note_rows(note, "test")]
        return _task_data(rows, f"{train_root} -> {test_root}")
    return load


_COMMON = dict(modality=Modality.TEXT, target=TargetKind.TOKENS, classes=CLASSES,
               metrics=("entity_f1", "entity_precision", "entity_recall"), primary_metric="entity_f1",
               default_model="bilstm-crf", models=("bilstm-crf", "bilstm-crf-minilm"),
               source="PhysioNet deid gold standard (Neamatullah et al. 2008), nursing notes",
               intended_use="A PHI tagger to add to the de-identification rules "
                            "(`iatros nlp deid --tagger RUN`); research use.",
               limitations=("ICU nursing notes of one hospital whose PHI are surrogates: names, "
                            "wards and hospitals of other sources differ.",
                            "Entity F1 here is exact-match per line; benchmarks/deid.py scores "
                            "phrase recall and span precision on whole notes."))


def deid_task(train_root: str | Path, test_root: str | Path, name: str = "deid-external") -> Task:
    """The tagger task trained on one corpus folder and tested on another (same format)."""
    return Task(name=name, description="PHI tags, trained on one corpus folder, tested on another",
                loader=two_root_loader(train_root, test_root), **_COMMON)


register_task(Task(
    name="deid-physionet",
    description="PHI tags in ICU nursing notes (PhysioNet deid gold standard; patients 1-32 "
                "train, 33-40 validation, 41-81 test)",
    loader=load_physionet, **_COMMON,
))
